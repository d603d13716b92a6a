"""The lowering table: ONNX op type -> the function that lowers one node of it.

Each function receives a `NodeLowering` (see _builder.py) and emits TF steps through it.
`layout` tells the graph-input planner what an op wants of its first input:
"nhwc" (4-D activations channels-last), "any" (elementwise: passes its input's layout on)
or None (no preference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Rule:
    op_type: str
    lower: Callable
    layout: str | None


OPS: dict[str, Rule] = {}


def lowers(*op_types: str, layout: str | None = None):
    def register(fn):
        for op_type in op_types:
            OPS[op_type] = Rule(op_type, fn, layout)
        return fn

    return register
