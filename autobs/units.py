"""What users type for sizes and durations (``--memory-limit 8GiB``, ``--budget 10m``), read into bytes and
seconds, with an error that says what would be accepted; and how a fitted batch size is written back to them.
Public entries: ``parse_bytes``, ``parse_duration``, ``format_batch_size``."""

from __future__ import annotations

import re

from .errors import ConfigError

_BYTES_PER_UNIT = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12,
                   "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SECONDS_PER_UNIT = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def _number_and_unit(value: int | float | str) -> tuple[float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), ""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    try:
        return (float(match.group(1)), match.group(2).lower()) if match else (0.0, "?")
    except ValueError:  # "1.2.3"
        return 0.0, "?"


def parse_bytes(value: int | float | str, what: str = "memory limit") -> int:
    """``"8GiB"``, ``"512MB"``, ``"2e9"`` or a number of bytes → bytes.

    Raises:
        ConfigError: not a positive size.
    """
    number, unit = _number_and_unit(value)
    if unit not in _BYTES_PER_UNIT or not number > 0:
        raise ConfigError(f"{what} {value!r} is not a positive size. Use bytes or a unit: 512MiB, 8GiB, 16GB.")
    return int(number * _BYTES_PER_UNIT[unit])


def parse_duration(value: int | float | str, what: str = "budget") -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` or a number of seconds → seconds.

    Raises:
        ConfigError: not a positive duration.
    """
    number, unit = _number_and_unit(value)
    if unit not in _SECONDS_PER_UNIT or not number > 0 or number == float("inf"):
        raise ConfigError(f"{what} {value!r} is not a positive duration. Use seconds or a unit: 90s, 10m, 1.5h.")
    return number * _SECONDS_PER_UNIT[unit]


def format_batch_size(value: float) -> str:
    """A fitted batch size (a critical batch size, its interval) as text: whole from 10 up, two significant
    figures below, where a fit can land under 1 and rounding would print 0."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"
