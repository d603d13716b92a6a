"""prune: magnitude pruning to an exact share of zeros per layer (or of all layers), the
first and last layers kept by default, 0% exact, bad options clear errors; the gradual
schedule is TFMOT's PolynomialDecay."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgeopt.compress._layers import weight_layers
from edgeopt.data import Dataset
from edgeopt.errors import UsageError
from edgeopt.ir import infer_shapes
from edgeopt.passes import make_pass
from lower.against_ort import SAME_PADS, GraphBuilder


def zeros_by_layer(model) -> dict[str, float]:
    return {layer.name: float(np.mean(layer.weight == 0)) for layer in weight_layers(model)}


def test_zero_sparsity_changes_nothing(conv_net, outputs):
    model = conv_net()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    before = outputs(model, x)
    assert make_pass("prune", {"sparsity": 0.0}).apply(model) == []
    np.testing.assert_array_equal(outputs(model, x), before)


def test_each_chosen_layer_gets_the_share_and_the_first_and_last_stay_dense(conv_net):
    model = conv_net()
    changes = make_pass("prune", {"sparsity": 0.5}).apply(model)
    assert zeros_by_layer(model) == {"first": 0.0, "middle": 0.5, "classifier": 0.0}
    assert changes == ["Conv 'middle': 50.0% of its 1152 weights zero"]


def test_the_smallest_weights_of_each_output_channel_go(conv_net):
    """Ranked by |w| over their channel's RMS: within a channel, the smallest go first."""
    model = conv_net()
    dense = {layer.name: layer.weight for layer in weight_layers(model)}["middle"]
    dense[0] *= 100  # a channel on another scale (a folded BatchNorm) is not spared, nor emptied
    next(layer for layer in weight_layers(model) if layer.name == "middle").set_weight(dense)
    make_pass("prune", {"sparsity": 0.25, "exclude": []}).apply(model)
    pruned = {layer.name: layer.weight for layer in weight_layers(model)}["middle"]
    assert np.array_equal(pruned[pruned != 0], dense[pruned != 0])
    for channel, original in zip(pruned, dense):
        kept, dropped = np.abs(original[channel != 0]), np.abs(original[channel == 0])
        assert dropped.size == 0 or dropped.max() <= kept.min()
    assert 0.1 < np.mean(pruned[0] == 0) < 0.4


def test_global_scope_ranks_layers_by_their_own_scale(conv_net):
    """The middle conv's weights are 50x smaller; raw magnitudes would empty it, RMS-scaled ones do not."""
    model = conv_net()
    make_pass("prune", {"sparsity": 0.5, "scope": "global", "exclude": []}).apply(model)
    zeros = zeros_by_layer(model)
    sizes = {layer.name: layer.weight.size for layer in weight_layers(model)}
    total = sum(zeros[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert total == pytest.approx(0.5, abs=1e-3)
    assert all(0.2 < share < 0.8 for share in zeros.values()), zeros


@pytest.mark.parametrize("params, fragment", [
    ({"sparsity": 1.0}, "--prune 1.0: give a share in [0, 1)"),
    ({"sparsity": -0.1}, "--prune -0.1: give a share in [0, 1)"),
    ({"scope": "tensor"}, "--prune-scope tensor: unknown"),
    ({"allocation": "greedy"}, "--prune-allocation greedy: unknown"),
    ({"scope": "global", "allocation": "sensitivity"}, "--prune-scope global and --prune-allocation sensitivity both"),
])
def test_bad_options_are_usage_errors(params, fragment):
    with pytest.raises(UsageError) as error:
        make_pass("prune", params)
    assert fragment in error.value.message and error.value.exit_code == 2


def test_an_unknown_excluded_layer_is_named(conv_net):
    with pytest.raises(UsageError) as error:
        make_pass("prune", {"exclude": ["midle"]}).apply(conv_net())
    assert "named midle" in error.value.message and "middle" in error.value.hint


def test_schedule_is_tfmot_polynomial_decay():
    """Ours runs on training progress (0..1); TFMOT's on steps: the same curve at step = progress x 1000."""
    tfmot = pytest.importorskip("tensorflow_model_optimization")
    from edgeopt.train.sparsity import SCHEDULE_END, SCHEDULE_FREQUENCY, polynomial_sparsity

    steps = 1000
    theirs = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.6, begin_step=0, end_step=int(SCHEDULE_END * steps),
                                                  power=3, frequency=int(SCHEDULE_FREQUENCY * steps))
    for step in (0, 50, 120, 350, 650, 700, 900):
        should, sparsity = theirs(step)
        if bool(should):
            assert polynomial_sparsity(step / steps, 0.6) == pytest.approx(float(sparsity), abs=1e-6), step


def _two_middle_convs() -> ir.Model:
    """first (3 -> 8, six of its channels nearly silent) -> a (1x1, 8 -> 8) -> b (1x1, 8 -> 8) -> last:
    the weights of `a` that read the silent channels cost nothing, every weight of `b` counts."""
    g = GraphBuilder(seed=3)
    x = g.node("Relu", g.conv(g.input("image", (1, 3, 8, 8)), 3, 8, pads=SAME_PADS, name="first"))
    g.weights["first_w"][2:] *= 1e-3
    g.weights["first_b"][2:] *= 1e-3
    x = g.node("Relu", g.conv(x, 8, 8, kernel=1, name="a"))
    x = g.node("Relu", g.conv(x, 8, 8, kernel=1, name="b"))
    return infer_shapes(ir.from_proto(g.model([g.conv(x, 8, 4, kernel=1, name="last")])))


def test_sensitivity_puts_the_zeros_where_they_cost_least(outputs):
    """As many zeros as 0.5 in each of a and b, most of them in a; a smaller output error than 0.5 in each
    (measured: 0.75 and 0.25, half the error)."""
    x = np.random.default_rng(0).uniform(-1, 1, (32, 1, 3, 8, 8)).astype(np.float32)
    data = Dataset({"image": x.reshape(32, 3, 8, 8)}, None, "uniform noise")
    results = {}
    for allocation in ("uniform", "sensitivity"):
        model = _two_middle_convs()
        before = np.concatenate([outputs(model, sample) for sample in x])
        p = make_pass("prune", {"sparsity": 0.5, "allocation": allocation, "mirror": False})
        p.calibrate(data, 1)
        p.apply(model)
        error = float(np.mean((np.concatenate([outputs(model, sample) for sample in x]) - before) ** 2))
        results[allocation] = (zeros_by_layer(model), error / float(np.mean(before ** 2)))
    (uniform, uniform_error), (allocated, allocated_error) = results["uniform"], results["sensitivity"]
    assert uniform == {"first": 0.0, "a": 0.5, "b": 0.5, "last": 0.0}
    assert allocated["a"] >= 0.7 and allocated["a"] + allocated["b"] >= 1.0, allocated
    assert allocated_error < 0.75 * uniform_error, (allocated_error, uniform_error)


def test_sensitivity_without_data_is_a_usage_error(conv_net):
    with pytest.raises(UsageError) as error:
        make_pass("prune", {"allocation": "sensitivity"}).apply(conv_net())
    assert "--prune-allocation sensitivity measures the layers on data, and has none" in error.value.message
