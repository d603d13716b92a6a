"""Device profiles and the size check against them.

A profile (device_profiles/<name>.toml, or a user's own .toml) says what a device has and how
much of it one model may use, every number with its source. `size_check` compares a build's
sizes with it; `enforce` turns a failed check into exit code 5.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from rich.table import Table

from edgeopt.errors import BudgetExceededError, UsageError
from edgeopt.resources import data_dir
from edgeopt.units import format_bytes

SCHEMA_VERSION = 1
TARGETS = ("onnx", "tflite", "coral", "arm-cpu")
KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Key:
    """One schema entry. `expected` is worded for the error message ("must be <expected>");
    `only_when=(key, value)` makes the key required where that holds and refused elsewhere;
    `optional` keys may be left out."""

    expected: str
    is_valid: Callable[[Any], bool]
    only_when: tuple[str, Any] | None = None
    optional: bool = False

    def applies_to(self, section: dict) -> bool:
        return self.only_when is None or section.get(self.only_when[0]) == self.only_when[1]


def _is_number(value, kind: type | tuple[type, ...] = (int, float)) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)  # TOML true is not 1


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _list_of(is_item: Callable[[Any], bool], *, min_items: int = 0) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and len(value) >= min_items and all(map(is_item, value))


def _one_of(*choices: str) -> Key:
    return Key("one of " + ", ".join(map(repr, choices)), lambda value: value in choices)


_TARGET_NAMES = ", ".join(map(repr, TARGETS))
TEXT = Key("a non-empty string", _is_text)
POSITIVE_INT = Key("a positive integer", lambda value: _is_number(value, int) and value > 0)
SHARE = Key("a number with 0 < share <= 1", lambda value: _is_number(value) and 0 < value <= 1)
SOURCE = Key("a non-empty string: the vendor page the numbers come from, or why they are edgeopt's policy",
             _is_text)
EDGETPU_KIB = Key(POSITIVE_INT.expected, POSITIVE_INT.is_valid, only_when=("kind", "edgetpu"))

SECTIONS: dict[str, dict[str, Key]] = {
    "cpu": {
        "arch": _one_of("aarch64", "armv7", "x86_64"),
        "triple": Key("an LLVM target triple such as 'aarch64-linux-gnu'",
                      lambda value: _is_text(value) and "-" in value),
        "mcpu": Key("an LLVM CPU name such as 'cortex-a72'", _is_text),
        "features": Key("a list of LLVM feature strings such as '+neon'",
                        _list_of(lambda item: isinstance(item, str) and len(item) > 1 and item[0] in "+-")),
        "cores": POSITIVE_INT,
        "freq_mhz": POSITIVE_INT,
        "tvm_target": Key("a TVM target (arm-cpu): a tag such as 'raspberry-pi/4b-aarch64', or a table such as "
                          "{ kind = 'llvm', mtriple = 'aarch64-linux-gnu', mcpu = 'cortex-a53', mattr = ['+neon'] }",
                          lambda value: _is_text(value) or (isinstance(value, dict) and value.get("kind") == "llvm"),
                          optional=True),
        "source": SOURCE,
    },
    "memory": {"ram_mib": POSITIVE_INT, "storage_mib": POSITIVE_INT, "source": SOURCE},
    "accelerator": {"kind": _one_of("none", "edgetpu"), "on_chip_kib": EDGETPU_KIB, "param_cache_kib": EDGETPU_KIB,
                    "source": SOURCE},
    "runtimes": {
        "supported": Key(f"a non-empty list of targets among {_TARGET_NAMES}",
                         _list_of(TARGETS.__contains__, min_items=1)),
        "overhead_mib": Key(f"a table of target = MiB (a number >= 0), targets among {_TARGET_NAMES}",
                            lambda value: isinstance(value, dict) and all(
                                key in TARGETS and _is_number(mib) and mib >= 0 for key, mib in value.items())),
        "source": SOURCE,
    },
    "budget": {"ram_share": SHARE, "storage_share": SHARE, "source": SOURCE},
}
TOP_LEVEL: dict[str, Key] = {
    "schema_version": Key(str(SCHEMA_VERSION), lambda value: _is_number(value, int) and value == SCHEMA_VERSION),
    "name": TEXT,
    "description": TEXT,
    **dict.fromkeys(SECTIONS, Key("a table", lambda value: isinstance(value, dict))),
}
RELATIONS: tuple[tuple[Callable[[dict], bool], str], ...] = (
    # rules across keys, checked once every key is valid on its own: (rule holds, message when it does not)
    (lambda data: data["accelerator"].get("param_cache_kib", 0) <= data["accelerator"].get("on_chip_kib", 0),
     "[accelerator] param_cache_kib cannot exceed on_chip_kib"),
    (lambda data: set(data["runtimes"]["overhead_mib"]) <= set(data["runtimes"]["supported"]),
     "[runtimes] overhead_mib may only name targets that supported lists"),
)


@dataclass
class Profile:
    name: str
    description: str
    path: Path
    cpu: dict
    ram_bytes: int
    storage_bytes: int
    accelerator: dict
    runtimes: dict
    ram_share: float
    storage_share: float
    sources: dict[str, str]  # section -> where its numbers come from

    @property
    def ram_budget_bytes(self) -> int:
        return int(self.ram_bytes * self.ram_share)

    @property
    def storage_budget_bytes(self) -> int:
        return int(self.storage_bytes * self.storage_share)

    @property
    def param_cache_bytes(self) -> int | None:
        if self.accelerator["kind"] != "edgetpu":
            return None
        return self.accelerator["param_cache_kib"] * KIB

    def require_target(self, target: str) -> None:
        """Fail fast (before any compile) when the device cannot run the target's runtime."""
        supported = self.runtimes["supported"]
        if target not in supported:
            raise UsageError(f"device profile {self.name} does not run target {target!r}; "
                             f"it supports {', '.join(supported)}",
                             hint=f"Build for one of those (the profile's [runtimes] table and its source: {self.path}).")

    @property
    def tvm_target(self) -> str | dict | None:
        return self.cpu.get("tvm_target")

    def runtime_overhead_bytes(self, target: str) -> int:
        return math.ceil(self.runtimes["overhead_mib"].get(target, 0) * MIB)

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path), "ram_budget_bytes": self.ram_budget_bytes,
                "storage_budget_bytes": self.storage_budget_bytes, "param_cache_bytes": self.param_cache_bytes}


