import pytest

from edgeopt.units import format_bytes

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * MIB, "5.0 MiB"),
        (int(2.5 * GIB), "2.5 GiB"),
        (3 * GIB, "3.0 GiB"),
        (2 * TIB, "2.0 TiB"),
        (1024 * TIB, "1024.0 TiB"),  # TiB is the largest unit
        (MIB - 1, "1.0 MiB"),  # would round to "1024.0 KiB": moves up a unit
        (MIB - 52 * KIB, "972.0 KiB"),
        (-1536, "-1.5 KiB"),
        (-5 * MIB, "-5.0 MiB"),
        (1536.0, "1.5 KiB"),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text
