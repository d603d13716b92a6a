"""Quantisation-aware training's int8 simulation.

Weights: every conv/FC kernel is held on the grid TFLite's converter will put it on
(per-channel symmetric int8, scale max|w| / 127, narrow range [-127, 127]). Training updates
a float shadow of each kernel with the gradient taken at the int8 values (straight-through
estimator), then puts the kernel back on the shadow's grid. The converter, reading a kernel
already on its grid, derives the same scale and rounds back to the same integers: the
.tflite holds exactly the weights the training ended with.

Activations: the fake-quant ranges edgeopt.quant.ranges chose become trainable (the
FakeQuantWithMinMaxVars gradient reaches min and max), and the converter keeps them; the
model inputs' ranges stay.
"""

from __future__ import annotations

import tensorflow as tf

from edgeopt.lower import LoweredModel
from edgeopt.quant.sequential import INT8_MAX


def on_grid(weights: tf.Tensor, channels: int) -> tf.Tensor:
    """`weights` (channels last) rounded as TFLite's per-channel symmetric int8 will hold them."""
    flat = tf.reshape(weights, [-1, channels])
    scale = tf.reduce_max(tf.abs(flat), axis=0) / INT8_MAX
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return tf.reshape(tf.clip_by_value(tf.round(flat / scale), -INT8_MAX, INT8_MAX) * scale, tf.shape(weights))


class Int8Weights:
    """The kernels the converter quantises per channel, each with its float shadow."""

    def __init__(self, lowered: LoweredModel):
        self.kernels = [(s.params["kernel"], s.params["channels"]) for s in lowered.steps
                        if s.params.get("kernel") is not None and s.params.get("bias") is not None]
        self.shadows = [tf.Variable(kernel, trainable=False, name="shadow") for kernel, _ in self.kernels]
        self.snap()

    def snap(self) -> None:
        """Every kernel onto its shadow's int8 grid."""
        for (kernel, channels), shadow in zip(self.kernels, self.shadows):
            kernel.assign(on_grid(shadow, channels))

    def shadow_of(self) -> dict:
        """Kernel (by ref) -> the shadow a gradient taken at it is applied to."""
        return {kernel.ref(): shadow for (kernel, _), shadow in zip(self.kernels, self.shadows)}


def trainable_ranges(lowered: LoweredModel) -> list[tuple[tf.Variable, tf.Variable]]:
    """The activation ranges QAT learns: not the model inputs', whose grid is what the device
    feeds (with --pixel-input the pixels themselves, scale 1: a learned scale would round them)."""
    inputs = {port.key for port in lowered.inputs}
    return [bounds for key, bounds in lowered.ranges.items() if key not in inputs]