SCHEMA_HINT = "Compare with a shipped profile (edgeopt profiles show rpi4); every section needs a source."


def _check_keys(table: dict, schema: dict[str, Key], label: str, section: str | None = None) -> None:
    """Unknown keys first (a typo also makes its intended key look missing), then values, then
    keys present where they do not apply or absent where they do."""
    where = f"{label}: [{section}] " if section else f"{label}: "
    for name in table:
        if name not in schema:
            close = difflib.get_close_matches(name, schema, n=1)
            suggestion = f" (did you mean {close[0]}?)" if close else f"; known keys: {', '.join(schema)}"
            raise UsageError(f"{where}unknown key {name}{suggestion}", hint=SCHEMA_HINT)
    for name, key in schema.items():
        if name in table and not key.is_valid(table[name]):
            raise UsageError(f"{where}{name} must be {key.expected}, got {table[name]!r}", hint=SCHEMA_HINT)
    for name, key in schema.items():
        if name in table and not key.applies_to(table):
            raise UsageError(f"{where}{name} is only allowed when {key.only_when[0]} = {key.only_when[1]!r}", hint=SCHEMA_HINT)
        if name not in table and key.applies_to(table) and not key.optional:
            raise UsageError(f"{where}missing {name}, which must be {key.expected}", hint=SCHEMA_HINT)


def _validate(data: dict, label: str, stem: str) -> None:
    _check_keys(data, TOP_LEVEL, label)
    for section, schema in SECTIONS.items():
        _check_keys(data[section], schema, label, section)
    if data["name"] != stem:
        raise UsageError(f"{label}: name {data['name']!r} must equal the file name without .toml ({stem!r})",
                         hint=f"Rename the file or set name = {stem!r}.")
    for holds, message in RELATIONS:
        if not holds(data):
            raise UsageError(f"{label}: {message}", hint=SCHEMA_HINT)


def _load_file(path: Path, label: str) -> Profile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{label}: invalid TOML: {exc}", hint="Fix the syntax at that line.") from None
    except OSError as exc:
        raise UsageError(f"cannot read device profile {label}: {exc.strerror}") from None
    _validate(data, label, path.stem)
    sources = {section: data[section].pop("source") for section in SECTIONS}
    memory, budget = data["memory"], data["budget"]
    return Profile(name=data["name"], description=data["description"], path=path, cpu=data["cpu"],
                   ram_bytes=memory["ram_mib"] * MIB, storage_bytes=memory["storage_mib"] * MIB,
                   accelerator=data["accelerator"], runtimes=data["runtimes"], ram_share=float(budget["ram_share"]),
                   storage_share=float(budget["storage_share"]), sources=sources)


def _shipped_paths() -> dict[str, Path]:
    return {path.stem: path for path in data_dir("device_profiles").glob("*.toml")}


