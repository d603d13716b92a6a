"""Small conv nets for the compression tests (fixtures: pytest's importlib mode keeps a
test module from importing its conftest)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.ir import infer_shapes, ort_session, to_bytes
from lower.against_ort import SAME_PADS, GraphBuilder


def _conv_net() -> ir.Model:
    """conv 3->8, relu, conv 8->16 (its weights 50x smaller: a folded BN's scale), relu,
    global pool, flatten, gemm 16->5."""
    g = GraphBuilder(seed=1)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="first"), name="r1")
    x = g.node("Relu", g.conv(x, 8, 16, pads=SAME_PADS, name="middle"), name="r2")
    x = g.node("Flatten", g.node("GlobalAveragePool", x, name="pool"), name="flat")
    model = infer_shapes(ir.from_proto(g.model([g.gemm(x, 16, 5, name="classifier")])))
    middle = next(n for n in model.graph if n.name == "middle").inputs[1]
    middle.const_value = ir.tensor(middle.const_value.numpy() / 50, name=middle.name)
    return model


def _between_convs(weight: np.ndarray, side: int = 10, **attributes) -> ir.Model:
    """conv(3 -> C) -> relu -> Conv node `layer` with `weight` [M, C, kh, kw] -> relu -> conv(M -> 2):
    the layer in the middle, where the default exclusions (first, last) leave it chosen."""
    g = GraphBuilder(seed=2)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, side, side)), 3, weight.shape[1], pads=SAME_PADS, name="first"))
    x = g.node("Conv", x, g.weight("layer_w", weight.astype(np.float32)), g.weight("layer_b", g.random(weight.shape[0])),
               name="layer", **attributes)
    x = g.conv(g.node("Relu", x), weight.shape[0], 2, kernel=1, name="last")
    return infer_shapes(ir.from_proto(g.model([x])))


def _outputs(model: ir.Model, x: np.ndarray) -> np.ndarray:
    session = ort_session(to_bytes(model))
    return session.run(None, {"image": x})[0]


@pytest.fixture
def conv_net():
    return _conv_net


@pytest.fixture
def outputs():
    return _outputs


@pytest.fixture
def between_convs():
    return _between_convs
