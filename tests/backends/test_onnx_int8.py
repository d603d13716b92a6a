"""The onnx target's int8 (onnxruntime's QDQ quantizer) on parameters several nodes share.
PoolFormer's 25 GroupNorms, exported as InstanceNormalization, all read one scale and one
bias vector, and onnxruntime 1.23's quantizer refused the model ("Quantization parameter
shared mode is not supported for weight yet"; the zoo bench builds it since). Small shared
parameters are now copied per reader; large ones (tied embeddings) stay shared."""

from __future__ import annotations

import numpy as np
import onnx

from edgeopt.backends.onnx import SHARED_COPY_LIMIT
from edgeopt.ir import from_proto, ort_session, to_bytes, unshare_initializers
from lower.against_ort import GraphBuilder


def shared_parameters() -> onnx.ModelProto:
    """Two Muls read one small vector; two MatMuls read one large matrix."""
    g = GraphBuilder(seed=4)
    small = g.weight("small", g.random((1, 6)))
    large = g.weight("large", g.random((6, SHARED_COPY_LIMIT // 6 + 1)))
    x = g.input("x", (2, 6))
    y = g.node("Mul", g.node("Mul", x, small), small)
    return g.model([g.node("Add", g.node("MatMul", y, large), g.node("MatMul", x, large))])


def test_small_shared_parameters_get_one_copy_per_reader_and_large_ones_stay_shared():
    model = shared_parameters()
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)}
    expected = ort_session(model.SerializeToString()).run(None, feeds)[0]
    unshared = from_proto(model)
    assert unshare_initializers(unshared, SHARED_COPY_LIMIT) == 1
    readers = [value.name for node in unshared.graph for value in node.inputs]
    assert sorted(n for n in readers if n.startswith("small")) == ["small", "small__copy1"]
    assert readers.count("large") == 2
    np.testing.assert_array_equal(ort_session(to_bytes(unshared)).run(None, feeds)[0], expected)
