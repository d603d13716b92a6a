"""Graph-editing helpers shared by the cleanup passes, so each pass reads as its rule only."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx_ir as ir

ONNX_DOMAINS = ("", "ai.onnx")


def is_onnx_op(node: ir.Node, op_type: str) -> bool:
    return node.domain in ONNX_DOMAINS and node.op_type == op_type


def transpose_perm(node: ir.Node) -> list[int] | None:
    """A Transpose's permutation; without the attribute it reverses the axes, so rank is needed."""
    perm = node.attributes.get_ints("perm")
    if perm is not None:
        return list(perm)
    shape = node.inputs[0].shape
    return None if shape is None else list(reversed(range(len(shape))))


def is_layout_op(node: ir.Node | None) -> bool:
    """Reshape or Transpose: ops that only move or regroup data."""
    return node is not None and (is_onnx_op(node, "Reshape") or is_onnx_op(node, "Transpose"))


def layout_chain(last: ir.Node) -> list[ir.Node]:
    """The Reshape/Transpose run ending at `last`, each link read only by the next."""
    chain = [last]
    while True:
        producer = chain[0].inputs[0].producer()
        if (not is_layout_op(producer) or len(producer.outputs[0].uses()) != 1
                or producer.outputs[0].is_graph_output()):
            return chain
        chain.insert(0, producer)


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's data when it is fixed at build time.

    An initializer that is also a graph input is not: the caller may feed another tensor.
    """
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def replace_value(old: ir.Value, new: ir.Value, *, take_name: bool = False) -> bool:
    """Point every consumer of `old`, graph outputs included, at `new`; the caller then drops `old`'s node.

    `new` must hold a tensor of the same type and shape; it inherits what is known of them
    (a graph output must declare its type).

    Graph output names are the model's interface, so when `old` is a graph output `new` takes
    its name. That is impossible when `new` is itself part of the interface (graph input,
    initializer or output): then nothing changes and the result is False.
    `take_name` also hands the name over when `old` is not a graph output.
    """
    new_is_interface = new.is_graph_input() or new.is_initializer() or new.is_graph_output()
    if old.is_graph_output() and new_is_interface:
        return False
    name = old.name
    renames = (take_name or old.is_graph_output()) and not new_is_interface
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    if new.type is None:
        new.type = old.type
    if new.shape is None:
        new.shape = old.shape
    if renames:
        new.name = name
    return True


def remove_unused_initializers(graph: ir.Graph, candidates: Iterable[ir.Value | None]) -> None:
    """Drop those of `candidates` that a rewrite left as initializers nobody reads."""
    for value in candidates:
        if (value is not None and value.is_initializer() and not value.uses()
                and not value.is_graph_input() and not value.is_graph_output()):
            del graph.initializers[value.name]


def fresh_name(graph: ir.Graph, base: str) -> str:
    """`base`, or `base_N`, whichever no input, initializer or node output of `graph` uses."""
    taken = {v.name for v in graph.inputs} | set(graph.initializers)
    taken |= {v.name for node in graph.all_nodes() for v in node.outputs}
    name, counter = base, 0
    while name in taken:
        counter += 1
        name = f"{base}_{counter}"
    return name


def add_initializer(graph: ir.Graph, array: np.ndarray, base: str) -> ir.Value:
    """A new constant in `graph` under a fresh name."""
    name = fresh_name(graph, base)
    value = ir.val(name, const_value=ir.tensor(array, name=name))
    graph.register_initializer(value)
    return value


def replace_constant_input(node: ir.Node, index: int, array: np.ndarray, base: str) -> None:
    """Give `node` a new constant as input `index`; the old one goes when nothing else reads it."""
    old = node.inputs[index]
    node.replace_input_with(index, add_initializer(node.graph, array, base))
    remove_unused_initializers(node.graph, [old])
