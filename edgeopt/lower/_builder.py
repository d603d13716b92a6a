"""Walks the ONNX graph once, lowering node by node through the table in _table.py.

Planning runs every step eagerly on all-ones inputs as it goes, so each op sees the real
static shapes of its inputs (no reliance on ONNX shape inference) and a failing op is
reported with its node name and position. Layout is tracked per value (see _layout.py);
a transpose is inserted only where a consumer needs a layout that is not at hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from edgeopt.errors import EdgeoptError, ModelError, UnsupportedOpError
from edgeopt.lower import _layout as layout
from edgeopt.ir.fusions import find_fusions
from edgeopt.lower._model import LoweredModel, Port, Step
from edgeopt.lower._table import OPS

ONNX_DOMAINS = ("", "ai.onnx")
DTYPES = {np.dtype(t) for t in ("float16", "float32", "float64", "bool", "int8", "uint8", "int16", "uint16",
                                 "int32", "uint32", "int64", "uint64")}


class NeedsConstant(UnsupportedOpError):
    """An input the lowering bakes into the TF graph (weights, shapes, axes) is not constant."""


@dataclass
class Val:
    key: str | None  # env key; None for constants
    perm: layout.Perm
    shape: tuple[int, ...]  # ONNX shape
    dtype: tf.DType
    const: np.ndarray | None = None
    order: np.ndarray | None = None  # tf[..., j] == onnx[..., order[j]] (Flatten of NHWC)

    @property
    def rank(self) -> int:
        return len(self.shape)


def _scope(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).strip("/")
    return cleaned if cleaned[:1].isalnum() else f"n{cleaned}"


def _signature_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "x"
    base = base if base[0].isalpha() else f"t_{base}"
    candidate, n = base, 1
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


class NodeLowering:
    """What an op's lowering function sees of one node, and how it emits TF steps."""

    def __init__(self, builder: "Builder", node: ir.Node, index: int):
        self.builder, self.node, self.index = builder, node, index
        self.name = node.name or f"{node.op_type}_{index}"
        self.opset = builder.opset

    # -- reading the node
    def attr(self, name: str, default=None):
        attribute = self.node.attributes.get(name)
        if attribute is None:
            return default
        if attribute.type == ir.AttributeType.TENSOR:
            return attribute.value.numpy()
        if attribute.type in (ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS):
            return list(attribute.value)
        return attribute.value

    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] is not None and self.node.inputs[i].name != ""

    def input(self, i: int) -> Val:
        return self.builder.values[self.node.inputs[i].name]

    def output_used(self, i: int) -> bool:
        outputs = self.node.outputs
        return i < len(outputs) and outputs[i] is not None and bool(outputs[i].uses() or outputs[i].is_graph_output())

    @property
    def input_count(self) -> int:
        return len(self.node.inputs)

    def const(self, i: int, what: str) -> np.ndarray:
        """Input i as a build-time array; the op cannot take it at run time."""
        value = self.input(i)
        if value.const is None:
            raise NeedsConstant(f"{self.describe()}: input {i} ({what}) must be a constant, it is computed at run time",
                                hint="Export with constant weights/shapes (torch.export, or fold constants in the source).")
        return value.const

    def optional_const(self, i: int, what: str, default=None):
        return self.const(i, what) if self.has_input(i) else default

    def attr_or_input(self, attribute: str, i: int, what: str, default=None):
        """Opset changes moved many attributes (axes, pads, split) to inputs; accept both."""
        if self.has_input(i):
            return self.const(i, what)
        value = self.attr(attribute)
        return default if value is None else value

    def require_dtype(self, dtype, what: str) -> tf.DType:
        if np.dtype(dtype) not in DTYPES:
            self.unsupported(f"{what} has dtype {np.dtype(dtype).name}, which TF/TFLite kernels do not take")
        return tf.as_dtype(dtype)

    def describe(self) -> str:
        domain = "" if self.node.domain in ONNX_DOMAINS else f"{self.node.domain}::"
        return f"node {self.name!r} ({domain}{self.node.op_type}, #{self.index + 1} of {self.builder.node_count})"

    def unsupported(self, why: str, hint: str | None = None):
        raise UnsupportedOpError(f"{self.describe()}: {why}", hint=hint or "Rewrite this node in the source model, "
                                 "or use --target onnx, which runs every ONNX op.")

    # -- emitting
    def tensor(self, i: int, perm: layout.Perm | None = None, *, keep_order: bool = False) -> str:
        """The key of input i stored in `perm` (default: as it is), transposing if needed."""
        return self.builder.deliver(self.input(i), perm, keep_order=keep_order)

    def constant(self, array: np.ndarray) -> str:
        return self.builder.add_constant(np.asarray(array))

    def variable(self, label: str, array: np.ndarray) -> tf.Variable:
        var = tf.Variable(np.ascontiguousarray(array), name=f"{_scope(self.name)}/{label}", trainable=True)
        self.builder.weights.append(var)
        return var

    def emit(self, fn, inputs: list[str], perms=None, *, params: dict | None = None,
             orders: list | None = None, outputs: list[int] | None = None) -> None:
        """Add a step computing the node's outputs (or those listed) from `inputs` (keys).

        `perms`: the layout of each output (default identity); `orders`: see Val.order.
        """
        self.builder.add_step(self, fn, inputs, perms, params or {}, orders, outputs)

    def emit_constant(self, array: np.ndarray, output: int = 0) -> None:
        array = np.asarray(array)
        self.builder.values[self.node.outputs[output].name] = Val(
            None, layout.identity(array.ndim), array.shape, tf.as_dtype(array.dtype), const=array)

    def alias(self, value: Val, output: int = 0, **changes) -> None:
        """The output is the input under another name/layout (no step)."""
        self.builder.values[self.node.outputs[output].name] = Val(**{**value.__dict__, **changes})


