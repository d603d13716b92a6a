"""Learned weight rounding (AdaRound: Nagel et al. 2020, "Up or Down? Adaptive Rounding for
Post-Training Quantization"), layer by layer on the int8 stream of edgeopt.quant.sequential.

For each conv/FC every int8 weight may round down or up (floor(w/s) + h, h in [0, 1]); h is
a rectified sigmoid of a learned V, trained so that the layer's output on its int8-stream
inputs matches its float output, with a regulariser that pushes every h to 0 or 1 (its
exponent annealed from 20 to 2 after a warm-up, as in BRECQ's reference code). The kernel
is then set to exactly s * q (or to nearest rounding, if that has the smaller output error
on the calibration samples): the converter, which derives s = max|w| / 127 per channel and
rounds w / s, reads back the same q. The largest |w| of each channel is already on the grid
and is pinned there, so s does not move.

Gradients: the layer's own TF step computes the output from its kernel variable, so the
gradient of the reconstruction error with respect to the kernel is taken there and carried
to V by the chain rule (dw/dV = s * dh/dV).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgeopt.quant.sequential import INT8_MAX, channel_scales, run_step

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (AdaRound, section 4)
REGULARISER = 0.01  # weight of the rounding regulariser against the reconstruction error
WARMUP = 0.2  # share of the steps with reconstruction only
BETA = (20.0, 2.0)  # regulariser exponent: from, to
LEARNING_RATE = 1e-2
BATCH = 16
STEPS = 100
PROGRESS_EVERY_S = 10.0


@dataclass
class LearnedRounding:
    node: str
    changed: int  # weights rounded the other way than nearest
    weights: int
    error_nearest: float  # relative output MSE on the calibration inputs
    error_learned: float


def _rectified_sigmoid(v):
    return tf.clip_by_value(tf.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _initial_v(rest: np.ndarray) -> np.ndarray:
    """V with h(V) = rest (the fraction nearest rounding would drop or add)."""
    ratio = np.clip((rest - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    return np.log(ratio / (1 - ratio)).astype(np.float32)


def _batched(inputs: list[list]) -> list[tf.Tensor] | None:
    """The samples' inputs stacked on the batch axis, when the step takes batch-1 tensors."""
    if any(t.shape.rank == 0 or t.shape[0] != 1 for sample in inputs for t in sample):
        return None
    return [tf.concat(column, 0) for column in zip(*inputs)]


def _channel_mean(diff):
    """The mean per channel (the last axis), over samples and positions."""
    return tf.reduce_mean(diff, axis=list(range(diff.shape.rank - 1)))


def _error(out, target, centred: bool):
    """out - target; `centred`: less its mean per channel, which the bias takes."""
    diff = out - target
    return diff - _channel_mean(diff) if centred else diff


def _reconstruction(out, target, centred: bool):
    """Squared error summed over channels (the last axis), averaged over samples and positions
    (BRECQ's loss): it sets the scale the regulariser's weight is chosen against."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(_error(out, target, centred)), -1))


def learn_rounding(step, inputs: list[list], float_out: list[list], steps: int, seed: int,
                   centred: bool = False) -> LearnedRounding | None:
    """Choose the rounding of `step`'s kernel in place; None when its inputs do not batch.
    `centred` (a conv reading raw pixels, edgeopt.quant.pixels): the rounding minimises the
    error less its mean per channel, and the bias then takes that mean. On inputs far from
    zero the mean is most of the error, and a bias removes it where a rounding cannot."""
    batched = _batched(inputs)
    if batched is None:
        return None
    target = tf.concat([f[0] for f in float_out], 0)
    kernel, channels = step.params["kernel"], step.params["channels"]
    original = kernel.numpy()
    scale = channel_scales(original, channels).astype(np.float32)
    grid = original.reshape(-1, channels) / scale
    pinned = np.abs(grid) >= INT8_MAX - 1e-6  # each channel's largest |w|: keeps the scale
    base = np.where(pinned, np.round(grid), np.floor(grid)).astype(np.float32)
    base_t, scale_t, free = tf.constant(base), tf.constant(scale), tf.constant(~pinned, tf.float32)
    v = tf.Variable(_initial_v(grid - np.floor(grid)))
    optimizer = tf.keras.optimizers.Adam(LEARNING_RATE)

    def output(xs):
        out = step.fn(*xs)
        return out[0] if isinstance(out, (tuple, list)) else out

    @tf.function(autograph=False)
    def train(beta, regularise, y, *xs):  # the batch comes in as arguments: captured, it would outlive the layer
        h = _rectified_sigmoid(v) * free
        kernel.assign(tf.reshape(scale_t * (base_t + h), original.shape))
        with tf.GradientTape() as tape:
            loss = _reconstruction(output(xs), y, centred)
        kernel_grad = tf.reshape(tape.gradient(loss, kernel), (-1, channels))
        with tf.GradientTape() as tape:
            h = _rectified_sigmoid(v) * free
            surrogate = tf.reduce_sum(tf.stop_gradient(kernel_grad) * scale_t * h)
            surrogate += regularise * REGULARISER * tf.reduce_sum(1 - tf.abs(2 * h - 1) ** beta)
        optimizer.apply_gradients([(tape.gradient(surrogate, v), v)])

    rng, samples = np.random.default_rng(seed), int(target.shape[0])
    for i in range(steps):
        progress = max(0.0, (i - WARMUP * steps) / ((1 - WARMUP) * steps))
        beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - progress)
        indices = rng.choice(samples, min(BATCH, samples), replace=False)
        train(tf.constant(beta, tf.float32), tf.constant(float(i >= WARMUP * steps)), tf.gather(target, indices),
              *(tf.gather(x, indices) for x in batched))

    def error(q):
        kernel.assign((q * scale).reshape(original.shape).astype(original.dtype))
        diff = _error(output(batched), target, centred)
        return float(tf.reduce_mean(tf.square(diff)) / (tf.reduce_mean(tf.square(target)) + 1e-12))

    nearest = np.clip(np.round(grid), -INT8_MAX, INT8_MAX)
    chosen = np.clip(base + (_rectified_sigmoid(v).numpy() >= 0.5) * ~pinned, -INT8_MAX, INT8_MAX)
    error_nearest, error_learned = error(nearest), error(chosen)  # the kernel stays at the chosen rounding
    if error_learned >= error_nearest:  # a few steps on a small layer can miss: never worse than nearest
        error(nearest)
        chosen, error_learned = nearest, error_nearest
    if centred:
        step.params["bias"].assign_sub(_channel_mean(output(batched) - target))
    return LearnedRounding(step.node, int(np.sum(chosen != nearest)), int(chosen.size), error_nearest, error_learned)


def rounding_fix(results: list[LearnedRounding], steps: int = STEPS, note=None, seed: int = 0,
                 centred: Collection[str] = ()):
    """The walk's fix (edgeopt.quant.sequential) that learns each layer's rounding, `centred`
    for the nodes named there; `note` gets a progress line every few seconds."""
    start = last = time.perf_counter()

    def fix(step, rounded, float_out, inputs):
        nonlocal last
        found = learn_rounding(step, inputs, float_out, steps, seed, step.node in centred)
        if found is None:
            return rounded
        results.append(found)
        now = time.perf_counter()
        if note is not None and now - last >= PROGRESS_EVERY_S:
            last = now
            note(f"  learned rounding: {len(results)} layers in {now - start:.0f} s (last: {found.node}, output "
                 f"error {found.error_nearest:.2e} nearest, {found.error_learned:.2e} learned)")
        return run_step(step, inputs)
    return fix
