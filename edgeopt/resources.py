"""Where the data directories are: beside the package in a checkout (and an editable
install), inside it (`edgeopt/device_profiles`, `edgeopt/targets`) in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`device_profiles` or `targets`."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgeopt data directory {name!r} is missing from the installation ({_PACKAGE})")
