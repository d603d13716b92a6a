"""fold-head-transposes: attention's head split and merge become per-head weights, with the
same outputs and no Transpose left but K's last-two-axes swap (BATCH_MATMUL's adj_y)."""

import numpy as np
import pytest
from onnx import helper

from edgeopt.ir import infer_shapes

TOKENS, WIDTH, HEADS = 6, 8, 2
DEPTH = WIDTH // HEADS


def _attention(build_model, rng, keys_spelling: str):
    """BERT as torch.export writes it: Q and V split by Reshape + Transpose(0, 2, 1, 3); K^T
    either as BERT's Reshape(S, E) -> Transpose -> Reshape(1, H, D, S), or split then swapped;
    the heads merged by Transpose + Reshape before the output projection."""
    w = {n: rng.standard_normal((WIDTH, WIDTH)).astype(np.float32) for n in ("wq", "wk", "wv", "wo")}
    b = {n: rng.standard_normal(WIDTH).astype(np.float32) for n in ("bq", "bk", "bv", "bo")}
    shapes = {"heads": [1, TOKENS, HEADS, DEPTH], "rows": [TOKENS, WIDTH], "keys": [1, HEADS, DEPTH, TOKENS],
              "merged": [1, TOKENS, WIDTH]}
    constants = {**w, **b, **{n: np.array(s, np.int64) for n, s in shapes.items()}}
    nodes = []
    for p in "qkv":
        nodes += [helper.make_node("MatMul", ["x", f"w{p}"], [f"{p}0"], name=f"{p}_proj"),
                  helper.make_node("Add", [f"{p}0", f"b{p}"], [f"{p}1"])]
    for p in "qv":
        nodes += [helper.make_node("Reshape", [f"{p}1", "heads"], [f"{p}2"]),
                  helper.make_node("Transpose", [f"{p}2"], [f"{p}3"], perm=[0, 2, 1, 3])]
    if keys_spelling == "bert":
        nodes += [helper.make_node("Reshape", ["k1", "rows"], ["k2"]),
                  helper.make_node("Transpose", ["k2"], ["k2t"], perm=[1, 0]),
                  helper.make_node("Reshape", ["k2t", "keys"], ["k3"])]
    else:
        nodes += [helper.make_node("Reshape", ["k1", "heads"], ["k2"]),
                  helper.make_node("Transpose", ["k2"], ["k3"], perm=[0, 2, 3, 1])]
    nodes += [helper.make_node("MatMul", ["q3", "k3"], ["scores"]),
              helper.make_node("Softmax", ["scores"], ["weights"], axis=-1),
              helper.make_node("MatMul", ["weights", "v3"], ["context"]),
              helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["context_t", "merged"], ["context_m"]),
              helper.make_node("MatMul", ["context_m", "wo"], ["o0"], name="out_proj"),
              helper.make_node("Add", ["o0", "bo"], ["y"])]
    return infer_shapes(build_model(nodes, [("x", [1, TOKENS, WIDTH])], [("y", [1, TOKENS, WIDTH])], constants))


@pytest.mark.parametrize("keys_spelling", ["bert", "split-then-swap"])
def test_head_split_and_merge_fold_into_the_weights(build_model, apply_pass, rng, keys_spelling):
    run = apply_pass("fold-head-transposes", _attention(build_model, rng, keys_spelling))

    transposes = [n for n in run.model.graph if n.op_type == "Transpose"]
    assert [list(n.attributes.get_ints("perm")) for n in transposes] == [[0, 1, 3, 2]]  # K^T, read as adj_y
    assert len(run.changes) == 4
    assert sum("2 heads [H, S, D]" in c for c in run.changes) == 2 and "2 per-head MatMuls" in run.changes[-1]
    assert "[H, D, S], read as [H, S, D] transposed" in next(c for c in run.changes if "'k_proj'" in c)
    assert sum(n.op_type == "ReduceSum" for n in run.model.graph) == 1
    run.assert_outputs_match(atol=1e-5)  # the head sum reorders the output projection's float additions


def test_a_channels_first_transpose_before_a_conv_is_not_a_head_split(build_model, apply_pass, rng):
    """SegFormer's Mix-FFN: tokens [1, S, C] -> [1, C, S] -> [1, C, h, w] for a depthwise conv.
    Read as heads it would be C heads of depth 1; that is not attention and stays."""
    constants = {"w": rng.standard_normal((4, 8)).astype(np.float32), "map": np.array([1, 8, 2, 3], np.int64)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["t"]),
             helper.make_node("Transpose", ["t"], ["c"], perm=[0, 2, 1]),
             helper.make_node("Reshape", ["c", "map"], ["y"])]
    model = infer_shapes(build_model(nodes, [("x", [1, 6, 4])], [("y", [1, 8, 2, 3])], constants))
    run = apply_pass("fold-head-transposes", model)

    assert run.changes == [] and run.op_changes == {}
