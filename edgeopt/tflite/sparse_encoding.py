"""TFLite's sparse encoding for pruned models (the converter's Optimize.EXPERIMENTAL_SPARSITY):
a pruned weight is stored as its non-zeros and their positions, and a DENSIFY op makes it dense
again once, when the model is prepared. The file on the device shrinks; the running model does
not change.

It is used only where it pays and runs: the file smaller than the dense one, and LiteRT's
default CPU path (XNNPACK) running it to the dense model's outputs. Measured on
EfficientNet-Lite0 int8 (scripts/bench_sparse_encoding.py, magnitude pruning, classifier dense):
50% of each layer's weights zero, the sparse file is 1.21x larger (gzipped 1.11x); 80% zero,
0.75x the size (gzipped 1.07x larger), and XNNPACK as fast as on the dense file (4.14 against
4.15 ms); tflite-runtime 2.14 ran it within one int8 step of LiteRT (a lab run). A sparse
FULLY_CONNECTED is one XNNPACK refuses ("failed to prepare"; the digits CNN at 80%).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeopt.errors import EdgeoptError

MIN_ZERO_SHARE = 0.5  # a model none of whose weight layers has this share of zeros is not tried
FLOAT_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}  # the same weights; kernels may sum in another order


def worth_trying(model) -> bool:
    """Whether some Conv/Gemm/MatMul weight of the IR is at least MIN_ZERO_SHARE zeros (pruned)."""
    from edgeopt.compress import weight_layers

    return any(np.mean(layer.weight == 0) >= MIN_ZERO_SHARE for layer in weight_layers(model))


def _outputs(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)  # the default resolver: XNNPACK
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]


def _sample_inputs(data: bytes) -> list[np.ndarray]:
    """One seeded input per model input, across its type's range (int8/uint8) or N(0, 1)."""
    from ai_edge_litert.interpreter import Interpreter

    rng, inputs = np.random.default_rng(0), []
    for detail in Interpreter(model_content=data).get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            inputs.append(rng.integers(info.min, info.max, detail["shape"], endpoint=True).astype(dtype))
        else:
            inputs.append(rng.standard_normal(detail["shape"]).astype(dtype))
    return inputs


def _why_not(dense: bytes, sparse: bytes) -> str | None:
    """Why the sparse file is not the one to ship, or None when it is."""
    if len(sparse) >= len(dense):
        return f"not smaller ({len(sparse):,} bytes against {len(dense):,} dense)"
    inputs = _sample_inputs(dense)
    try:
        got = _outputs(sparse, inputs)
    except (RuntimeError, ValueError) as exc:
        return f"LiteRT's default CPU path (XNNPACK) does not run it: {str(exc).strip().splitlines()[0][:200]}"
    for a, b in zip(_outputs(dense, inputs), got):
        same = np.array_equal(a, b) if a.dtype.kind in "iu" else np.allclose(a, b, **FLOAT_TOLERANCE)
        if not same:
            return "its outputs differ from the dense model's"
    return None


def choose(dense: bytes, convert_sparse: Callable[[], bytes]) -> tuple[bytes, dict]:
    """The file to ship, and the manifest's record of the choice."""
    try:
        sparse = convert_sparse()
    except EdgeoptError as exc:
        return dense, {"encoding": "dense", "sparse_not_used": f"the converter failed: {exc.message.splitlines()[0]}"}
    reason = _why_not(dense, sparse)
    record = {"dense_bytes": len(dense), "sparse_bytes": len(sparse)}
    if reason:
        return dense, {"encoding": "dense", **record, "sparse_not_used": reason}
    return sparse, {"encoding": "sparse", **record}