def list_profiles() -> list[Profile]:
    return sorted((_load_file(path, path.name) for path in _shipped_paths().values()), key=lambda p: p.name)


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or any .toml file by path (users can bring their own device)."""
    if name_or_path.endswith(".toml"):
        return _load_file(Path(name_or_path), name_or_path)
    shipped = _shipped_paths()
    if name_or_path not in shipped:
        raise UsageError(f"unknown device profile {name_or_path!r}; known profiles: {', '.join(sorted(shipped))}",
                         hint="Pass one of those names, or the path to your own profile .toml "
                              "(copy one from device_profiles/ as a template).")
    return _load_file(shipped[name_or_path], shipped[name_or_path].name)


@dataclass
class SizeRow:
    check: str
    used: int  # bytes
    budget: int  # bytes
    detail: str
    informational: bool = False  # reported, never fails the check

    @property
    def ok(self) -> bool:
        return self.used <= self.budget

    @property
    def over_by(self) -> int:
        return max(0, self.used - self.budget)

    def to_json(self) -> dict:
        return {**asdict(self), "over_by": self.over_by, "ok": self.ok}


@dataclass
class SizeCheck:
    profile: str
    target: str
    rows: list[SizeRow]

    @property
    def failures(self) -> list[SizeRow]:
        return [row for row in self.rows if not row.ok and not row.informational]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        return {"profile": self.profile, "target": self.target, "ok": self.ok,
                "rows": [row.to_json() for row in self.rows]}


def _budget_detail(share: float, total_bytes: int, what: str) -> str:
    return f"budget {share * 100:g}% of {format_bytes(total_bytes)} {what}"


def size_check(profile: Profile, *, target: str, artefact_bytes: int, weight_bytes: int, arena_bytes: int,
               param_bytes: int | None = None, runtime_bytes: int | None = None) -> SizeCheck:
    """Storage for the artefact; RAM for weights + peak activation arena + the target's runtime;
    and, on an Edge TPU, whether the parameters fit its on-chip cache. `runtime_bytes`: a
    runtime the bundle carries (arm-cpu), measured: it counts for storage and RAM alike, in
    place of the profile's estimate."""
    profile.require_target(target)
    overhead = profile.runtime_overhead_bytes(target) if runtime_bytes is None else runtime_bytes
    measured = "" if runtime_bytes is None else " (in the bundle, measured)"
    ram_parts = (f"weights {format_bytes(weight_bytes)} + activation arena {format_bytes(arena_bytes)} + "
                 f"{target} runtime {format_bytes(overhead)}{measured}")
    stored = artefact_bytes + (runtime_bytes or 0)
    rows = [
        SizeRow("storage", stored, profile.storage_budget_bytes,
                f"artefact{' + runtime and runner' if runtime_bytes else ''}; "
                f"{_budget_detail(profile.storage_share, profile.storage_bytes, 'storage')}"),
        SizeRow("ram", weight_bytes + arena_bytes + overhead, profile.ram_budget_bytes,
                f"{ram_parts}; {_budget_detail(profile.ram_share, profile.ram_bytes, 'RAM')}"),
    ]
    if profile.param_cache_bytes is not None and param_bytes is not None:
        rows.append(SizeRow("edgetpu-param-cache", param_bytes, profile.param_cache_bytes,
                            "informational: parameters beyond the Edge TPU's on-chip cache are streamed "
                            "from host memory on every inference (slower, still correct)", informational=True))
    return SizeCheck(profile.name, target, rows)


def enforce(check: SizeCheck) -> None:
    """Raise BudgetExceededError (exit code 5) when any non-informational row is over budget."""
    if check.ok:
        return
    overs = "; ".join(f"{row.check} {format_bytes(row.used)} against a budget of {format_bytes(row.budget)}, "
                      f"over by {format_bytes(row.over_by)}" for row in check.failures)
    raise BudgetExceededError(
        f"the {check.target} build does not fit device profile {check.profile}: {overs}",
        hint="Pick a larger device profile (--profile), quantize with --quant int8 (4x smaller float32 "
             "weights), or prune the model.",
        details=check.to_json())


def render(check: SizeCheck) -> Table:
    table = Table(title=f"Size check: {check.target} on {check.profile}")
    for column in ("check", "used", "budget", "margin"):
        table.add_column(column, justify="left" if column == "check" else "right")
    table.add_column("status")
    for row in check.rows:
        status = "[green]ok" if row.ok else "[yellow]over (info only)" if row.informational else "[bold red]OVER"
        table.add_row(f"{row.check}\n[dim]{row.detail}[/dim]", format_bytes(row.used), format_bytes(row.budget),
                      format_bytes(row.budget - row.used), status)
    return table
