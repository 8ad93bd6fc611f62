"""Timeframe strings ("15m", "1h", "1d") and their length in nanoseconds."""

from __future__ import annotations

import re

from engine.errors import ConfigError

NS_PER_SECOND = 1_000_000_000
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_TF_RE = re.compile(r"^(\d+)([mhdw])$")


def timeframe_ns(timeframe: str) -> int:
    """Return the length of one bar of ``timeframe`` in nanoseconds.

    Raises:
        ConfigError: the string is not ``<int><m|h|d|w>``.
    """
    m = _TF_RE.match(timeframe)
    if m is None or int(m.group(1)) <= 0:
        raise ConfigError(
            f"timeframe {timeframe!r} is not valid; write a positive number and a unit m, h, d "
            "or w (e.g. '15m', '1h')"
        )
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)] * NS_PER_SECOND