MAX_TRANSPOSE_RANK = 5  # a 6-D TRANSPOSE is version 6, which edgetpu_compiler 16 cannot parse


def _transpose(value: Val, rel: tuple, shape: list):
    """tf.transpose, with the size-1 axes left out when the tensor has more dims than TRANSPOSE
    should (MobileViTV2's patch unfold is a 6-D transpose of a batch of one)."""
    tf_shape = [value.shape[a] for a in value.perm]
    kept = [axis for axis, size in enumerate(tf_shape) if size != 1]
    if len(tf_shape) <= MAX_TRANSPOSE_RANK or len(kept) == len(tf_shape):
        return lambda x: tf.transpose(x, rel)
    inner = [kept.index(axis) for axis in rel if axis in kept]
    squeezed = [tf_shape[axis] for axis in kept]
    return lambda x: tf.reshape(tf.transpose(tf.reshape(x, squeezed), inner), shape)


class Builder:
    def __init__(self, model: ir.Model, edgetpu: bool = False):
        self.model = model
        self.edgetpu = edgetpu  # see lower()
        self.graph = model.graph
        self.opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
        self.node_count = len(self.graph)
        self.values: dict[str, Val] = {}
        self.samples: dict[str, tf.Tensor] = {}
        self.steps: list[Step] = []
        self.constants: dict[str, np.ndarray] = {}
        self.weights: list[tf.Variable] = []
        self.weight_sources: dict[str, None] = {}  # constant inputs of nodes that made variables (ordered set)
        self._delivered: dict[tuple, str] = {}
        self._keys = 0

    def new_key(self, hint: str) -> str:
        self._keys += 1
        return f"{self._keys}:{hint}"

    def add_constant(self, array: np.ndarray) -> str:
        key = self.new_key("const")
        self.constants[key] = array
        return key

    def sample(self, key: str) -> tf.Tensor:
        return self.samples[key] if key in self.samples else tf.constant(self.constants[key])

    def deliver(self, value: Val, perm, *, keep_order: bool = False) -> str:
        if value.const is not None:
            return self.add_constant(np.transpose(value.const, perm) if perm else value.const)
        key = value.key
        if value.order is not None and not keep_order:
            key = self._materialize_order(value)
        if perm is None or tuple(perm) == value.perm:
            return key
        cache = (key, tuple(perm))
        if cache not in self._delivered:
            rel = layout.relative(value.perm, tuple(perm))
            shape = [value.shape[a] for a in perm]
            moved = [axis for axis in rel if value.shape[value.perm[axis]] != 1]
            # moving only size-1 axes is a reshape, not a data transpose
            fn = (lambda x: tf.reshape(x, shape)) if moved == sorted(moved) else _transpose(value, rel, shape)
            out = self.new_key(f"transpose{rel}")
            self._run_step(Step(f"{_scope(key.split(':', 1)[1])}_to_{''.join(map(str, perm))}", "Transpose*",
                                key, [key], [out], fn))
            self._delivered[cache] = out
        return self._delivered[cache]

    def _materialize_order(self, value: Val) -> str:
        cache = (value.key, "order")
        if cache not in self._delivered:
            inverse = np.argsort(value.order).astype(np.int32)
            out = self.new_key("reorder")
            self._run_step(Step(f"{_scope(value.key.split(':', 1)[1])}_reorder", "Gather*", value.key, [value.key],
                                [out], lambda x: tf.gather(x, inverse, axis=-1)))
            self._delivered[cache] = out
        return self._delivered[cache]

    def _run_step(self, step: Step) -> list[tf.Tensor]:
        with tf.name_scope(step.name):
            results = step.fn(*(self.sample(k) for k in step.inputs))
        results = list(results) if isinstance(results, (tuple, list)) else [results]
        for key, tensor in zip(step.outputs, results):
            self.samples[key] = tensor
        self.steps.append(step)
        return results

    def add_step(self, ctx: NodeLowering, fn, inputs, perms, params, orders, outputs) -> None:
        names = [ctx.node.outputs[i].name for i in (outputs if outputs is not None else range(len(ctx.node.outputs)))]
        keys = [self.new_key(name) for name in names]
        results = self._run_step(Step(_scope(ctx.name), ctx.node.op_type, ctx.name, list(inputs), keys, fn, params))
        if len(results) < len(keys):
            raise AssertionError(f"{ctx.describe()}: lowering produced {len(results)} of {len(keys)} outputs")
        perms = perms if isinstance(perms, list) else [perms] * len(keys)
        for name, key, tensor, perm, order in zip(names, keys, results, perms, orders or [None] * len(keys)):
            perm = tuple(perm) if perm is not None else layout.identity(tensor.shape.rank)
            shape = layout.onnx_shape(perm, tensor.shape)
            self.values[name] = Val(key, perm, shape, tensor.dtype, order=order)

    # -- graph inputs and outputs
    def preferred_perm(self, value: ir.Value, depth: int = 0) -> layout.Perm | None:
        """The layout the first layout-minded consumer wants, looking through elementwise ops
        and Transposes (a Keras model's NHWC input feeds Transpose -> Conv)."""
        for use in value.uses():
            node = use.node
            rule = OPS.get(node.op_type)
            if rule is None or use.idx != 0 or depth > 16:
                continue
            if rule.layout == "nhwc" and len(node.outputs[0].shape or value.shape or ()) == 4:
                return layout.NHWC
            if node.op_type == "Transpose" or rule.layout == "any":
                after = self.preferred_perm(node.outputs[0], depth + 1)
                if after is None:
                    continue
                if node.op_type != "Transpose":
                    return after
                onnx_perm = node.attributes.get("perm")
                rank = len(after)
                onnx_perm = tuple(onnx_perm.value) if onnx_perm is not None else tuple(reversed(range(rank)))
                return layout.before_transpose(after, onnx_perm)
        return None

    def add_input(self, value: ir.Value, taken: set[str]) -> Port:
        if not isinstance(value.type, ir.TensorType):
            raise UnsupportedOpError(f"input {value.name!r} is a {value.type}, not a tensor; TFLite takes tensors only")
        shape = value.shape
        if shape is None or not all(isinstance(d, int) for d in shape):
            raise ModelError(f"input {value.name!r} has a dynamic or unknown shape {shape}",
                             hint="Pass --input-shape NAME=D1,D2,.. to fix every dim before lowering.")
        shape = tuple(shape)
        dtype = value.dtype.numpy()
        if dtype not in DTYPES:
            raise UnsupportedOpError(f"input {value.name!r} has dtype {dtype.name}, which TF/TFLite kernels do not take",
                                     hint="Cast the input to float32 (or an integer type) in the source model.")
        perm = self.preferred_perm(value) if len(shape) == 4 else None
        perm = perm or layout.identity(len(shape))
        key = self.new_key(value.name)
        # ones, not zeros: planning runs every op on these, and integer division by zero throws
        self.samples[key] = tf.ones([shape[a] for a in perm], tf.as_dtype(dtype))
        self.values[value.name] = Val(key, perm, shape, tf.as_dtype(dtype))
        return Port(value.name, _signature_name(value.name, taken), key, perm, shape, dtype)

    def add_output(self, value: ir.Value, taken: set[str]) -> Port:
        val = self.values[value.name]
        key = self.deliver(val, None)
        if val.const is not None:  # a constant graph output still needs a step to produce it
            array = val.const
            out = self.new_key(value.name)
            self._run_step(Step(_scope(value.name), "Constant*", value.name, [], [out], lambda: tf.constant(array)))
            key = out
        perm = val.perm if val.const is None else layout.identity(val.rank)
        return Port(value.name, _signature_name(value.name, taken), key, perm, val.shape, np.dtype(val.dtype.as_numpy_dtype))

    def build(self) -> LoweredModel:
        taken: set[str] = set()
        for init in self.graph.initializers.values():
            if init.const_value is not None and not init.is_graph_input():
                array = init.const_value.numpy()
                self.values[init.name] = Val(None, layout.identity(array.ndim), array.shape,
                                             tf.as_dtype(array.dtype), const=array)
        inputs = [self.add_input(v, taken) for v in self.graph.inputs if v.name not in self.values]
        fusions = find_fusions(self.graph)
        for index, node in enumerate(self.graph):
            fusion = fusions.get(node)
            if fusion is None:
                self.lower_node(node, index)
            elif node is fusion.anchor:
                self.lower_node(fusion.node, index)
        outputs = [self.add_output(v, taken) for v in self.graph.outputs]
        self._set_releases(outputs)
        return LoweredModel(inputs, outputs, self.steps, self.constants, self.weights, list(self.weight_sources))

    def lower_node(self, node: ir.Node, index: int) -> None:
        ctx = NodeLowering(self, node, index)
        rule = OPS.get(node.op_type) if node.domain in ONNX_DOMAINS else None
        if rule is None:
            raise UnsupportedOpError(
                f"{ctx.describe()}: no TFLite lowering for this op",
                hint=f"Supported ops: {', '.join(sorted(OPS))}. Rewrite the node in the source model, or build "
                     "with --target onnx, which runs every ONNX op.")
        made = len(self.weights)
        try:
            rule.lower(ctx)
        except EdgeoptError:
            raise
        except Exception as exc:  # a TF error while running the op on its real shapes
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedOpError(f"{ctx.describe()}: cannot lower: {message}",
                                     hint="Check the node's attributes and input shapes, or build with --target onnx.") from exc
        if len(self.weights) > made:  # its variables came from its constant inputs
            self.weight_sources.update(dict.fromkeys(v.name for v in node.inputs if v is not None and v.name
                                                     and self.values.get(v.name) and self.values[v.name].const is not None))

    def _set_releases(self, outputs: list[Port]) -> None:
        keep = {p.key for p in outputs}
        seen: set[str] = set()
        for step in reversed(self.steps):
            step.release = [k for k in step.inputs if k not in seen and k not in keep and k not in self.constants]
            seen.update(step.inputs)


def lower(model: ir.Model, edgetpu: bool = False) -> LoweredModel:
    """ONNX IR -> LoweredModel (weights as tf.Variables, 4-D activations NHWC).

    `edgetpu`: lower into the forms edgetpu_compiler 16 maps, where they differ from the
    fastest forms under LiteRT's XNNPACK that other targets get:
    - a grouped (not depthwise) Conv becomes one conv per group and a concat: the compiler
      cannot parse TFLite's grouped CONV_2D (version 6), which XNNPACK runs 1.1-3x faster;
    - LayerNormalization over the channels goes through L2_NORMALIZATION (no RSQRT kernel);
    - a MatMul of tokens by a weight becomes a 1x1 CONV_2D (FULLY_CONNECTED maps only with a
      1-D output);
    - Gelu becomes MINIMUM, MAXIMUM, MUL, ADD and LOGISTIC (the compiler cannot parse the GELU builtin).
    """
    return Builder(model, edgetpu).build()
