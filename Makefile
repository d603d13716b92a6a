# make install: .venv with every dependency at the versions in constraints.txt.
# make demo / make test / make bench each install first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE := examples/digits_cnn.pt2

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup_arm.sh targets/arm-cpu/runner.cc
	bash scripts/setup_arm.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev,bench]'
	$(BIN)/python -m edgeopt.tvm.runtime
	touch $(STAMP)

$(EXAMPLE): $(STAMP) scripts/make_example.py
	$(BIN)/python scripts/make_example.py --out examples

demo: $(EXAMPLE)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(EXAMPLE)
	$(BIN)/python scripts/bench.py --out bench-results/bench.json
	$(BIN)/python scripts/bench_zoo.py --out bench-results/zoo.json
	$(BIN)/python scripts/bench_compress.py --out bench-results/compress.json
	$(BIN)/python scripts/bench_memory.py --out bench-results/memory.json
	$(BIN)/python scripts/bench_sparse_encoding.py --out bench-results/sparse_encoding.json
	$(BIN)/python scripts/bench_arm.py --out bench-results/arm.json

clean:
	rm -rf $(VENV) dist examples build bench-results *.egg-info
