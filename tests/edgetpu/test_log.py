"""The compiler-log parser on real edgetpu_compiler output quoted in public issue threads
(tests/edgetpu/logs/, each file names its source), and our own rendering read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.edgetpu.log import format_size, parse_log, parse_size
from edgeopt.edgetpu.rules import AFTER_PARTITION, LIMITATION, MAPPED, NOT_SUPPORTED

LOGS = Path(__file__).parent / "logs"
KIB, MIB = 1024, 1024 ** 2


def fixture(name: str) -> str:
    """The quoted log without our '# source' header."""
    text = (LOGS / name).read_text()
    assert text.startswith("# source: https://github.com/")
    return text.split("\n\n", 1)[1]


def test_every_fixture_names_its_source_and_parses():
    for path in sorted(LOGS.glob("*.txt")):
        log = parse_log(fixture(path.name))
        assert log.errors or log.rows or log.values, path.name


def test_a_transpose_that_stops_mapping_with_compiler_16():
    summary = parse_log(fixture("transpose_unspecified_limitation_433.txt")).summary()
    assert summary["compiler_version"] == "16.0.384591198" and summary["compiles"]
    assert (summary["total_ops"], summary["edgetpu_ops"], summary["cpu_ops"]) == (191, 1, 190)
    assert summary["on_chip_bytes"] == 80 * KIB
    assert summary["on_chip_remaining_bytes"] == pytest.approx(6.04 * MIB, abs=0.005 * MIB)
    assert summary["off_chip_bytes"] == 0 and summary["subgraphs"] == 1


def test_the_table_rows_and_statuses():
    log = parse_log(fixture("transpose_not_supported_more_than_one_subgraph_342.txt"))
    assert ("TRANSPOSE", 70, NOT_SUPPORTED) in log.rows
    assert ("CONV_2D", 35, AFTER_PARTITION) in log.rows
    assert ("QUANTIZE", 1, LIMITATION) in log.rows and ("PAD", 1, MAPPED) in log.rows
    assert sum(count for _, count, _ in log.rows) == 155  # = 2 on the Edge TPU + 153 on the CPU, as it says
    assert (log.summary()["edgetpu_ops"], log.summary()["cpu_ops"]) == (2, 153)


def test_off_chip_streaming_figures():
    summary = parse_log(fixture("offchip_streaming_params_60.txt")).summary()
    assert summary["off_chip_bytes"] == pytest.approx(1.22 * MIB, abs=0.005 * MIB)
    assert summary["on_chip_bytes"] == pytest.approx(6.86 * MIB, abs=0.005 * MIB)
    assert summary["on_chip_remaining_bytes"] == pytest.approx(7.75 * KIB)
    assert (summary["edgetpu_ops"], summary["cpu_ops"]) == (83, 10)


def test_a_fully_mapped_log_without_cpu_lines_counts_every_op_on_the_edge_tpu():
    summary = parse_log(fixture("fully_mapped_yolov7_tiny_search_delegate_1672.txt")).summary()
    assert summary["compiles"] and summary["total_ops"] == 246
    assert (summary["edgetpu_ops"], summary["cpu_ops"]) == (246, 0)
    assert summary["off_chip_bytes"] == pytest.approx(41.75 * KIB)


@pytest.mark.parametrize("name, words", [
    ("model_not_quantized_168.txt", "Model not quantized"),
    ("conv2d_opcode_version6_631.txt", "Didn't find op for builtin opcode 'CONV_2D' version '6'"),
    ("quantize_opcode_version3_879.txt", "Model could not be parsed"),
    ("dynamic_sized_tensors_829.txt", "dynamic-sized tensors"),
    ("internal_compiler_error_358.txt", "Internal compiler error"),
])
def test_failures_are_errors_in_the_compilers_words(name, words):
    summary = parse_log(fixture(name)).summary()
    assert not summary["compiles"]
    assert any(words in e for e in summary["errors"]), summary["errors"]
    assert summary["edgetpu_ops"] is None


def test_the_separate_operation_log_file():
    log = parse_log(fixture("operation_log_file_transpose_380.txt"))
    assert ("TRANSPOSE", 2, NOT_SUPPORTED) in log.rows
    assert all(status == MAPPED for op, _, status in log.rows if op != "TRANSPOSE")


@pytest.mark.parametrize("text, size", [("0.00B", 0), ("932.50KiB", 954880), ("6.71MiB", round(6.71 * MIB))])
def test_sizes_read_as_the_compiler_prints_them(text, size):
    assert parse_size(text) == size
    assert format_size(size) == text
