"""lowrank: SVD for Gemm/MatMul and 1x1 convs, Tucker-2 or spatial separation for k x k convs,
exact at full rank, only where MACs drop, ranks by energy or given."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.compress.lowrank import energy_rank
from edgeopt.errors import UsageError
from edgeopt.ir import infer_shapes
from edgeopt.passes import make_pass
from lower.against_ort import GraphBuilder


def x(side: int = 10) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((1, 3, side, side)).astype(np.float32)


def test_energy_rank_keeps_the_share_of_squared_singular_values():
    s = np.array([3.0, 2.0, 1.0, 0.5])  # squares 9, 4, 1, 0.25 of 14.25
    assert [energy_rank(s, e) for e in (0.6, 0.64, 0.9, 0.98, 1.0)] == [1, 2, 2, 3, 4]


@pytest.mark.parametrize("weight_shape", [(16, 8, 3, 3), (16, 8, 1, 1)], ids=["3x3", "1x1"])
def test_full_rank_is_exact(between_convs, outputs, weight_shape):
    model = between_convs(np.random.default_rng(0).standard_normal(weight_shape))
    before = outputs(model, x())
    changes = make_pass("lowrank", {"energy": 1.0, "only_if_cheaper": False}).apply(model)
    assert len(changes) == 1 and "MACs" in changes[0]
    np.testing.assert_allclose(outputs(model, x()), before, rtol=1e-4, atol=1e-4)


def test_a_low_rank_conv_is_found_and_rewritten_exactly(between_convs, outputs):
    rng = np.random.default_rng(0)  # rank 2 along both channel modes: Tucker-2 ranks 2/2 are exact
    weight = np.einsum("mo,oihw,ci->mchw", rng.standard_normal((32, 2)), rng.standard_normal((2, 2, 3, 3)),
                       rng.standard_normal((16, 2)))
    model = between_convs(weight)
    before = outputs(model, x())
    changes = make_pass("lowrank", {"energy": 0.999999}).apply(model)
    assert len(changes) == 1 and changes[0].startswith("Conv 'layer': Tucker-2 ranks 2/16 in, 2/32 out")
    np.testing.assert_allclose(outputs(model, x()), before, rtol=1e-4, atol=1e-4)


def test_a_spatially_separable_conv_becomes_k_by_1_then_1_by_k(between_convs, outputs):
    rng = np.random.default_rng(0)  # W[m, c, i, j] = v[c, i] h[m, j]: rank 1 as [(c, i), (m, j)]
    weight = rng.standard_normal((16, 1, 1, 5)) * rng.standard_normal((1, 16, 5, 1))
    model = between_convs(weight, strides=[2, 1], pads=[2, 1, 2, 3])
    before = outputs(model, x())
    changes = make_pass("lowrank", {"energy": 0.999999}).apply(model)
    assert len(changes) == 1 and "spatial 5x1 + 1x5, rank 1 of 80" in changes[0]
    np.testing.assert_allclose(outputs(model, x()), before, rtol=1e-4, atol=1e-4)


def gemm_model(rank: int | None) -> ir.Model:
    g = GraphBuilder(seed=0)
    h = g.node("Relu", g.gemm(g.input("v", (4, 64)), 64, 48, name="hidden"))
    if rank is not None:  # make the hidden layer's weight rank `rank`
        g.weights["hidden_w"] = (g.random((48, rank)) @ g.random((rank, 64))).astype(np.float32)
    h = g.node("Relu", g.node("MatMul", h, g.weight("mm_w", g.random((48, 40))), name="mm"))
    return infer_shapes(ir.from_proto(g.model([g.gemm(h, 40, 3, name="out")])))


def test_gemm_and_matmul_split_by_svd(outputs):
    from edgeopt.ir import ort_session, to_bytes

    model = gemm_model(rank=4)
    feed = {"v": np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)}
    before = ort_session(to_bytes(model)).run(None, feed)[0]
    changes = make_pass("lowrank", {"energy": 0.999999, "exclude": ["out"]}).apply(model)
    assert changes[0] == "Gemm 'hidden': rank 4 of 48 (SVD), MACs 12,288 -> 1,792"
    assert [n.op_type for n in model.graph][:2] == ["MatMul", "Gemm"]
    np.testing.assert_allclose(ort_session(to_bytes(model)).run(None, feed)[0], before, rtol=1e-4, atol=1e-4)


def test_a_given_rank_above_the_layers_is_a_clear_error():
    with pytest.raises(UsageError) as error:
        make_pass("lowrank", {"rank": 60, "exclude": ["out"]}).apply(gemm_model(None))
    assert "--lowrank-rank 60: above the rank 48 of Gemm 'hidden'" in error.value.message


@pytest.mark.parametrize("params, fragment", [({"energy": 0.0}, "--lowrank 0.0"), ({"energy": 1.5}, "--lowrank 1.5"),
                                              ({"rank": 0}, "--lowrank-rank 0")])
def test_bad_options_are_usage_errors(params, fragment):
    with pytest.raises(UsageError) as error:
        make_pass("lowrank", params)
    assert fragment in error.value.message and error.value.exit_code == 2


def test_full_rank_where_macs_would_grow_changes_nothing():
    assert make_pass("lowrank", {"energy": 1.0, "exclude": ["out"]}).apply(gemm_model(None)) == []
