"""A walk (edgeopt/compress/_walk.py) gives the values a whole-model run gives, segment by
segment: across a residual Add, with an int64 shape from a Constant crossing every cut, and
with the nodes not yet run taken as they are when the walk reaches them."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.compress._walk import Walk, outputs_of
from edgeopt.ir import infer_shapes
from lower.against_ort import SAME_PADS, GraphBuilder


def _net() -> ir.Model:
    """shape constant; conv a, relu; conv b; add (residual); reshape to [1, -1]; gemm fc."""
    g = GraphBuilder(seed=5)
    shape = g.node("Constant", name="shape", value=ir.serde.serialize_tensor(ir.tensor(np.array([1, -1]))))
    r = g.node("Relu", g.conv(g.input("image", (1, 3, 4, 4)), 3, 4, pads=SAME_PADS, name="a"), name="r")
    s = g.node("Add", r, g.conv(r, 4, 4, pads=SAME_PADS, name="b"), name="sum")
    out = g.gemm(g.node("Reshape", s, shape, name="flat"), 64, 2, name="fc")
    return infer_shapes(ir.from_proto(g.model([out])))


def _feeds(count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"image": rng.uniform(-1, 1, (1, 3, 4, 4)).astype(np.float32)} for _ in range(count)]


def test_a_walk_gives_the_values_of_whole_runs():
    model, feeds = _net(), _feeds(3)
    walk = Walk(feeds)
    for names in (["image"], ["r"], ["sum", "r"], ["fc"]):
        whole = outputs_of(model, names)
        for got, feed in zip(walk.advance(model, names), feeds):
            for g, want in zip(got, whole(feed)):
                np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6)
    assert walk.done == len(list(model.graph))


def test_a_change_shows_in_the_nodes_not_yet_run_only():
    model, feeds = _net(), _feeds(2)
    walk = Walk(feeds)
    walk.advance(model, ["r"])
    nodes = {node.name: node for node in model.graph}
    for name in ("a", "b"):  # a has run, b has not
        weight = nodes[name].inputs[1]
        weight.const_value = ir.tensor(np.zeros(weight.const_value.numpy().shape, np.float32), name=weight.name)
    got = walk.advance(model, ["sum", "r"])
    for (total, r), feed in zip(got, feeds):
        assert np.any(r != 0)  # a's output as it was
        np.testing.assert_allclose(total, r + nodes["b"].inputs[2].const_value.numpy()[None, :, None, None], rtol=1e-6)


def test_a_value_the_walk_has_passed_and_dropped_is_an_error():
    model, feeds = _net(), _feeds(1)
    walk = Walk(feeds)
    walk.advance(model, ["fc"])
    with pytest.raises(KeyError):
        walk.advance(model, ["r"])
