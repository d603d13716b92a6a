"""The training loop: distillation of the lowered model from the float teacher, Adam with
cosine decay, until a step count or a time budget runs out (whichever comes first).

A batch runs the lowered model sample by sample (its shapes are static, batch 1) under
tf.vectorized_map, which batches the ops again; memory holds one batch of activations.
The teacher is the float IR under onnxruntime, run on the same augmented batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from edgeopt.data import Dataset
from edgeopt.ir import ort_session, to_bytes
from edgeopt.lower import LoweredModel
from edgeopt.train import _vectorize  # noqa: F401  (FakeQuant under vectorized_map)
from edgeopt.train.config import DEFAULT_EPOCHS, DEFAULT_SECONDS, TrainConfig, TrainReport
from edgeopt.train.data import batches
from edgeopt.train.loss import distillation_loss
from edgeopt.train.qat import Int8Weights, trainable_ranges
from edgeopt.train.sparsity import KernelMasks

PROGRESS_EVERY_S = 10.0
ADAM = (0.9, 0.999, 1e-8)  # beta1, beta2, epsilon


def onnx_teacher(model: ir.Model) -> Callable[[dict], list[np.ndarray]]:
    """The float IR under onnxruntime, sample by sample (static batch 1): ONNX-layout outputs."""
    session = ort_session(to_bytes(model))
    names = [o.name for o in session.get_outputs()]

    def run(feed: dict) -> list[np.ndarray]:
        size = len(next(iter(feed.values())))
        per_sample = [session.run(names, {k: v[i:i + 1] for k, v in feed.items()}) for i in range(size)]
        return [np.concatenate([sample[j] for sample in per_sample]) for j in range(len(names))]
    return run


class _Adam:
    """Adam on a list of variables, with the learning rate a variable the schedule moves,
    times a per-variable `sizes` (a number or an array of the variable's shape): a weight moves
    by a share of its channel's or tensor's mean magnitude (_step_units), an activation range
    by a share of its width."""

    def __init__(self, variables: list[tf.Variable], rate: float, sizes: list | None = None):
        self.variables, self.rate = variables, tf.Variable(rate, trainable=False)
        self.base, self.sizes = rate, sizes or [1.0] * len(variables)
        self.moments = [(tf.Variable(tf.zeros_like(v), trainable=False), tf.Variable(tf.zeros_like(v), trainable=False))
                        for v in variables]
        self.count = tf.Variable(0.0, trainable=False)

    def apply(self, gradients: list) -> None:
        beta1, beta2, eps = ADAM
        self.count.assign_add(1.0)
        correction = tf.sqrt(1 - beta2 ** self.count) / (1 - beta1 ** self.count)
        for variable, (m, v), g, size in zip(self.variables, self.moments, gradients, self.sizes):
            if g is None:
                continue
            m.assign(beta1 * m + (1 - beta1) * g)
            v.assign(beta2 * v + (1 - beta2) * tf.square(g))
            variable.assign_sub(self.rate * size * correction * m / (tf.sqrt(v) + eps))


def _step_units(lowered: LoweredModel, variables: list[tf.Variable]) -> list:
    """What a step at learning rate 1 moves each weight by: a kernel's elements by the mean
    magnitude of their output channel (a BN-folded kernel's channels differ by 100x, and each
    has its own int8 grid), any other weight by its tensor's mean magnitude."""
    channels = {s.params["kernel"].ref(): s.params["channels"] for s in lowered.steps
                if isinstance(s.params.get("kernel"), tf.Variable) and s.params.get("channels")}
    units = []
    for variable in variables:
        weights = np.abs(variable.numpy())
        whole = float(np.mean(weights)) or 1.0
        count = channels.get(variable.ref())
        if count:
            flat = weights.reshape(-1, count)
            means = flat.mean(axis=0)
            per_channel = np.where(means > 0, means, whole)
            units.append(np.broadcast_to(per_channel, flat.shape).reshape(weights.shape).astype(np.float32))
        else:
            units.append(whole)
    return units


def train(lowered: LoweredModel, teacher: Callable[[dict], list[np.ndarray]], data: Dataset, config: TrainConfig,
          note: Callable[[str], None] = lambda text: None, masks: KernelMasks | None = None,
          held: Collection[str] = ()) -> TrainReport:
    """Train `lowered` in place (see the module docstring); with `config.qat` its kernels end on
    their int8 grid and its activation ranges learned. Kernels' zeros stay zero; `masks` may
    also prune kernels gradually. The steps of the nodes in `held` keep their weights (convs
    whose bias holds their int8 rounding error times the mean pixel, edgeopt.quant.pixels)."""
    config.check()
    masks = masks if masks is not None else KernelMasks(lowered)
    images = {p.name for p in lowered.inputs if p.layout == "NHWC" and np.dtype(p.dtype).kind == "f"}
    int8 = Int8Weights(lowered) if config.qat else None
    shadow_of = int8.shadow_of() if int8 else {}
    kept = {v.ref() for step in lowered.steps if step.node in held for v in step.params.values()
            if isinstance(v, tf.Variable)}
    trainable = [v for v in lowered.weights if v.trainable and v.ref() not in kept]
    bounds = trainable_ranges(lowered) if config.qat else []
    ranges = [bound for pair in bounds for bound in pair]
    weights_adam = _Adam([shadow_of.get(v.ref(), v) for v in trainable], config.learning_rate,
                         _step_units(lowered, trainable))
    widths = [float(hi.numpy() - lo.numpy()) or 1.0 for lo, hi in bounds]
    ranges_adam = _Adam(ranges, config.range_learning_rate, [w for w in widths for _ in range(2)])
    step = _step_function(lowered, trainable, ranges, weights_adam, ranges_adam, int8, masks, shadow_of)

    planned = config.steps or math.ceil(DEFAULT_EPOCHS * data.size / config.batch)
    budget = config.seconds or DEFAULT_SECONDS
    start, shown, losses, done = time.perf_counter(), time.perf_counter(), [], 0
    for feed, labels in batches(data, config.batch, config.seed, images if config.augment else set(), config.augment):
        elapsed = time.perf_counter() - start
        progress = max(done / planned, elapsed / budget)
        if progress >= 1.0:
            break
        masks.update(progress)
        schedule = 0.5 * (1 + math.cos(math.pi * progress))
        weights_adam.rate.assign(weights_adam.base * schedule)
        ranges_adam.rate.assign(ranges_adam.base * schedule)
        targets = [np.transpose(t, p.perm) for t, p in zip(teacher(feed), lowered.outputs)]
        inputs = tuple(tf.constant(x) for x in lowered.tf_arrays(feed))
        loss = step(inputs, tuple(tf.constant(t) for t in targets), None if labels is None else tf.constant(labels))
        losses.append(float(loss))
        done += 1
        if time.perf_counter() - shown >= PROGRESS_EVERY_S:
            shown = time.perf_counter()
            rate = done / (shown - start)
            left = min((planned - done) / rate, budget - (shown - start))
            note(f"training step {done}/{planned}: loss {np.mean(losses[-10:]):.4g}, {rate:.2f} steps/s, "
                 f"about {max(left, 0):.0f} s left")
    if int8:
        int8.snap()
    return TrainReport(steps=done, seconds=time.perf_counter() - start, batch=config.batch, samples=data.size,
                       qat=config.qat, augment=config.augment, loss_first=losses[0] if losses else float("nan"),
                       loss_last=float(np.mean(losses[-10:])) if losses else float("nan"))


def _step_function(lowered, trainable, ranges, weights_adam, ranges_adam, int8, masks, shadow_of):
    """One training step as a tf.function: forward per sample under vectorized_map, the
    distillation loss, Adam on weights (kernels' shadows under --qat) and ranges, pruned
    elements back to zero, kernels back onto their grid."""
    names = [p.name for p in lowered.inputs]

    def one_sample(xs):
        return [y[0] for y in lowered({name: x[None] for name, x in zip(names, xs)})]

    @tf.function(autograph=False, reduce_retracing=True)
    def step(inputs, targets, labels):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(trainable + ranges)
            student = tf.vectorized_map(one_sample, inputs)
            loss = distillation_loss(student, list(targets), labels)
        gradients = tape.gradient(loss, trainable + ranges)
        weights_adam.apply(gradients[:len(trainable)])
        ranges_adam.apply(gradients[len(trainable):])
        masks.hold(shadow_of)
        if int8:
            int8.snap()
        return loss
    return step
