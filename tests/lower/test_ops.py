"""Each lowered op against onnxruntime, on seeded random inputs, in the layout real models
give it: a 4-D operand comes out of a random 3x3 Conv (so it arrives NHWC) and, where a
`then_conv` is given, feeds another Conv. Each case also states how many layout steps
(transposes, size-1 reshapes, Flatten reorders) the lowering may insert: 0 unless the op
really needs the ONNX order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from lower.against_ort import SAME_PADS, GraphBuilder, assert_matches_ort, moved


@dataclass(frozen=True)
class Act:
    """A run-time operand. 4-D: a graph input through a random 3x3 Conv with weights in
    [-scale, scale) ([0, scale) if positive); other ranks or stem=False: the graph input."""

    shape: tuple[int, ...]
    stem: bool = True
    positive: bool = False  # for Sqrt and Pow(x, 0.5)
    scale: float = 1.0  # widen the range, e.g. so that Clip(0, 6) clips at 6


@dataclass(frozen=True)
class Rand:
    """A random float32 initializer, uniform in [low, high)."""

    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class ConstantNode:
    """A random operand produced by a Constant node instead of an initializer."""

    value: Rand


@dataclass
class Case:
    """One node under test: its operands and attributes, and what consumes its output."""

    op: str
    inputs: tuple  # Act | Rand | ConstantNode | np.ndarray (a literal initializer) | None (omitted)
    attrs: dict
    outputs: int = 1
    then_conv: int | None = None  # channels of the op's output, fed to a random 3x3 Conv
    then_gemm: int | None = None  # features of the op's output, fed to a random Gemm
    opset: int = 18
    moves: int = 0


def case(name, op, *inputs, outputs=1, then_conv=None, then_gemm=None, opset=18, moves=0, **attrs):
    return pytest.param(Case(op, inputs, attrs, outputs, then_conv, then_gemm, opset, moves), id=name)


def ints(*values) -> np.ndarray:
    return np.array(values, np.int64)


def floats(*values) -> np.ndarray:
    return np.array(values, np.float32)


def scalar(value: float) -> np.ndarray:
    return np.array(value, np.float32)


def operand(graph: GraphBuilder, name: str, spec) -> str:
    """Add what produces one operand of the node under test; returns its name."""
    if spec is None:
        return ""
    if isinstance(spec, Act):
        return activation(graph, name, spec)
    if isinstance(spec, ConstantNode):
        value = numpy_helper.from_array(graph.random(spec.value.shape, spec.value.low, spec.value.high))
        return graph.node("Constant", name=name, value=value)
    return graph.weight(name, graph.random(spec.shape, spec.low, spec.high) if isinstance(spec, Rand) else spec)


def activation(graph: GraphBuilder, name: str, spec: Act) -> str:
    low = 0.0 if spec.positive else -spec.scale
    if len(spec.shape) != 4 or not spec.stem:
        return graph.input(name, spec.shape, 0.1 if spec.positive else low, spec.scale)
    n, channels, h, w = spec.shape
    image = graph.input(f"{name}_image", (n, 3, h, w), 0.0 if spec.positive else -1.0, 1.0)
    return graph.conv(image, 3, channels, low=low, high=spec.scale, name=name, pads=SAME_PADS)


def build(case: Case) -> tuple[onnx.ModelProto, dict]:
    graph = GraphBuilder()
    names = [operand(graph, f"in{i}", spec) for i, spec in enumerate(case.inputs)]
    outputs = graph.node(case.op, *names, name="op", outputs=case.outputs, **case.attrs)
    outputs = outputs if case.outputs > 1 else [outputs]
    if case.then_conv:
        outputs = [graph.conv(outputs[0], case.then_conv, 5, pads=SAME_PADS)]
    if case.then_gemm:
        outputs = [graph.gemm(outputs[0], case.then_gemm, 5)]
    return graph.model(outputs, case.opset), graph.feeds


X = Act((1, 4, 6, 6))  # the common NHWC operand
X8 = Act((1, 4, 8, 8))

CONV = [
    case("Conv-stride2-asymmetric-pads", "Conv", X8, Rand((6, 4, 3, 3)), Rand((6,)), strides=[2, 2],
         pads=[0, 1, 2, 1], then_conv=6),
    case("Conv-dilation2", "Conv", X8, Rand((6, 4, 3, 3)), Rand((6,)), dilations=[2, 2], pads=[2, 2, 2, 2]),
    case("Conv-depthwise", "Conv", X8, Rand((4, 1, 3, 3)), Rand((4,)), group=4, pads=SAME_PADS, then_conv=4),
    case("Conv-depthwise-multiplier2-stride2", "Conv", X8, Rand((8, 1, 3, 3)), Rand((8,)), group=4,
         strides=[2, 2], pads=SAME_PADS),
    case("Conv-depthwise-dilation2-stride2", "Conv", Act((1, 4, 9, 9)), Rand((4, 1, 3, 3)), Rand((4,)), group=4,
         dilations=[2, 2], strides=[2, 2], pads=[2, 2, 2, 2]),
    case("Conv-same-upper-stride2", "Conv", X8, Rand((6, 4, 3, 3)), Rand((6,)), auto_pad="SAME_UPPER",
         strides=[2, 2]),
    case("Conv-same-lower-stride2", "Conv", X8, Rand((6, 4, 3, 3)), Rand((6,)), auto_pad="SAME_LOWER",
         strides=[2, 2]),
    case("Conv-1x1-no-bias", "Conv", X8, Rand((6, 4, 1, 1))),
    case("Conv-5x3-on-graph-input", "Conv", Act((1, 3, 8, 8), stem=False), Rand((6, 3, 5, 3)), Rand((6,)),
         pads=[2, 1, 2, 1]),
    case("ConvTranspose-stride2-pads-output-padding", "ConvTranspose", Act((1, 4, 5, 5)), Rand((4, 3, 3, 3)),
         Rand((3,)), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1], then_conv=3),
    case("ConvTranspose-stride2-kernel2-no-bias", "ConvTranspose", Act((1, 4, 5, 5)), Rand((4, 6, 2, 2)),
         strides=[2, 2]),
    case("ConvTranspose-asymmetric-pads-dilation2", "ConvTranspose", Act((1, 4, 5, 5)), Rand((4, 3, 3, 3)),
         Rand((3,)), strides=[2, 2], pads=[0, 1, 1, 0], dilations=[2, 2]),
]

GROUPED = [  # groups neither 1 nor the channel count
    case("Conv-groups2", "Conv", X8, Rand((6, 2, 3, 3)), Rand((6,)), group=2, pads=SAME_PADS, then_conv=6),
    case("Conv-regnet-group-width8", "Conv", Act((1, 24, 8, 8)), Rand((24, 8, 3, 3)), Rand((24,)), group=3,
         pads=SAME_PADS, then_conv=24),
    case("Conv-groups2-stride2-dilation2-no-bias", "Conv", Act((1, 4, 9, 9)), Rand((8, 2, 3, 3)), group=2,
         strides=[2, 2], dilations=[2, 2], pads=[2, 1, 2, 1]),
]

LINEAR = [
    case("Gemm-transB", "Gemm", Act((3, 16)), Rand((8, 16)), Rand((8,)), transB=1),
    case("Gemm-alpha-beta", "Gemm", Act((3, 16)), Rand((16, 8)), Rand((8,)), alpha=0.5, beta=2.0),
    case("Gemm-no-C", "Gemm", Act((3, 16)), Rand((16, 8))),
    case("Gemm-transA-full-C", "Gemm", Act((16, 3)), Rand((16, 8)), Rand((3, 8)), transA=1),
    case("MatMul-2d-weight", "MatMul", Act((3, 16)), Rand((16, 8))),
    case("MatMul-3d-activation-2d-weight", "MatMul", Act((2, 5, 16)), Rand((16, 8))),
    case("MatMul-two-activations", "MatMul", Act((2, 5, 16)), Act((2, 16, 4))),
    case("MatMul-nhwc-activation-2d-weight", "MatMul", X, Rand((6, 5)), moves=1),
]

ELEMENTWISE = [
    case("Add-const-C11", "Add", X, Rand((4, 1, 1)), then_conv=4),
    case("Add-const-1C11", "Add", X, Rand((1, 4, 1, 1)), then_conv=4),
    case("Add-two-activations", "Add", X, X, then_conv=4),
    case("Sub-const-first", "Sub", Rand((4, 1, 1)), X, then_conv=4),
    case("Sub-const-last-axis", "Sub", X, Rand((6,)), then_conv=4),
    case("Mul-scalar-const", "Mul", X, scalar(2.5), then_conv=4),
    case("Mul-const-height-axis", "Mul", X, Rand((1, 1, 6, 1)), then_conv=4),
    case("Mul-lower-rank-activation", "Mul", X, Act((4, 1, 6)), then_conv=4),
    case("Div-const-C11", "Div", X, Rand((4, 1, 1), 0.5, 2.0), then_conv=4),
    case("Relu", "Relu", X, then_conv=4),
    case("Clip-0-6", "Clip", Act((1, 4, 6, 6), scale=3.0), scalar(0), scalar(6), then_conv=4),
    case("Clip-minus1-1", "Clip", X, scalar(-1), scalar(1), then_conv=4),
    case("LeakyRelu", "LeakyRelu", X, alpha=0.1, then_conv=4),
    case("PRelu-per-channel", "PRelu", X, Rand((4, 1, 1)), then_conv=4),
    case("Sigmoid", "Sigmoid", X, then_conv=4),
    case("HardSigmoid-default", "HardSigmoid", Act((1, 4, 6, 6), scale=2.0), then_conv=4),
    case("HardSigmoid-alpha-one-sixth", "HardSigmoid", Act((1, 4, 6, 6), scale=2.0), alpha=1 / 6, then_conv=4),
    case("HardSwish", "HardSwish", Act((1, 4, 6, 6), scale=2.0), then_conv=4),
    case("Tanh", "Tanh", X, then_conv=4),
    case("Gelu-exact", "Gelu", X, opset=20, then_conv=4),
    case("Gelu-tanh", "Gelu", X, approximate="tanh", opset=20, then_conv=4),
    case("Erf", "Erf", X, then_conv=4),
    case("Sqrt", "Sqrt", Act((1, 4, 6, 6), positive=True), then_conv=4),
    case("Pow-2", "Pow", X, scalar(2), then_conv=4),
    case("Pow-0.5", "Pow", Act((1, 4, 6, 6), positive=True), scalar(0.5), then_conv=4),
    case("Pow-3", "Pow", X, scalar(3), then_conv=4),
    case("Softmax-channel-axis", "Softmax", X, axis=1, then_conv=4),
    case("Softmax-last-axis", "Softmax", X, axis=-1, then_conv=4),
    case("BatchNormalization", "BatchNormalization", X, Rand((4,)), Rand((4,)), Rand((4,)), Rand((4,), 0.5, 2.0),
         epsilon=1e-3, then_conv=4),
    case("LayerNormalization-3d", "LayerNormalization", Act((2, 5, 8)), Rand((8,)), Rand((8,)), axis=-1),
    case("LayerNormalization-nhwc-last-axis", "LayerNormalization", X, Rand((6,)), Rand((6,)), axis=-1,
         then_conv=4),
    case("Constant-node-operand", "Add", X, ConstantNode(Rand((4, 1, 1))), then_conv=4),
    case("Identity-between-convs", "Identity", X, then_conv=4),
    case("Identity-as-output", "Identity", X),
]

POOL_AND_REDUCE = [
    case("MaxPool-k3-s2-pads", "MaxPool", X8, kernel_shape=[3, 3], strides=[2, 2], pads=SAME_PADS, then_conv=4),
    case("MaxPool-k3-s2-ceil", "MaxPool", X8, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    case("MaxPool-k3-s2-pads-ceil", "MaxPool", X8, kernel_shape=[3, 3], strides=[2, 2], pads=SAME_PADS, ceil_mode=1),
    case("MaxPool-k2-asymmetric-pads", "MaxPool", Act((1, 4, 7, 7)), kernel_shape=[2, 2], strides=[2, 2],
         pads=[0, 0, 1, 1]),
    case("AveragePool-k2-s2", "AveragePool", X8, kernel_shape=[2, 2], strides=[2, 2], then_conv=4),
    case("AveragePool-pads-exclude-pad", "AveragePool", X8, kernel_shape=[3, 3], strides=[2, 2], pads=SAME_PADS),
    case("AveragePool-pads-include-pad", "AveragePool", X8, kernel_shape=[3, 3], strides=[2, 2], pads=SAME_PADS,
         count_include_pad=1),
    case("AveragePool-ceil", "AveragePool", X8, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    case("AveragePool-pads-ceil-include-pad", "AveragePool", X8, kernel_shape=[3, 3], strides=[2, 2],
         pads=SAME_PADS, ceil_mode=1, count_include_pad=1),
    # transformers' EfficientNet: nn.AvgPool2d(1280, ceil_mode=True) over a 7x7 map
    case("AveragePool-window-beyond-input-ceil", "AveragePool", X, kernel_shape=[1280, 1280], strides=[1280, 1280],
         ceil_mode=1, count_include_pad=1, then_conv=4),
    case("AveragePool-window-beyond-pads-ceil-include-pad", "AveragePool", X, kernel_shape=[10, 10],
         strides=[10, 10], pads=SAME_PADS, ceil_mode=1, count_include_pad=1),
    case("MaxPool-window-beyond-input-ceil", "MaxPool", X, kernel_shape=[9, 9], strides=[9, 9], ceil_mode=1),
    case("GlobalAveragePool", "GlobalAveragePool", X, then_conv=4),
    case("ReduceMean-HW-keepdims", "ReduceMean", X, ints(2, 3), keepdims=1, then_conv=4),
    case("ReduceMean-HW-no-keepdims", "ReduceMean", X, ints(2, 3), keepdims=0, then_gemm=4),
    case("ReduceMean-channel", "ReduceMean", X, ints(1), keepdims=1, then_conv=1),
    case("ReduceMean-negative-axis-no-keepdims", "ReduceMean", X, ints(-1), keepdims=0),
    case("ReduceL2-spatial-keepdims", "ReduceL2", X, ints(2, 3), keepdims=1, then_conv=4),  # ConvNeXtV2's GRN
    case("ReduceL1-channel", "ReduceL1", X, ints(1), keepdims=0),
    case("ReduceSumSquare-width", "ReduceSumSquare", X, ints(3), keepdims=1),
    case("ReduceLogSumExp-channel", "ReduceLogSumExp", X, ints(1), keepdims=1, then_conv=1),
]

SHAPE = [
    case("Flatten-then-Gemm", "Flatten", X, then_gemm=144),
    case("Flatten-as-output", "Flatten", X, moves=1),  # the reorder to ONNX order happens at the output
    case("Flatten-axis2", "Flatten", X, axis=2),  # NHWC [N,H,W,C] -> TF [H*W, N*C], ONNX [N*C, H*W]
    case("Reshape-to-2d-then-Gemm", "Reshape", X, ints(1, -1), then_gemm=144),
    case("Reshape-to-3d", "Reshape", X, ints(0, 4, -1)),  # NHWC [N,H,W,C] -> TF [N,H*W,C], ONNX [N,C,H*W]
    case("Reshape-3d-activation", "Reshape", Act((2, 5, 8)), ints(5, 16)),
    case("Transpose-to-NHWC", "Transpose", X, perm=[0, 2, 3, 1]),
    case("Transpose-swap-HW-then-conv", "Transpose", X, perm=[0, 1, 3, 2], then_conv=4, moves=1),
    case("Transpose-3d", "Transpose", Act((2, 5, 8)), perm=[1, 2, 0]),
    case("Squeeze-width", "Squeeze", Act((1, 4, 6, 1)), ints(3)),
    case("Squeeze-negative-axis", "Squeeze", Act((1, 4, 6, 1)), ints(-1)),
    case("Squeeze-channel", "Squeeze", Act((1, 1, 6, 6)), ints(1)),
    case("Squeeze-HW-then-Gemm", "Squeeze", Act((1, 4, 1, 1)), ints(2, 3), then_gemm=4),
    case("Unsqueeze-to-5d", "Unsqueeze", X, ints(4)),
    case("Unsqueeze-channel-negative-axes", "Unsqueeze", X, ints(-4, 0)),
    case("Unsqueeze-3d-then-conv", "Unsqueeze", Act((1, 4, 6)), ints(3), then_conv=4, moves=1),
    case("Unsqueeze-batch-then-conv", "Unsqueeze", Act((4, 6, 6)), ints(0), then_conv=4, moves=1),
]

DATA_MOVEMENT = [
    case("Concat-channel-two-convs", "Concat", X, X, axis=1, then_conv=8),
    case("Concat-negative-channel-axis", "Concat", X, X, axis=-3, then_conv=8),
    case("Concat-channel-with-constant", "Concat", X, Rand((1, 2, 6, 6)), axis=1, then_conv=6),
    case("Concat-width", "Concat", X, X, axis=3, then_conv=4),
    case("Split-channel-uneven", "Split", Act((1, 6, 7, 7)), ints(2, 3, 1), axis=1, outputs=3),
    case("Split-width-num-outputs", "Split", Act((1, 6, 7, 7)), axis=-1, num_outputs=2, outputs=2),
    case("Slice-channel", "Slice", X, ints(1), ints(3), ints(1), then_conv=2),
    case("Slice-channel-reversed", "Slice", X, ints(-1), ints(-100), ints(-3), ints(-1), then_conv=4),
    case("Slice-spatial-negative-steps", "Slice", X, ints(-1, -2), ints(-100, 0), ints(2, 3), ints(-1, -2),
         then_conv=4),
    case("Pad-constant-spatial", "Pad", X, ints(0, 0, 1, 2, 0, 0, 2, 1), scalar(0.5), then_conv=4),
    case("Pad-reflect", "Pad", X, ints(0, 0, 1, 2, 0, 0, 2, 1), mode="reflect", then_conv=4),
    case("Pad-edge", "Pad", X, ints(0, 0, 1, 2, 0, 0, 2, 1), mode="edge", then_conv=4),
    case("Pad-channel-axes-input", "Pad", X, ints(1, 2), None, ints(1), then_conv=7),
    case("Pad-edge-one-sided-negative-axes", "Pad", X, ints(0, 2, 3, 0), None, ints(-1, -2), mode="edge",
         then_conv=4),
    case("Gather-channel", "Gather", Act((1, 6, 5, 5)), ints(4, 0, 2), axis=1, then_conv=3),
    case("Gather-channel-scalar-negative-index", "Gather", Act((1, 6, 5, 5)), np.array(-2, np.int64), axis=1),
    case("Gather-width-negative-axis", "Gather", Act((1, 6, 5, 5)), ints(0, 4), axis=-1, then_conv=6),
]

RESIZE = [
    case("Resize-nearest-x2-asymmetric-floor", "Resize", Act((1, 4, 5, 5)), None, floats(1, 1, 2, 2),
         mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor", then_conv=4),
    case("Resize-linear-x2-half-pixel", "Resize", Act((1, 4, 5, 5)), None, floats(1, 1, 2, 2), mode="linear",
         coordinate_transformation_mode="half_pixel", then_conv=4),
    case("Resize-linear-x2-pytorch-half-pixel", "Resize", Act((1, 4, 5, 5)), None, floats(1, 1, 2, 2),
         mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
    case("Resize-linear-align-corners-sizes", "Resize", Act((1, 4, 5, 5)), None, None, ints(1, 4, 9, 9),
         mode="linear", coordinate_transformation_mode="align_corners", then_conv=4),
    case("Resize-linear-downsample", "Resize", X, None, floats(1, 1, 0.5, 0.5), mode="linear",
         coordinate_transformation_mode="half_pixel"),
    case("Resize-nearest-downsample-sizes", "Resize", X, None, None, ints(1, 4, 4, 4), mode="nearest"),
]

MASK = np.tril(np.ones((1, 1, 6, 6), bool))  # a causal mask over the spatial grid

ATTENTION_AND_MODERN = [  # the ops transformers and modern convnets bring, in the layout they meet
    case("Where-const-mask-scalar-fill", "Where", MASK, X, scalar(-1e4), then_conv=4),
    case("Where-const-mask-const-branch", "Where", MASK, Rand((1, 4, 1, 1)), X, then_conv=4),
    case("Expand-batch", "Expand", X, ints(2, 4, 6, 6), then_conv=4),
    case("Expand-lower-rank", "Expand", Act((6, 1)), ints(2, 6, 5)),
    case("Tile-width", "Tile", X, ints(1, 1, 1, 2), then_conv=4),
    case("CumSum-channel-exclusive-reverse", "CumSum", X, np.array(1, np.int64), exclusive=1, reverse=1,
         then_conv=4),
    case("CumSum-tokens", "CumSum", Act((2, 5, 8)), np.array(-2, np.int64)),
    case("Softplus", "Softplus", Act((1, 4, 6, 6), scale=30.0), then_conv=4),
    case("Mish", "Mish", Act((1, 4, 6, 6), scale=5.0), then_conv=4),
    case("Softsign", "Softsign", X, then_conv=4),
    case("Cos", "Cos", Act((1, 4, 6, 6), scale=4.0), then_conv=4),
    case("Sin", "Sin", Act((1, 4, 6, 6), scale=4.0), then_conv=4),
    case("Mod-fmod-float", "Mod", Act((1, 4, 6, 6), scale=5.0), scalar(1.5), fmod=1, then_conv=4),
    case("GatherND-token-rows", "GatherND", Act((2, 5, 8)), np.array([[[1], [3]], [[0], [4]]], np.int64),
         batch_dims=1),
    case("GatherElements-channel", "GatherElements", X, np.random.default_rng(1).integers(-4, 4, (1, 2, 6, 6)),
         axis=1),
    case("ScatterND-rows", "ScatterND", Act((4, 8)), np.array([[2], [0]], np.int64), Act((2, 8))),
    case("InstanceNormalization", "InstanceNormalization", X, Rand((4,)), Rand((4,)), then_conv=4),
    case("GroupNormalization-2-groups", "GroupNormalization", Act((1, 6, 5, 5)), Rand((6,)), Rand((6,)),
         num_groups=2, opset=21, then_conv=6),
    case("GroupNormalization-1-group", "GroupNormalization", X, Rand((4,)), Rand((4,)), num_groups=1, opset=21,
         then_conv=4),
    case("DepthToSpace-dcr", "DepthToSpace", Act((1, 8, 3, 3)), blocksize=2, then_conv=2),
    case("DepthToSpace-crd", "DepthToSpace", Act((1, 8, 3, 3)), blocksize=2, mode="CRD", then_conv=2),
    case("SpaceToDepth", "SpaceToDepth", X, blocksize=2, then_conv=16),
    # MobileViTV2's fold of 2x2 patches back into the map
    case("Col2Im-patches-tile-the-map", "Col2Im", Act((1, 16, 9)), ints(6, 6), ints(2, 2), strides=[2, 2],
         then_conv=4),
    case("ArgMax-channel", "ArgMax", X, axis=1, keepdims=0),
    case("ArgMin-last-axis-keepdims-last-index", "ArgMin", Act((3, 16)), axis=-1, select_last_index=1),
    case("TopK-logits", "TopK", Act((3, 16)), ints(5), outputs=2),
    case("TopK-channel-smallest", "TopK", X, ints(2), axis=1, largest=0, outputs=2),
    case("TopK-height-axis", "TopK", X, ints(3), axis=2, outputs=2, moves=1),
    case("Einsum-attention-scores", "Einsum", Act((2, 2, 5, 4)), Act((2, 2, 6, 4)), equation="bhid,bhjd->bhij"),
    case("Einsum-token-weight", "Einsum", Act((2, 5, 8)), Rand((8, 3)), equation="bij,jk->bik"),
    case("Einsum-ellipsis-sum-and-transpose", "Einsum", Act((2, 3, 5, 4)), Rand((4,)), equation="...ij,j->...i"),
    case("Einsum-implicit-output", "Einsum", Act((5, 4)), Act((4, 3)), equation="ij,jk"),
    case("GridSample-bilinear-zeros", "GridSample", X, Act((1, 4, 5, 2), stem=False, scale=1.3), then_conv=4),
    case("GridSample-nearest-border-align-corners", "GridSample", X, Act((1, 4, 5, 2), stem=False, scale=1.3),
         mode="nearest", padding_mode="border", align_corners=1, then_conv=4),
    case("GridSample-bilinear-reflection", "GridSample", X, Act((1, 4, 5, 2), stem=False, scale=2.5),
         padding_mode="reflection", then_conv=4),
]


@pytest.mark.parametrize("edgetpu", [False, True], ids=["grouped", "split"])
@pytest.mark.parametrize("case", GROUPED)
def test_grouped_conv_matches_onnxruntime_as_one_conv_or_split_per_group(case, edgetpu):
    """Both forms of a grouped conv: TF's grouped conv (tflite) and one conv per group (coral)."""
    model, feeds = build(case)
    lowered = assert_matches_ort(model, feeds, edgetpu=edgetpu)
    assert moved(lowered) == []


