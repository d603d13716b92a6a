"""prune-channels: on nets whose chosen channels are dead (zero weights and bias), removing
them must leave the outputs exactly as they were, whatever couples them: residual Adds,
Concat offsets, depthwise convs, squeeze-excitation, a Flatten into a Gemm; grouped convs
and graph outputs keep their channels."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.compress._channels import shape_of
from edgeopt.data import Dataset
from edgeopt.errors import UsageError
from edgeopt.ir import infer_shapes, ort_session, to_bytes
from edgeopt.ir.analysis import analyze
from edgeopt.passes import make_pass
from lower.against_ort import SAME_PADS, GraphBuilder


def kill(g: GraphBuilder, conv: str, channels) -> None:
    """Zero the output channels' weights and biases: those channels are 0 everywhere."""
    g.weights[f"{conv}_w"][list(channels)] = 0
    g.weights[f"{conv}_b"][list(channels)] = 0


def finish(g: GraphBuilder, outputs: list[str]) -> ir.Model:
    return infer_shapes(ir.from_proto(g.model(outputs)))


def prune(model: ir.Model, ratio: float, **options) -> tuple[ir.Model, list[str]]:
    changes = make_pass("prune-channels", {"ratio": ratio, **options}).apply(model)
    return infer_shapes(model), changes


def run(model: ir.Model, g: GraphBuilder) -> list[np.ndarray]:
    return ort_session(to_bytes(model)).run(None, g.feeds)


def channels(model: ir.Model) -> dict[str, int]:
    return {n.name: shape_of(n.outputs[0])[1] for n in model.graph if n.op_type in ("Conv", "Gemm")}


def pruned_exactly(g: GraphBuilder, outputs: list[str], ratio: float) -> tuple[dict, list[str]]:
    model = finish(g, outputs)
    before = run(model, g)
    model, changes = prune(model, ratio)
    for got, want in zip(run(model, g), before):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return channels(model), changes


def test_a_chain_loses_its_dead_channels_and_a_gemm_its_rows():
    g = GraphBuilder(seed=0)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a"))
    x = g.node("Relu", g.conv(x, 8, 8, pads=SAME_PADS, name="b"))
    x = g.node("Flatten", x, name="flat")
    kill(g, "a", [1, 4]), kill(g, "b", [0, 7])
    shapes, changes = pruned_exactly(g, [g.gemm(x, 8 * 64, 5, name="fc")], 0.25)
    assert shapes == {"a": 6, "b": 6, "fc": 5}
    assert changes == ["Conv 'a': 8 -> 6 output channels", "Conv 'b': 8 -> 6 output channels"]


def test_residual_operands_are_pruned_as_one_set():
    g = GraphBuilder(seed=1)
    x = g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a")
    y = g.conv(g.node("Relu", x), 8, 8, pads=SAME_PADS, name="b")
    z = g.node("Relu", g.node("Add", x, y))
    kill(g, "a", [2, 5]), kill(g, "b", [2, 5])
    g.weights["b_w"][[0, 1]] *= 1e-3  # small in b alone: the set's mean importance keeps them
    shapes, _ = pruned_exactly(g, [g.conv(z, 8, 4, pads=SAME_PADS, name="c")], 0.25)
    assert shapes == {"a": 6, "b": 6, "c": 4}


def test_concat_offsets_and_depthwise_channels_follow():
    g = GraphBuilder(seed=2)
    image = g.input("image", (1, 3, 8, 8))
    a = g.node("Relu", g.conv(image, 3, 4, pads=SAME_PADS, name="a"))
    b = g.node("Relu", g.conv(image, 3, 6, pads=SAME_PADS, name="b"))
    x = g.node("Concat", a, b, axis=1)
    x = g.node("Relu", g.conv(x, 10, 10, group=10, pads=SAME_PADS, name="dw"))
    kill(g, "a", [3]), kill(g, "b", [0, 2])
    g.weights["dw_b"][[3, 4, 6]] = 0  # the dead channels' depthwise bias too: still exactly zero
    shapes, _ = pruned_exactly(g, [g.conv(x, 10, 4, kernel=1, name="c")], 0.34)
    assert shapes == {"a": 3, "b": 4, "dw": 7, "c": 4}


