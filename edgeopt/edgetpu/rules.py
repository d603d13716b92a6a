"""Which TFLite ops the Edge TPU compiler maps, as a table: op -> constraint check + source.

Each check takes the op in its model and returns why it cannot map, or None. The statuses
are the compiler's own strings (seen in its logs, ../shared/reference/edgetpu.md); the
reasons are ours, so a user learns what to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from edgeopt.tflite.reader import OperatorInfo, TensorInfo, TfliteModel

MAPPED = "Mapped to Edge TPU"
NOT_SUPPORTED = "Operation not supported"
DATA_TYPE = "Operation is working on an unsupported data type"
LIMITATION = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
AFTER_PARTITION = "More than one subgraph is not supported"

MODELS_INTRO = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"
OLD_MODELS_INTRO = MODELS_INTRO + " (row from an older copy of the table)"
INT8_TYPES = {"INT8", "UINT8"}
INNERMOST_DIMS = 3  # "only the 3 innermost dimensions may be larger than 1" (models-intro, model requirements)
SOFTMAX_MAX_ELEMENTS = 16_000


@dataclass(frozen=True)
class Op:
    """An operator with its model, for the checks."""

    model: TfliteModel
    info: OperatorInfo

    @property
    def opcode(self) -> str:
        return self.info.opcode

    def input(self, i: int) -> TensorInfo | None:
        index = self.info.inputs[i] if i < len(self.info.inputs) else -1
        return self.model.tensor(index) if index >= 0 else None

    def tensors(self) -> list[TensorInfo]:
        return [self.model.tensor(i) for i in (*self.info.inputs, *self.info.outputs) if i >= 0]

    def activations(self) -> list[TensorInfo]:
        return [t for t in self.tensors() if not t.constant]

    @property
    def output(self) -> TensorInfo:
        return self.model.tensor(self.info.outputs[0])

    def option(self, name: str, default=0):
        return self.info.options.get(name, default)


Check = Callable[[Op], "str | None"]


def _no_fused_activation(op: Op) -> str | None:
    if op.option("fusedActivationFunction"):
        return f"{op.opcode} with a fused activation; the Edge TPU takes it only without one"
    return None


def _same_dilation(op: Op) -> str | None:
    h, w = op.option("dilationHFactor", 1), op.option("dilationWFactor", 1)
    return None if h == w else f"dilation {h}x{w}: the Edge TPU needs the same dilation in x and y"


def _axes(op: Op) -> tuple[int, ...] | None:
    axes = op.input(1)
    if axes is None or axes.values is None:
        return None
    rank = len(op.input(0).shape)
    return tuple(a % rank for a in axes.values)


def _not_on_batch(op: Op) -> str | None:
    axes = _axes(op)
    if axes is not None and 0 in axes:
        return f"{op.opcode} over the batch dimension"
    return None


def _mean(op: Op) -> str | None:
    axes, shape = _axes(op), op.input(0).shape
    if axes is None:
        return None
    if 0 in axes:
        return "MEAN over the batch dimension"
    if len(shape) - 1 in axes and shape[-1] % 4:
        return f"MEAN over the channel (z) dimension of size {shape[-1]}, which is not a multiple of 4"
    return None


def _pad(op: Op) -> str | None:
    paddings = op.input(1)
    if paddings is not None and paddings.values is not None and any(paddings.values[:2]):
        return "PAD of the batch dimension"
    return None


def _pack(op: Op) -> str | None:
    return "PACK along the batch dimension" if op.option("axis") == 0 else None


def _concatenation(op: Op) -> str | None:
    constant = [t for t in (op.input(i) for i in range(len(op.info.inputs))) if t is not None and t.constant]
    if constant and len(op.info.inputs) > 2:
        return "CONCATENATION of a constant with more than 2 inputs"
    return _no_fused_activation(op)


def _fully_connected(op: Op) -> str | None:
    if op.option("weightsFormat"):
        return "FULLY_CONNECTED with shuffled weights; the Edge TPU takes the default weights format only"
    if sum(d > 1 for d in op.output.shape) > 1:
        return f"FULLY_CONNECTED output {list(op.output.shape)}: the Edge TPU needs a 1-D output (batch 1)"
    return None


def _prelu(op: Op) -> str | None:
    alpha = op.input(1)
    if alpha is not None and sum(d > 1 for d in alpha.shape) > 1:
        return f"PRELU alpha of shape {list(alpha.shape)}; the Edge TPU needs a 1-D alpha (Keras shared_axes=[1, 2])"
    return None


def _resize(op: Op) -> str | None:
    shape = op.input(0).shape
    return f"{op.opcode} of a batch of {shape[0]}; the Edge TPU resizes 3-D tensors" if shape[0] != 1 else None


def _softmax(op: Op) -> str | None:
    shape = op.input(0).shape
    if sum(d > 1 for d in shape) > 1 or math.prod(shape) > SOFTMAX_MAX_ELEMENTS:
        return f"SOFTMAX of shape {list(shape)}: the Edge TPU needs a 1-D input of at most {SOFTMAX_MAX_ELEMENTS} values"
    return None


def _strided_slice(op: Op) -> str | None:
    strides = op.input(3)
    if strides is not None and strides.values is not None and any(s != 1 for s in strides.values):
        return f"STRIDED_SLICE with strides {list(strides.values)}; the Edge TPU needs strides of 1"
    if op.option("ellipsisMask") or op.option("newAxisMask"):
        return "STRIDED_SLICE with an ellipsis or new-axis mask"
    return None


def _squeeze(op: Op) -> str | None:
    shape = op.input(0).shape
    leading = next((i for i, d in enumerate(shape) if d != 1), len(shape))
    dims = op.option("squeezeDims", None) or [i for i, d in enumerate(shape) if d == 1]
    if any(d % len(shape) >= leading for d in dims):
        return "SQUEEZE of a dimension that is not a leading 1"
    return None


def _quantize(op: Op) -> str | None:
    """Float in: the model's float input quantized on the CPU. Compiler 15 logs report it so
    (f0cal/google-coral#20; system-software-lab/nrf20's mnist4 log, tests/edgetpu/logs/)."""
    source = op.input(0)
    if source is not None and source.dtype not in INT8_TYPES:
        return (f"QUANTIZE from {source.dtype} '{source.name}': float input is quantized on the CPU; "
                "build with --io-dtype uint8 or int8 so the Edge TPU takes the input as it is")
    return None


def _transpose(op: Op) -> str | None:
    return ("compiler 16 lists TRANSPOSE but leaves it unmapped in cases Coral does not document "
            "(google-coral/edgetpu#433); lay the model out NHWC so no TRANSPOSE is needed")


@dataclass(frozen=True)
class Rule:
    check: Check | None
    source: str
    checks_types: bool = False  # the check decides about float tensors itself (before the data-type rule)


RULES: dict[str, Rule] = {
    **{op: Rule(None, MODELS_INTRO) for op in (
        "ADD", "EXPAND_DIMS", "L2_NORMALIZATION", "LOGISTIC", "MAXIMUM", "MINIMUM", "MUL", "RELU", "RELU6",
        "RELU_N1_TO_1", "SLICE", "SPACE_TO_DEPTH", "SPLIT", "SUB", "TANH", "TRANSPOSE_CONV", "RESHAPE", "HARD_SWISH",
        "DEPTH_TO_SPACE", "LSTM")},
    "AVERAGE_POOL_2D": Rule(_no_fused_activation, MODELS_INTRO),
    "MAX_POOL_2D": Rule(_no_fused_activation, MODELS_INTRO),
    "CONCATENATION": Rule(_concatenation, MODELS_INTRO),
    "CONV_2D": Rule(_same_dilation, MODELS_INTRO),
    "DEPTHWISE_CONV_2D": Rule(_same_dilation, MODELS_INTRO),
    "FULLY_CONNECTED": Rule(_fully_connected, MODELS_INTRO),
    "MEAN": Rule(_mean, MODELS_INTRO),
    "PACK": Rule(_pack, MODELS_INTRO),
    "PAD": Rule(_pad, MODELS_INTRO),
    "PRELU": Rule(_prelu, MODELS_INTRO),
    "REDUCE_MAX": Rule(_not_on_batch, MODELS_INTRO),
    "REDUCE_MIN": Rule(_not_on_batch, MODELS_INTRO),
    "RESIZE_BILINEAR": Rule(_resize, MODELS_INTRO),
    "RESIZE_NEAREST_NEIGHBOR": Rule(_resize, MODELS_INTRO),
    "SOFTMAX": Rule(_softmax, OLD_MODELS_INTRO),
    "SQUEEZE": Rule(_squeeze, OLD_MODELS_INTRO),
    "STRIDED_SLICE": Rule(_strided_slice, OLD_MODELS_INTRO),
    "QUANTIZE": Rule(_quantize, MODELS_INTRO, checks_types=True),
    "TRANSPOSE": Rule(_transpose, "https://github.com/google-coral/edgetpu/issues/433"),
    # not in the table, but logs report a float DEQUANTIZE by its data type (google-coral/edgetpu#490)
    "DEQUANTIZE": Rule(None, "https://github.com/google-coral/edgetpu/issues/490"),
}


def _data_type(op: Op) -> str | None:
    floats = [t for t in op.activations() if t.dtype not in INT8_TYPES and t.dtype != "INT32"]
    if floats:
        t = floats[0]
        return f"tensor '{t.name}' is {t.dtype}; the Edge TPU computes on int8/uint8 only"
    return None


def _rank(op: Op) -> str | None:
    for t in op.activations():
        if any(d > 1 for d in t.shape[:-INNERMOST_DIMS]):
            return (f"tensor '{t.name}' has shape {list(t.shape)}: only the {INNERMOST_DIMS} innermost dimensions "
                    "may be larger than 1")
    return None


def verdict(op: Op) -> tuple[str, str]:
    """(status, reason) for one op taken on its own; the partition rule comes later."""
    rule = RULES.get(op.opcode)
    if rule is None:
        return NOT_SUPPORTED, f"{op.opcode} has no Edge TPU kernel ({MODELS_INTRO})"
    reason = None if rule.checks_types else _data_type(op)
    if reason:
        return DATA_TYPE, reason
    # the op's own rule first: it is the more precise reason, and some rules (RESIZE's batch of
    # more than 1) concern 4-D tensors the rank rule would otherwise always speak for
    reason = (rule.check(op) if rule.check else None) or _rank(op)
    return (LIMITATION, reason) if reason else (MAPPED, "")
