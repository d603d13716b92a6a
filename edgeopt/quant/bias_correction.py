"""Empirical bias correction, sequential and layer by layer.

Per-channel int8 weight rounding shifts each output channel's mean; on a MobileNet-class
net it dominates the int8 error (../shared/reference/tflite-lowering.md). Walking the
steps in order with two streams of calibration samples, one float and one with int8-rounded
weights (and fake-quant activations where ranges are known), each conv/FC bias absorbs the
mean difference of its outputs. Because the quantized stream carries the corrections made
upstream, later layers correct what reaches them, not what float would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgeopt.lower import LoweredModel

INT8_MAX = 127  # TFLite int8 weights are symmetric in [-127, 127] (narrow range)


def round_per_channel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """The weights as TFLite's per-channel symmetric int8 will hold them (channels last)."""
    flat = kernel.reshape(-1, channels)
    scale = np.abs(flat).max(axis=0) / INT8_MAX
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(flat / scale), -INT8_MAX, INT8_MAX) * scale).reshape(kernel.shape).astype(kernel.dtype)


@dataclass
class Correction:
    node: str
    max_shift: float  # largest |bias change| in the layer


def _outputs(step, env_list, lowered):
    results = []
    for env in env_list:
        out = step.fn(*(lowered.read(env, k) for k in step.inputs))
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


def correct_biases(lowered: LoweredModel, feeds: list[dict], ranges: dict | None = None) -> list[Correction]:
    """Adjust the bias variables of `lowered` in place; returns what changed per layer."""
    ranges = ranges or {}
    float_envs, quant_envs = [], []
    for feed in feeds:
        inputs = {p.key: tf.constant(x) for p, x in zip(lowered.inputs, lowered.tf_arrays(feed))}
        float_envs.append(dict(inputs))
        quant_envs.append(dict(inputs))
    corrections = []
    for step in lowered.steps:
        with tf.name_scope(step.name):
            float_out = _outputs(step, float_envs, lowered)
            kernel, bias = step.params.get("kernel"), step.params.get("bias")
            if kernel is None or bias is None:
                quant_out = _outputs(step, quant_envs, lowered)
            else:
                original = kernel.numpy()
                kernel.assign(round_per_channel(original, step.params["channels"]))
                quant_out = _outputs(step, quant_envs, lowered)
                kernel.assign(original)
                difference = np.stack([q[0].numpy() - f[0].numpy() for q, f in zip(quant_out, float_out)])
                shift = difference.reshape(-1, difference.shape[-1]).mean(axis=0).astype(np.float32)
                bias.assign_sub(shift)
                quant_out = [[q[0] - shift] for q in quant_out]
                corrections.append(Correction(step.node, float(np.abs(shift).max())))
        _store(step, float_envs, float_out, {})
        _store(step, quant_envs, quant_out, ranges)
    return corrections
