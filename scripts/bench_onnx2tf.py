"""onnx2tf's int8 path on the same ONNX model and calibration data, for `make bench`.

onnx2tf is what users pick instead of edgeopt; it is never our dependency. It needs its own
TensorFlow, so it lives in a side venv (scripts/setup_sidevenv.sh) named by $ONNX2TF_VENV;
without one the benchmark records that it was skipped. Gotchas handled here (onnx2tf
1.29.24): it rewrites its input .onnx in place (we pass a copy), it shells out to `onnxsim`
(its venv's bin/ goes on PATH), and it downloads a sample image from GitHub even when given
calibration data unless a file of that name is in the working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # onnx2tf's download target


def onnx2tf_venv() -> Path | None:
    venv = Path(os.environ.get("ONNX2TF_VENV", ".sidevenv/onnx2tf")).absolute()
    return venv if (venv / "bin" / "onnx2tf").exists() else None


def onnx2tf_int8(onnx_files: list[Path], calib_nchw: np.ndarray, work: Path) -> tuple[bytes, float] | None:
    """Full-integer int8 (int8 I/O, per-channel) from onnx2tf: (the .tflite, wall seconds)."""
    venv = onnx2tf_venv()
    if venv is None:
        return None
    work.mkdir(parents=True, exist_ok=True)
    for path in onnx_files:
        shutil.copy(path, work / path.name)
    np.save(work / SAMPLE_FILE, np.zeros((20, 128, 128, 3), np.float32))  # unused when -cind is given
    np.save(work / "calib_nhwc.npy", calib_nchw.transpose(0, 2, 3, 1))
    identity = ("[[[[0.0,0.0,0.0]]]]", "[[[[1.0,1.0,1.0]]]]")  # our data is normalised already
    command = [str(venv / "bin" / "onnx2tf"), "-i", onnx_files[0].name, "-o", "out", "-oiqt", "-qt", "per-channel",
               "-iqd", "int8", "-oqd", "int8", "-cind", "image", "calib_nhwc.npy", *identity]
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"onnx2tf failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    model = next((work / "out").glob("*_full_integer_quant.tflite"))
    return model.read_bytes(), elapsed


def run_tflite(data: bytes, images_nchw: np.ndarray) -> np.ndarray:
    """Outputs (dequantized) of a single-input, int8-I/O NHWC model on NCHW images."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    (source,), (sink,) = interpreter.get_input_details(), interpreter.get_output_details()
    (in_scale, in_zero), (out_scale, out_zero) = source["quantization"], sink["quantization"]
    outputs = []
    for image in images_nchw.transpose(0, 2, 3, 1):
        q = np.clip(np.round(image / in_scale + in_zero), -128, 127).astype(np.int8)[None]
        interpreter.set_tensor(source["index"], q)
        interpreter.invoke()
        outputs.append((interpreter.get_tensor(sink["index"]).astype(np.float32) - out_zero) * out_scale)
    return np.concatenate(outputs)


def onnx2tf_float32(onnx_file: Path, data: dict[str, np.ndarray], work: Path) -> dict | None:
    """onnx2tf's float32 .tflite of `onnx_file`, run on `data` (ONNX layout) against
    onnxruntime: {exit, seconds, sqnr_db, transposes} or the first error line."""
    venv = onnx2tf_venv()
    if venv is None:
        return None
    import onnxruntime

    from edgeopt.tflite.reader import read_tflite
    from edgeopt.verify import sqnr_db

    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx_file, work / "model.onnx")
    np.save(work / SAMPLE_FILE, np.zeros((20, 128, 128, 3), np.float32))
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run([str(venv / "bin" / "onnx2tf"), "-i", "model.onnx", "-o", "out"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1800)
    row = {"exit": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
    found = list((work / "out").glob("*_float32.tflite"))
    if done.returncode != 0 or not found:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if "rror" in line]
        return {**row, "exit": done.returncode or 1, "error": (lines or ["no .tflite written"])[-1].strip()[:300]}
    model = found[0].read_bytes()
    session = onnxruntime.InferenceSession(str(onnx_file))
    samples = [{k: v[i:i + 1] for k, v in data.items()} for i in range(len(next(iter(data.values()))))]
    expected = np.concatenate([session.run(None, {i.name: _feed(s, i.name) for i in session.get_inputs()})[0]
                               for s in samples])
    ops = read_tflite(model).op_counts()
    try:
        actual = np.concatenate([_run_float(model, s) for s in samples])
    except RuntimeError as exc:  # e.g. Select TF ops (Flex) that a device's LiteRT lacks
        reason = str(exc).splitlines()[0][:200]
        return {**row, "exit": 0, "runs": False, "error": f"built, does not run: {reason}", "transposes": ops.get("TRANSPOSE", 0)}
    return {**row, "sqnr_db": round(sqnr_db(expected, actual.reshape(expected.shape)), 2),
            "transposes": ops.get("TRANSPOSE", 0)}


def _run_float(model: bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """First output of a float .tflite; 4-D inputs go in NHWC, as onnx2tf lays them out."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        x = _feed(feeds, detail["name"])
        x = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x
        interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _feed(feeds: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The array for input `name`: by name (either containing the other), or the only one (a
    Keras model's data is keyed by its Keras input name, its ONNX input is named otherwise)."""
    found = [k for k in feeds if k in name or name in k]
    if not found and len(feeds) == 1:
        found = list(feeds)
    if not found:
        raise KeyError(f"no data for input {name!r} among {sorted(feeds)}")
    return feeds[found[0]]
