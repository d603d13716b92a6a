"""The lowered model: a tf.Module whose weights are tf.Variables and whose forward pass is
a list of steps, one or more per ONNX node, run in order.

Steps stay visible (name, op type, input and output keys, parameters) so that calibration
can tap any tensor and bias correction can walk the layers one by one; `function()` traces
the same steps into the tf.function the TFLite converter reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from edgeopt.lower._layout import Perm


@dataclass(frozen=True)
class Port:
    """A graph input or output: its ONNX name and shape, and how the TF side stores it."""

    name: str
    tf_name: str  # a signature-safe name ([A-Za-z0-9_])
    key: str  # env key of the tensor
    perm: Perm
    shape: tuple[int, ...]  # ONNX shape
    dtype: np.dtype

    @property
    def tf_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[axis] for axis in self.perm)

    @property
    def layout(self) -> str | None:
        return "NHWC" if self.perm == (0, 2, 3, 1) else None


@dataclass
class Step:
    name: str  # TF name scope (the ONNX node name, sanitized)
    op_type: str
    node: str  # the ONNX node name, for messages
    inputs: list[str]
    outputs: list[str]
    fn: Callable
    params: dict = field(default_factory=dict)  # e.g. {"kernel": Variable, "bias": Variable}
    release: list[str] = field(default_factory=list)  # keys no later step reads


# Why a consumer needs the source model's axis order, so that a layout transpose stays
TRANSPOSE_REASONS = {
    "MatMul": "a batched matmul takes its batch axes first (attention heads split or merged)",
    "Reshape": "a reshape merges or splits axes that are not neighbours in the stored layout",
    "Flatten": "a flatten merges axes that are not neighbours in the stored layout",
}
OTHER_REASON = "the op reads its operands in the source model's axis order"


class LoweredModel(tf.Module):
    def __init__(self, inputs, outputs, steps, constants, weights, weight_sources=()):
        super().__init__(name="edgeopt_lowered")
        self.inputs: list[Port] = inputs
        self.outputs: list[Port] = outputs
        self.steps: list[Step] = steps
        self.constants: dict[str, np.ndarray] = constants
        self.weights: list[tf.Variable] = weights  # tracked by tf.Module
        self.weight_sources: list[str] = list(weight_sources)  # IR constants the weights were made from
        self.ranges: dict[str, tuple[tf.Variable, tf.Variable]] = {}  # fake-quant (min, max) per tensor key

    def transposes(self) -> dict[str, dict]:
        """The layout transposes the lowering had to insert, by the op that needed them and why."""
        consumer: dict[str, str] = {}
        for step in self.steps:
            for key in step.inputs:
                consumer.setdefault(key, step.op_type)
        counts = Counter(consumer.get(s.outputs[0], "output") for s in self.steps if s.op_type == "Transpose*")
        return {op: {"count": n, "why": TRANSPOSE_REASONS.get(op, OTHER_REASON)} for op, n in counts.most_common()}

    def set_ranges(self, ranges: dict[str, tuple[float, float]]) -> None:
        """Fake-quantize these tensors from now on; the TFLite converter keeps such ranges exactly.

        The bounds are non-trainable variables owned by the module, so the converter sees them
        and training can later learn them."""
        self.ranges = {k: (tf.Variable(lo, trainable=False, dtype=tf.float32, name="range_min"),
                           tf.Variable(hi, trainable=False, dtype=tf.float32, name="range_max"))
                       for k, (lo, hi) in ranges.items()}

    def tf_arrays(self, feed: dict) -> list[np.ndarray]:
        """A feed of ONNX-layout arrays (by input name) as the TF side takes them, in signature order."""
        return [np.transpose(feed[p.name], p.perm).astype(p.dtype) for p in self.inputs]

    def read(self, env: dict, key: str):
        return env[key] if key in env else tf.constant(self.constants[key])

    def run(self, feeds: dict, keep: bool = False) -> dict:
        """Run the steps on `feeds` (ONNX input name -> tensor in TF layout), fake-quantizing the
        tensors that have ranges. Returns the environment: every tensor still live (all of them
        with `keep`), graph outputs included.
        """
        ranges = self.ranges
        env = {}
        for port in self.inputs:
            env[port.key] = _fake_quant(tf.convert_to_tensor(feeds[port.name]), ranges.get(port.key))
        for step in self.steps:
            with tf.name_scope(step.name):
                results = step.fn(*(self.read(env, k) for k in step.inputs))
            results = results if isinstance(results, (tuple, list)) else (results,)
            for key, tensor in zip(step.outputs, results):
                env[key] = _fake_quant(tensor, ranges.get(key))
            if not keep:
                for key in step.release:
                    env.pop(key, None)
        return env

    def __call__(self, feeds: dict) -> list:
        env = self.run(feeds)
        return [self.read(env, port.key) for port in self.outputs]

    def function(self, taps: list[str] = ()) -> tf.types.experimental.ConcreteFunction:
        """A fresh concrete function (changed ranges need a new trace).

        It returns the graph outputs by signature name, plus `tap{i}` for each key in `taps`.
        """
        signature = [tf.TensorSpec(p.tf_shape, tf.as_dtype(p.dtype), name=p.tf_name) for p in self.inputs]

        def forward(*args):
            env = self.run({p.name: a for p, a in zip(self.inputs, args)}, keep=bool(taps))
            results = {p.tf_name: tf.identity(self.read(env, p.key)) for p in self.outputs}
            results.update({f"tap{i}": env[key] for i, key in enumerate(taps)})
            return results

        return tf.function(forward, input_signature=signature, autograph=False).get_concrete_function()


def _fake_quant(tensor, bounds):
    """Integer and boolean tensors (token ids, masks, indices) stay exact: never fake-quantized."""
    if bounds is None or not tensor.dtype.is_floating:
        return tensor
    low, high = bounds
    return tf.quantization.fake_quant_with_min_max_vars(tensor, low, high, num_bits=8, narrow_range=False)
