"""fold-head-transposes: attention's head split and merge move into the projection weights.

Multi-head attention projects tokens [S, E] to [S, H*D], splits the heads with a Reshape to
[S, H, D] and a Transpose to [H, S, D] (K often straight to [H, D, S]), and after attention
transposes back and merges the heads for the output projection. Each is a TRANSPOSE in TFLite:
BATCH_MATMUL batches over leading axes only. Both fold into the weights, same MACs:

    split:  x[S, E] @ W[E, H*D] + b -> [H, S, D]   ==  x[1, S, E] @ W'[H, E, D] + b'[H, 1, D]
    merge:  ctx[H, S, D] -> [S, H*D] @ W[H*D, E]   ==  ReduceSum over H of ctx @ W'[H, D, E]

int8 builds keep the transposes: a constant BATCH_MATMUL operand is quantised per tensor, not
per channel as FULLY_CONNECTED's weights are, and the head sum adds a rounding; together they
measured 1-2 dB of int8 SQNR on BERT-mini and MobileBERT, for no latency gained in either mode.

A K wanted as [H, D, S] comes out as [H, S, D] with its last two axes swapped, which the
lowering leaves to BATCH_MATMUL's adj_y. What a chain of Reshapes and Transposes does is read
off the source indices it moves, so any exporter's spelling of the split is recognised.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import (add_initializer, constant_array, is_layout_op, is_onnx_op, layout_chain,
                                     remove_unused_initializers, replace_value, transpose_perm)
from edgeopt.passes.base import Pass, register

MAX_TRACED_ELEMENTS = 1 << 24  # index arrays traced through a chain; larger tensors are left alone


def _static(value: ir.Value) -> list[int] | None:
    shape = value.shape
    return [int(d) for d in shape] if shape is not None and shape.is_static() else None


def _traced(shape: list[int], chain: list[ir.Node]) -> np.ndarray | None:
    """For each element of the chain's output, the flat index in its input it comes from."""
    if int(np.prod(shape)) > MAX_TRACED_ELEMENTS:
        return None
    index = np.arange(int(np.prod(shape))).reshape(shape)
    for node in chain:
        if is_onnx_op(node, "Transpose"):
            perm = transpose_perm(node)
            if perm is None:
                return None
            index = index.transpose(perm)
        else:
            out = _static(node.outputs[0])
            if out is None or constant_array(node.inputs[1]) is None:
                return None
            index = index.reshape(out)
    return index


def _moves_as(chain: list[ir.Node], source: list[int], view: list[int], perm: list[int]) -> bool:
    """Whether `chain` moves a `source`-shaped tensor's elements as viewing it as `view` and
    transposing by `perm` does."""
    traced = _traced(source, chain)
    expected = np.arange(int(np.prod(source))).reshape(view).transpose(perm)
    return traced is not None and bool(np.array_equal(traced.reshape(-1), expected.reshape(-1)))


def _projection(matmul: ir.Node) -> tuple[np.ndarray, ir.Node | None, np.ndarray | None] | None:
    """(W [E, N], the bias Add or None, bias [N] or None) when `matmul` is x @ W (+ b), read once."""
    weight = constant_array(matmul.inputs[1])
    uses = matmul.outputs[0].uses()
    if weight is None or weight.ndim != 2 or len(uses) != 1 or matmul.outputs[0].is_graph_output():
        return None
    add, index = next(iter(uses))
    bias = constant_array(add.inputs[1 - index]) if is_onnx_op(add, "Add") else None
    if bias is None or bias.size not in (1, weight.shape[1]) or any(d != 1 for d in bias.shape[:-1]):
        return weight, None, None
    return weight, add, np.broadcast_to(bias.reshape(-1), (weight.shape[1],))


def _forward_chain(value: ir.Value) -> list[ir.Node]:
    """The Reshape/Transpose run reading `value`, each link (but the last) read only by the next."""
    chain = []
    while len(value.uses()) == 1 and not value.is_graph_output():
        node, index = next(iter(value.uses()))
        if not is_layout_op(node) or index != 0:
            break
        chain.append(node)
        value = node.outputs[0]
    return chain


def _remove(graph: ir.Graph, nodes: list[ir.Node]) -> None:
    """Remove `nodes` (consumers first) and the constants only they read."""
    constants = [v for node in nodes for v in node.inputs[1:]]
    for node in nodes:
        graph.remove(node, safe=True)
    remove_unused_initializers(graph, constants)