@pytest.mark.parametrize("case", [*CONV, *LINEAR, *ELEMENTWISE, *POOL_AND_REDUCE, *SHAPE, *DATA_MOVEMENT, *RESIZE,
                                  *ATTENTION_AND_MODERN])
def test_op_matches_onnxruntime(case):
    model, feeds = build(case)
    lowered = assert_matches_ort(model, feeds)
    assert len(moved(lowered)) == case.moves, moved(lowered)


@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
def test_pool_window_beyond_the_input_makes_no_tensor_larger_than_the_input(op):
    """A 1280x1280 window over a 6x6 map must not pad the map up to the window (8 GB at 1280
    channels): every tensor of the traced graph stays within the input's size."""
    import onnx_ir as ir

    from edgeopt.lower import lower

    model, _ = build(Case(op, (X,), {"kernel_shape": [1280, 1280], "strides": [1280, 1280], "ceil_mode": 1}))
    graph = lower(ir.from_proto(model)).function().graph
    sizes = [t.shape.num_elements() or 0 for o in graph.get_operations() for t in o.outputs]
    assert max(sizes) <= int(np.prod(X.shape)) * 4  # the stem conv's weights are 4x4x3x3


def test_attention_scores_need_no_transpose_for_k_transposed():
    """Q @ K^T: K's transpose is BATCH_MATMUL's adj_y, not a TRANSPOSE op."""
    graph = GraphBuilder()
    q, k = graph.input("q", (2, 5, 8)), graph.input("k", (2, 5, 8))
    scores = graph.node("MatMul", q, graph.node("Transpose", k, perm=[0, 2, 1]), name="scores")
    lowered = assert_matches_ort(graph.model([scores]), graph.feeds)
    assert moved(lowered) == []


