"""Pass machinery: a typed config per pass, a registry by name, and the report each run gives.

A pass mutates the IR in place and returns one line per rewrite it made; the manager
measures params/MACs around it. Cleanup passes (`cleanup = True`) run on every build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import onnx_ir as ir

from edgeopt.errors import UsageError


@dataclass
class PassConfig:
    """Base of every pass's config; a pass with no knobs uses it as is."""


@dataclass
class PassReport:
    name: str
    config: dict
    changes: list[str] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class Pass:
    name: ClassVar[str]
    config_class: ClassVar[type[PassConfig]] = PassConfig
    cleanup: ClassVar[bool] = False
    float_only: ClassVar[bool] = False  # a cleanup pass left out of int8 builds, where it costs fidelity

    def __init__(self, config: PassConfig | None = None):
        self.config = config or self.config_class()

    def apply(self, model: ir.Model) -> list[str]:
        """Rewrite `model` in place; return one human-readable line per change."""
        raise NotImplementedError


REGISTRY: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    REGISTRY[cls.name] = cls
    return cls


def make_pass(name: str, params: dict | None = None) -> Pass:
    """Build a registered pass from its name and a dict of config fields (CLI/TOML)."""
    if name not in REGISTRY:
        raise UsageError(f"unknown pass {name!r}", hint=f"Known passes: {', '.join(sorted(REGISTRY))}")
    cls = REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(params or {}) - fields)
    if unknown:
        raise UsageError(f"pass {name!r} has no option {', '.join(unknown)}",
                         hint=f"Its options: {', '.join(sorted(fields)) or 'none'}")
    return cls(cls.config_class(**(params or {})))