def test_squeeze_excitation_ties_the_expand_conv_to_the_features():
    g = GraphBuilder(seed=3)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a"))
    s = g.node("Relu", g.conv(g.node("GlobalAveragePool", x), 8, 4, kernel=1, name="reduce"))
    s = g.node("Sigmoid", g.conv(s, 4, 8, kernel=1, name="expand"))
    y = g.node("Mul", x, s)
    kill(g, "a", [1, 6]), kill(g, "expand", [1, 6]), kill(g, "reduce", [3])
    shapes, _ = pruned_exactly(g, [g.conv(y, 8, 2, kernel=1, name="c")], 0.25)
    assert shapes == {"a": 6, "reduce": 3, "expand": 6, "c": 2}


def test_grouped_convs_and_graph_outputs_keep_their_channels():
    g = GraphBuilder(seed=4)
    x = g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a")
    grouped = g.conv(g.node("Relu", x), 8, 8, group=2, pads=SAME_PADS, name="grouped")
    out = g.conv(g.node("Relu", grouped), 8, 6, pads=SAME_PADS, name="out")
    model, changes = prune(finish(g, [out]), 0.5)
    assert changes == [] and channels(model) == {"a": 8, "grouped": 8, "out": 6}


def test_macs_drop_with_the_ratio():
    g = GraphBuilder(seed=5)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 16, 16)), 3, 32, pads=SAME_PADS, name="a"))
    x = g.node("Relu", g.conv(x, 32, 32, pads=SAME_PADS, name="b"))
    model = finish(g, [g.conv(x, 32, 10, kernel=1, name="c")])
    before = analyze(model).macs
    model, _ = prune(model, 0.3, multiple=1)
    assert channels(model) == {"a": 23, "b": 23, "c": 10}
    assert analyze(model).macs == 16 * 16 * (23 * 3 * 9 + 23 * 23 * 9 + 10 * 23) < 0.6 * before


def test_the_channels_kept_are_rounded_up_to_a_multiple_of_8_in_groups_of_16_or_more():
    g = GraphBuilder(seed=5)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 16, 16)), 3, 32, pads=SAME_PADS, name="a"))
    x = g.node("Relu", g.conv(x, 32, 12, pads=SAME_PADS, name="b"))
    model, _ = prune(finish(g, [g.conv(x, 12, 10, kernel=1, name="c")]), 0.3)
    assert channels(model) == {"a": 24, "b": 9, "c": 10}  # 32 - 9 = 23 -> 24; b has fewer than 16: 12 - 3


@pytest.mark.parametrize("params, fragment", [({"ratio": 0.0}, "--prune-channels 0.0: give a share in (0, 1)"),
                                              ({"ratio": 1.0}, "--prune-channels 1.0: give a share in (0, 1)"),
                                              ({"multiple": 0}, "prune-channels multiple 0: give 1 or more"),
                                              ({"importance": "taylor"}, "--prune-importance taylor: unknown")])
def test_bad_options_are_usage_errors(params, fragment):
    with pytest.raises(UsageError) as error:
        make_pass("prune-channels", params)
    assert fragment in error.value.message


def test_sensitivity_prunes_where_the_outputs_suffer_least():
    """Half of a's channels barely matter (tiny weights), all of b's do: as many MACs saved as
    0.25 everywhere, taken from a, with a smaller output error than uniform pruning's."""
    def net():
        g = GraphBuilder(seed=6)
        x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a"))
        x = g.node("Relu", g.conv(x, 8, 8, pads=SAME_PADS, name="b"))
        g.weights["a_w"][:4] *= 1e-3
        g.weights["a_b"][:4] *= 1e-3
        return g, finish(g, [g.conv(x, 8, 4, kernel=1, name="c")])

    results = {}
    for allocation in ("uniform", "sensitivity"):
        g, model = net()
        before, macs = run(model, g)[0], analyze(model).macs
        rng = np.random.default_rng(0)
        p = make_pass("prune-channels", {"ratio": 0.25, "allocation": allocation, "refit": False})
        p.calibrate(Dataset({"image": rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}, None, "uniform noise"), 1)
        p.apply(model)
        model = infer_shapes(model)
        error = float(np.mean((run(model, g)[0] - before) ** 2) / np.mean(before ** 2))
        results[allocation] = (channels(model), macs - analyze(model).macs, error)
    uniform, sensitivity = results["uniform"], results["sensitivity"]
    assert uniform[0] == {"a": 6, "b": 6, "c": 4} and sensitivity[0] == {"a": 4, "b": 8, "c": 4}
    assert sensitivity[1] >= uniform[1] and sensitivity[2] < 0.1 * uniform[2]


