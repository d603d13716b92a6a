"""Human units for sizes in messages and tables: one formatter, so every report reads alike."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: int | float) -> str:
    """Binary units (1 KiB = 1024 B), one decimal above bytes: `format_bytes(1536) == "1.5 KiB"`.

    Negative sizes keep their sign, so a negative margin prints as "-1.5 KiB". A value that
    would round to 1024.0 of a unit moves up to the next one ("1.0 MiB", not "1024.0 KiB").
    """
    sign = "-" if n < 0 else ""
    value, unit = abs(n), 0
    while round(value, 1) >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{sign}{int(value)} B"
    return f"{sign}{value:.1f} {_UNITS[unit]}"
