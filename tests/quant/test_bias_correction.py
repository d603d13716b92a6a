"""Bias correction: int8-rounded weights, and the per-channel mean error it removes."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.lower import lower
from edgeopt.quant.bias_correction import correct_biases
from edgeopt.quant.sequential import INT8_MAX, round_per_channel
from quant.test_ranges import conv_relu_pool_model


def test_round_per_channel_is_symmetric_int8_per_output_channel():
    kernel = np.random.default_rng(0).standard_normal((3, 3, 2, 4)).astype(np.float32)
    rounded = round_per_channel(kernel, 4)
    scale = np.abs(kernel).reshape(-1, 4).max(axis=0) / INT8_MAX
    steps = rounded.reshape(-1, 4) / scale
    assert np.allclose(steps, np.round(steps), atol=1e-3) and np.abs(steps).max() <= INT8_MAX + 1e-3
    assert np.all(np.abs(rounded - kernel).reshape(-1, 4) <= scale / 2 + 1e-7)


def test_corrected_bias_cancels_the_mean_rounding_error_of_each_channel():
    lowered = lower(conv_relu_pool_model())
    conv = next(step for step in lowered.steps if step.op_type == "Conv")
    kernel, bias = conv.params["kernel"], conv.params["bias"]
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.uniform(0, 1, (1, 2, 6, 6)).astype(np.float32)} for _ in range(8)]
    inputs = [tf.constant(np.transpose(f["x"], (0, 2, 3, 1))) for f in feeds]
    reference = np.stack([conv.fn(x).numpy() for x in inputs])

    corrections = correct_biases(lowered, feeds)

    assert [c.node for c in corrections] == ["conv"] and corrections[0].max_shift > 0
    original = kernel.numpy()
    kernel.assign(round_per_channel(original, 4))
    corrected = np.stack([conv.fn(x).numpy() for x in inputs])
    kernel.assign(original)
    mean_error = (corrected - reference).reshape(-1, 4).mean(axis=0)
    assert np.abs(mean_error).max() < 1e-5  # was corrections[0].max_shift before
    assert not np.allclose(bias.numpy(), 0)
