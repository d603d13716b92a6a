"""collapse-reshape-chains: a run of Reshapes and Transposes with two or more Transposes
becomes Reshape -> one Transpose -> Reshape.

Patch (un)folding in hybrid nets (MobileViT's unfold: Reshape, Transpose, Reshape, Transpose,
Reshape) moves data two or three times where one move suffices. Every dim of the chain is
split into "atoms" (the finest factors any step cuts it into); the chain only permutes atoms,
so one Transpose of the input viewed as its atoms does the same. Atoms that stay neighbours
in order are merged again, so the Transpose has as few axes as possible.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgeopt.passes._rewrite import (add_initializer, constant_array, is_layout_op, is_onnx_op, layout_chain,
                                     replace_value, transpose_perm)
from edgeopt.passes.base import Pass, register


class _Atoms:
    """The input's atoms (sizes, input order) and the current tensor's dims as atom lists."""

    def __init__(self, shape: list[int]):
        self.size = {i: d for i, d in enumerate(shape)}
        self.order = list(range(len(shape)))
        self.dims = [[i] for i in range(len(shape))]

    def _split(self, atom: int, outer: int) -> None:
        """Atom -> (outer, inner) atoms, row-major, wherever it stands."""
        halves = [max(self.size) + 1, max(self.size) + 2]
        self.size[halves[0]], self.size[halves[1]] = outer, self.size[atom] // outer
        self.order = [a for x in self.order for a in (halves if x == atom else [x])]
        self.dims = [[a for x in dim for a in (halves if x == atom else [x])] for dim in self.dims]

    def reshape(self, target: list[int]) -> bool:
        """Regroup the atoms into `target` dims, splitting an atom a dim boundary cuts;
        False when a boundary cannot fall on an atom factor."""
        sequence = [a for dim in self.dims for a in dim]
        dims, k = [], 0
        for want in target:
            dim, have = [], 1
            while have < want:
                size = self.size[sequence[k]]
                if want % (have * size):  # the dim ends inside this atom
                    if size % (want // have):
                        return False
                    self._split(sequence[k], want // have)
                    return self.reshape(target)
                dim.append(sequence[k])
                have, k = have * size, k + 1
            dims.append(dim)
        if dims:
            dims[-1].extend(sequence[k:])  # trailing size-1 atoms
        self.dims = dims
        return True

    def transpose(self, perm: list[int]) -> None:
        self.dims = [self.dims[p] for p in perm]


def _plan(chain: list[ir.Node]) -> tuple[list[int], list[int], list[int]] | None:
    """(input viewed as merged atoms, their permutation, final shape), or None."""
    source = chain[0].inputs[0].shape
    final = chain[-1].outputs[0].shape
    if source is None or final is None or not source.is_static() or not final.is_static():
        return None
    atoms = _Atoms([int(d) for d in source])
    for node in chain:
        if is_onnx_op(node, "Transpose"):
            perm = transpose_perm(node)
            if perm is None:
                return None
            atoms.transpose(perm)
        elif constant_array(node.inputs[1]) is None or not atoms.reshape([int(d) for d in node.outputs[0].shape]):
            return None
    moved = [a for dim in atoms.dims for a in dim if atoms.size[a] != 1]
    kept = [a for a in atoms.order if atoms.size[a] != 1]
    groups: list[list[int]] = []  # runs of atoms neighbours in both orders, in output order
    for atom in moved:
        if groups and kept.index(atom) == kept.index(groups[-1][-1]) + 1:
            groups[-1].append(atom)
        else:
            groups.append([atom])
    by_input = sorted(groups, key=lambda g: kept.index(g[0]))
    view = [int(np.prod([atoms.size[a] for a in g])) for g in by_input]
    return view, [by_input.index(g) for g in groups], [int(d) for d in final]


@register
class CollapseReshapeChains(Pass):
    name = "collapse-reshape-chains"
    cleanup = True

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        graph.sort()
        changes = []
        for node in list(graph):
            if not is_layout_op(node) or node.graph is None:
                continue
            uses = node.outputs[0].uses()
            if len(uses) == 1 and not node.outputs[0].is_graph_output() and is_layout_op(uses[0].node):
                continue  # not the end of its chain
            chain = layout_chain(node)
            transposes = sum(is_onnx_op(n, "Transpose") for n in chain)
            plan = _plan(chain) if transposes >= 2 else None
            if plan is None:
                continue
            changes.append(self._rewrite(graph, chain, *plan) + f" (was {transposes} Transposes)")
        return changes

    @staticmethod
    def _rewrite(graph: ir.Graph, chain: list[ir.Node], view: list[int], perm: list[int], final: list[int]) -> str:
        last = chain[-1]
        steps = [ir.node("Reshape", [chain[0].inputs[0], add_initializer(graph, np.array(view, np.int64),
                                                                          f"{last.name}.view")], name=f"{last.name}_view")]
        moves = perm != sorted(perm)
        if moves:
            steps.append(ir.node("Transpose", [steps[-1].outputs[0]], attributes={"perm": perm},
                                 name=f"{last.name}_transpose"))
        shape = add_initializer(graph, np.array(final, np.int64), f"{last.name}.shape")
        steps.append(ir.node("Reshape", [steps[-1].outputs[0], shape], name=f"{last.name}_reshape"))
        for step in steps:
            graph.insert_before(chain[0], step)
        replace_value(last.outputs[0], steps[-1].outputs[0], take_name=True)
        for node in reversed(chain):
            graph.remove(node, safe=True)
        return (f"{len(chain)} Reshape/Transpose nodes ending at '{last.name}' -> "
                f"{'one Transpose' if moves else 'a Reshape'} of the input viewed as {view}")