def test_token_reshapes_of_nhwc_patches_need_no_transpose():
    """ViT's patch embedding: Conv -> Reshape [N, C, H*W] -> Transpose -> tokens [N, H*W, C]
    stays the TF tensor the conv made (a reshape of NHWC), then feeds a token MatMul."""
    graph = GraphBuilder()
    patches = graph.conv(graph.input("image", (1, 3, 8, 8)), 3, 6, kernel=2, strides=[2, 2])
    flat = graph.node("Reshape", patches, graph.weight("shape", ints(1, 6, 16)))
    tokens = graph.node("Transpose", flat, perm=[0, 2, 1])
    out = graph.node("MatMul", tokens, graph.weight("w", graph.random((6, 4))))
    lowered = assert_matches_ort(graph.model([out]), graph.feeds)
    assert moved(lowered) == []


EDGETPU_FORMS = [  # forms the coral target lowers differently (edgeopt.lower.lower, edgetpu=True)
    case("LayerNormalization-channels-as-l2-norm", "LayerNormalization", Act((1, 6, 5, 8)), Rand((8,)), Rand((8,)),
         axis=-1),
    case("MatMul-tokens-as-1x1-conv", "MatMul", Act((1, 7, 16)), Rand((16, 8))),
    case("MatMul-4d-as-1x1-conv", "MatMul", Act((1, 5, 6, 16), stem=False), Rand((16, 8))),
    case("Split-uneven-as-slices", "Split", Act((1, 7, 12)), ints(3, 4, 5),
         axis=-1, outputs=3),
]


