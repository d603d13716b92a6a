"""The layer-by-layer walk that weight-rounding fixes share (bias correction, learned
rounding): two streams of calibration samples go through the steps in order, one float and
one as int8 will compute it (fake-quant activations where ranges are known, and each layer's
weights as the fix leaves them). At every conv/FC the fix sees the layer's inputs from the
int8 stream and its float outputs, and returns the int8 stream's outputs; so each layer
fixes what really reaches it, upstream fixes included.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from edgeopt.lower import LoweredModel

INT8_MAX = 127  # TFLite int8 weights are symmetric in [-127, 127] (narrow range)

# fix(step, int8-stream outputs as the weights stand (rounded to nearest), float outputs,
#     int8-stream inputs) -> the int8 stream's outputs after the fix
LayerFix = Callable[[object, list, list, list], list]


def channel_scales(kernel: np.ndarray, channels: int) -> np.ndarray:
    """TFLite's per-channel symmetric int8 scale (channels last): max |w| / 127."""
    scale = np.abs(kernel.reshape(-1, channels)).max(axis=0) / INT8_MAX
    return np.where(scale > 0, scale, 1.0)


def round_per_channel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """The weights as TFLite's per-channel symmetric int8 will hold them (channels last)."""
    scale = channel_scales(kernel, channels)
    flat = kernel.reshape(-1, channels)
    return (np.clip(np.round(flat / scale), -INT8_MAX, INT8_MAX) * scale).reshape(kernel.shape).astype(kernel.dtype)


def step_inputs(step, env_list, lowered: LoweredModel) -> list[list]:
    """Per sample, the tensors the step reads."""
    return [[lowered.read(env, k) for k in step.inputs] for env in env_list]


def run_step(step, inputs: list[list]) -> list[list]:
    """Per sample, the step's outputs on its inputs."""
    results = []
    for sample in inputs:
        out = step.fn(*sample)
        results.append(list(out) if isinstance(out, (tuple, list)) else [out])
    return results


def _store(step, env_list, results, ranges):
    for env, outs in zip(env_list, results):
        for key, tensor in zip(step.outputs, outs):
            bounds = ranges.get(key)
            env[key] = tensor if bounds is None else tf.quantization.fake_quant_with_min_max_args(
                tensor, bounds[0], bounds[1], num_bits=8)
        for key in step.release:
            env.pop(key, None)


def walk(lowered: LoweredModel, feeds: list[dict], ranges: dict, fix: LayerFix) -> None:
    """Run `fix` at every step with a kernel and a bias, in order (see the module docstring)."""
    float_envs, quant_envs = [], []
    for feed in feeds:
        inputs = {p.key: tf.constant(x) for p, x in zip(lowered.inputs, lowered.tf_arrays(feed))}
        float_envs.append(dict(inputs))
        quant_envs.append(dict(inputs))
    for step in lowered.steps:
        with tf.name_scope(step.name):
            float_out = run_step(step, step_inputs(step, float_envs, lowered))
            inputs = step_inputs(step, quant_envs, lowered)
            kernel = step.params.get("kernel")
            if kernel is None or step.params.get("bias") is None:
                quant_out = run_step(step, inputs)
            else:
                original = kernel.numpy()
                kernel.assign(round_per_channel(original, step.params["channels"]))
                nearest = run_step(step, inputs)
                kernel.assign(original)
                quant_out = fix(step, nearest, float_out, inputs)
        _store(step, float_envs, float_out, {})
        _store(step, quant_envs, quant_out, ranges)


def compose(*fixes: LayerFix) -> LayerFix:
    """Fixes applied one after the other at each layer (learned rounding, then bias correction)."""
    def fix(step, rounded, float_out, inputs):
        for each in fixes:
            rounded = each(step, rounded, float_out, inputs)
        return rounded
    return fix
