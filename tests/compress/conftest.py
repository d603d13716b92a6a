"""Small conv nets for the compression tests (fixtures: pytest's importlib mode keeps a
test module from importing its conftest)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.ir import ort_session, to_bytes
from lower.against_ort import SAME_PADS, GraphBuilder


def _conv_net() -> ir.Model:
    """conv 3->8, relu, conv 8->16 (its weights 50x smaller: a folded BN's scale), relu,
    global pool, flatten, gemm 16->5."""
    g = GraphBuilder(seed=1)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="first"), name="r1")
    x = g.node("Relu", g.conv(x, 8, 16, pads=SAME_PADS, name="middle"), name="r2")
    x = g.node("Flatten", g.node("GlobalAveragePool", x, name="pool"), name="flat")
    model = ir.from_proto(g.model([g.gemm(x, 16, 5, name="classifier")]))
    middle = next(n for n in model.graph if n.name == "middle").inputs[1]
    middle.const_value = ir.tensor(middle.const_value.numpy() / 50, name=middle.name)
    return model


def _outputs(model: ir.Model, x: np.ndarray) -> np.ndarray:
    session = ort_session(to_bytes(model))
    return session.run(None, {"image": x})[0]


@pytest.fixture
def conv_net():
    return _conv_net


@pytest.fixture
def outputs():
    return _outputs