@pytest.mark.parametrize("option", [{"allocation": "sensitivity"}, {"importance": "activation"}])
def test_measuring_without_data_is_a_usage_error(conv_net, option):
    with pytest.raises(UsageError) as error:
        make_pass("prune-channels", option).apply(conv_net())
    assert f"--prune-{next(iter(option))} {next(iter(option.values()))} measures the layers on data" in error.value.message


def test_activation_importance_prunes_the_channels_the_data_leaves_silent():
    """Input channel 0 is always zero in the data: the four channels of `a` that read only it
    have the largest weights and no output; weight norms keep them, activations prune them."""
    def net():
        g = GraphBuilder(seed=7)
        x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a"))
        g.weights["a_w"][:4, 1:] = 0
        g.weights["a_w"][:4, 0] *= 10
        g.weights["a_b"][:4] = 0
        return g, finish(g, [g.conv(x, 8, 4, kernel=1, name="c")])

    data = np.random.default_rng(0).uniform(-1, 1, (8, 3, 8, 8)).astype(np.float32)
    data[:, 0] = 0
    kept = {}
    for importance in ("l2", "activation"):
        g, model = net()
        p = make_pass("prune-channels", {"ratio": 0.5, "importance": importance, "exclude": ["c"], "refit": False})
        p.calibrate(Dataset({"image": data}, None, "noise, channel 0 silent"), 1)
        p.apply(model)
        kept[importance] = np.abs(next(n for n in model.graph if n.name == "a").inputs[1].const_value.numpy()[:, 0])
    assert kept["l2"].shape == kept["activation"].shape == (4, 3, 3)
    assert kept["l2"].max() > 1 >= kept["activation"].max()  # only the silent channels' weights exceed 1


def test_activation_importance_prunes_the_channels_the_next_layer_does_not_read():
    """Channels 0-3 of `a` are its largest, but `c` gives them zero weight: what they carry
    to the next layer is nothing, so activation importance prunes them and l2 keeps them."""
    def net():
        g = GraphBuilder(seed=8)
        x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="a"))
        g.weights["a_w"][:4] *= 10
        out = g.conv(x, 8, 4, kernel=1, name="c")
        g.weights["c_w"][:, :4] = 0
        return g, finish(g, [out])

    data = Dataset({"image": np.random.default_rng(0).uniform(-1, 1, (8, 3, 8, 8)).astype(np.float32)}, None, "noise")
    kept = {}
    for importance in ("l2", "activation"):
        _, model = net()
        p = make_pass("prune-channels", {"ratio": 0.5, "importance": importance, "exclude": ["c"], "refit": False})
        p.calibrate(data, 1)
        p.apply(model)
        kept[importance] = np.abs(next(n for n in model.graph if n.name == "a").inputs[1].const_value.numpy()).max()
    assert kept["l2"] > 10 * kept["activation"]


def test_importance_is_activation_with_data_and_l2_without(conv_net):
    data = Dataset({"image": np.random.default_rng(0).uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}, None, "noise")
    chosen = {}
    for importance in (None, "l2", "activation"):
        for with_data in (False, True):
            p = make_pass("prune-channels", {"ratio": 0.5, "importance": importance, "refit": False})
            if with_data:
                p.calibrate(data, 1)
            elif importance == "activation":
                continue
            model = conv_net()
            p.apply(model)
            chosen[importance, with_data] = [n.inputs[1].const_value.numpy().tolist() for n in model.graph
                                             if n.op_type == "Conv"]
    assert chosen[None, False] == chosen["l2", False]
    assert chosen[None, True] == chosen["activation", True] != chosen["l2", True]