def _split(graph: ir.Graph, matmul: ir.Node) -> str | None:
    """x @ W (+ b) followed by a head split -> a batched product with per-head weights."""
    found, x_shape = _projection(matmul), _static(matmul.inputs[0])
    if found is None or x_shape is None:
        return None
    weight, add, bias = found
    projected = (add or matmul).outputs[0]
    shape, chain = _static(projected), _forward_chain(projected)
    if shape is None or len(shape) < 2:
        return None
    lead = len(shape) - 2
    for end in range(len(chain), 0, -1):
        out = _static(chain[end - 1].outputs[0])
        if out is None or len(out) != lead + 3 or out[:lead] != shape[:lead] or shape[-1] % out[-3]:
            continue
        view = [*shape[:-1], out[-3], shape[-1] // out[-3]]  # [*L, S, H, D]
        heads, depth = view[-2:]
        for order, keys in (((1, 0, 2), False), ((1, 2, 0), True)):
            if [view[lead + a] for a in order] == out[-3:] and heads > 1 and depth > 1 and \
                    _moves_as(chain[:end], shape, view, [*range(lead), *(lead + a for a in order)]):
                return _rewrite_split(graph, matmul, weight, add, bias, heads, chain[:end], keys, x_shape)
    return None


def _rewrite_split(graph, matmul, weight, add, bias, heads, chain, keys, x_shape) -> str:
    name, depth = matmul.name, weight.shape[1] // heads
    tokens = [*x_shape[:-2], 1, *x_shape[-2:]]
    per_head = weight.reshape(weight.shape[0], heads, depth).transpose(1, 0, 2)
    steps = [ir.node("Reshape", [matmul.inputs[0], add_initializer(graph, np.array(tokens, np.int64), f"{name}.tokens")],
                     name=f"{name}_tokens")]
    steps.append(ir.node("MatMul", [steps[-1].outputs[0], add_initializer(
        graph, np.ascontiguousarray(per_head), f"{name}.heads")], name=f"{name}_heads"))
    if bias is not None:
        steps.append(ir.node("Add", [steps[-1].outputs[0], add_initializer(
            graph, bias.reshape(heads, 1, depth).astype(np.float32), f"{name}.head_bias")], name=f"{name}_head_bias"))
    if keys:
        rank = len(tokens)
        steps.append(ir.node("Transpose", [steps[-1].outputs[0]], {"perm": [*range(rank - 2), rank - 1, rank - 2]},
                             name=f"{name}_keys"))
    graph.insert_before(matmul, steps)
    replace_value(chain[-1].outputs[0], steps[-1].outputs[0], take_name=True)
    _remove(graph, [*reversed(chain), *([add] if add is not None else []), matmul])
    layout = "[H, D, S], read as [H, S, D] transposed" if keys else "[H, S, D]"
    return f"MatMul '{name}' + {len(chain)} Reshape/Transpose -> {heads} heads {layout} from per-head weights"


def _merge(graph: ir.Graph, matmul: ir.Node, opset: int) -> str | None:
    """A head merge followed by x @ W -> per-head products summed over heads."""
    weight, source = constant_array(matmul.inputs[1]), matmul.inputs[0]
    shape = _static(source)
    if weight is None or weight.ndim != 2 or shape is None or not is_layout_op(source.producer()) \
            or len(source.uses()) != 1:
        return None
    chain = layout_chain(source.producer())
    lead = len(shape) - 2
    for start in range(len(chain)):
        inner = _static(chain[start].inputs[0])
        if inner is None or len(inner) != lead + 3 or inner[:lead] != shape[:lead]:
            continue
        heads, tokens, depth = inner[-3:]
        if heads > 1 and depth > 1 and tokens == shape[-2] and heads * depth == shape[-1] and \
                _moves_as(chain[start:], inner, inner, [*range(lead), lead + 1, lead, lead + 2]):
            return _rewrite_merge(graph, matmul, weight, heads, chain[start:], opset)
    return None


def _rewrite_merge(graph, matmul, weight, heads, chain, opset) -> str:
    name, attended = matmul.name, chain[0].inputs[0]
    per_head = weight.reshape(heads, weight.shape[0] // heads, weight.shape[1])
    product = ir.node("MatMul", [attended, add_initializer(graph, np.ascontiguousarray(per_head), f"{name}.heads")],
                      name=f"{name}_heads")
    axis = len(attended.shape) - 3
    if opset >= 13:
        axes = add_initializer(graph, np.array([axis], np.int64), f"{name}.head_axis")
        total = ir.node("ReduceSum", [product.outputs[0], axes], {"keepdims": 0}, name=f"{name}_sum_heads")
    else:
        total = ir.node("ReduceSum", [product.outputs[0]], {"axes": [axis], "keepdims": 0}, name=f"{name}_sum_heads")
    graph.insert_before(matmul, [product, total])
    replace_value(matmul.outputs[0], total.outputs[0], take_name=True)
    _remove(graph, [matmul, *reversed(chain)])
    return f"{len(chain)} Reshape/Transpose + MatMul '{name}' -> {heads} per-head MatMuls summed over heads"


@register
class FoldHeadTransposes(Pass):
    name = "fold-head-transposes"
    cleanup = True
    float_only = True

    def apply(self, model: ir.Model) -> list[str]:
        graph, opset = model.graph, model.opset_imports.get("", 18)
        changes = []
        for node in list(graph):
            if node.graph is not None and is_onnx_op(node, "MatMul"):
                change = _split(graph, node) or _merge(graph, node, opset)
                if change:
                    changes.append(change)
        return changes
