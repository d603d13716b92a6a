"""`edgeopt.toml`: the same keys as the command-line flags, one table per command.

    [build]
    model = "model.pt2"
    target = "onnx"
    quant = "int8"
    calib = "data/calib.npz"
    max-drop = 0.01
    input-shape = ["input=1,3,224,224"]

Flags given on the command line override the file. Relative paths are taken from the
file's directory, so a pipeline can run edgeopt from anywhere.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from edgeopt.errors import UsageError

DEFAULT_NAME = "edgeopt.toml"
PATH_KEYS = {"model", "calib", "eval", "out", "bundle"}


def load_section(path: Path, command: str, keys: dict[str, str]) -> dict:
    """The `[command]` table of a config file as click parameter defaults.

    `keys` maps each allowed TOML key (the flag, e.g. `max-drop`) to its parameter name."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    section = data.get(command, {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: [{command}] must be a table")
    defaults = {}
    for key, value in section.items():
        name = keys.get(key) or keys.get(key.replace("_", "-"))
        if name is None or key == "config":
            raise UsageError(f"{path}: [{command}] has unknown key {key!r}",
                             hint=f"Known keys: {', '.join(sorted(k for k in keys if k != 'config'))}")
        if key in PATH_KEYS and isinstance(value, str) and value != "random":
            value = str((path.parent / value))
        defaults[name] = value
    return defaults
