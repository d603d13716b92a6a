"""The TFLite converter's processes: `python -m edgeopt.tflite.child` is a small fork server.

The converter runs apart from the build (edgeopt.tflite.isolated) so that a crash (an Inf in
calibration data once segfaulted it) or a runaway calibration ends a child, not the build.
The server imports TensorFlow once and runs no TF op (so forking it is safe); for each
WORKDIR line on stdin it forks a converter, prints its pid, waits, and prints its exit code
and peak RSS (kB). A fresh interpreter per conversion would pay TF's import each time
(3 s CPU, 8 s wall on a busy 2-core machine); multiprocessing's forkserver would re-import
the caller's main script in every child.

A converter reads what the parent wrote to WORKDIR, and writes back the model or the
converter's own words; it reports what it is doing in WORKDIR/status, so that the parent can
name the stage a killed converter was in.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# The parent's files in WORKDIR; edgeopt.tflite.isolated writes and reads the same names.
REQUEST, MODEL_DIR, SAMPLES, STATUS = "request.json", "model", "samples.npy", "status"
RESULT, ERROR, LOG = "model.tflite", "error.json", "converter.log"


def set_status(workdir: Path, text: str) -> None:
    (workdir / STATUS).write_text(text)


def samples(workdir: Path, request: dict):
    """The calibration samples, read back one at a time as the parent streamed them in."""
    import numpy as np

    def generate():
        with open(workdir / SAMPLES, "rb") as stream:
            for index in range(request["samples"]):
                set_status(workdir, f"calibrating (sample {index + 1} of {request['samples']})")
                yield [np.load(stream, allow_pickle=False) for _ in range(request["inputs"])]
        set_status(workdir, "quantizing")

    return generate


def configure(converter, request: dict, workdir: Path) -> None:
    import tensorflow as tf

    quant = request["quant"]
    sparsity = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if request.get("sparse") else []
    if quant == "float32":
        converter.optimizations = sparsity
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT, *sparsity]
    if quant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "int8":
        converter.representative_dataset = samples(workdir, request)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[request["io_dtype"]]
        converter.inference_input_type = io
        converter.inference_output_type = io


def convert(workdir: Path) -> None:
    request = json.loads((workdir / REQUEST).read_text())
    set_status(workdir, "loading the lowered model")
    import tensorflow as tf

    from edgeopt.quiet import captured_output

    module = tf.saved_model.load(str(workdir / MODEL_DIR))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.signatures["serving_default"]], module)
    configure(converter, request, workdir)
    set_status(workdir, "converting")
    try:
        with captured_output() as log:
            data = converter.convert()
    except Exception as exc:  # the parent turns the converter's words into our error
        (workdir / ERROR).write_text(json.dumps({"said": str(exc), "log": log.text}))
        return
    (workdir / RESULT).write_bytes(data)
    set_status(workdir, "done")


def _converter(workdir: str) -> None:
    """A forked converter: its output goes to WORKDIR/converter.log; it never returns."""
    code = 1
    try:
        log = os.open(os.path.join(workdir, LOG), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        convert(Path(workdir))
        code = 0
    except BaseException:  # the parent reports it from converter.log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import tensorflow  # noqa: F401  (imported once, before any fork)

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            _converter(line.strip())
        print(pid, flush=True)
        _, status, usage = os.wait4(pid, 0)
        print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, flush=True)


if __name__ == "__main__":
    serve()