@pytest.mark.parametrize("case", EDGETPU_FORMS)
def test_edgetpu_forms_match_onnxruntime(case):
    model, feeds = build(case)
    assert_matches_ort(model, feeds, edgetpu=True)


def test_a_6d_transpose_of_a_batch_of_one_is_lowered_5d():
    """MobileViTV2's patch unfold: Reshape to [1, C, nh, ph, nw, pw] and a 6-D Transpose. TFLite's
    6-D TRANSPOSE is version 6, which edgetpu_compiler 16 cannot parse: the unit axis goes."""
    graph = GraphBuilder()
    x = graph.conv(graph.input("image", (1, 3, 8, 8)), 3, 4, pads=SAME_PADS)
    blocks = graph.node("Reshape", x, graph.weight("blocks", ints(1, 4, 4, 2, 4, 2)))
    patches = graph.node("Transpose", blocks, perm=[0, 3, 5, 1, 2, 4])
    out = graph.node("Reshape", patches, graph.weight("rows", ints(1, 4, 4, 16)))
    lowered = assert_matches_ort(graph.model([out]), graph.feeds)
    graph_def = lowered.function().graph
    ranks = [len(op.inputs[0].shape) for op in graph_def.get_operations() if op.type == "Transpose"]
    assert ranks and max(ranks) <= 5, ranks
