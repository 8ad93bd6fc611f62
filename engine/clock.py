"""Clocks. Backtest time advances with the events; paper and live read the wall clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Current time, UTC nanoseconds."""
        ...


class SimClock:
    """Time is the ``ts_event_ns`` of the last bar the loop delivered."""

    __slots__ = ("_now_ns",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance_to(self, ts_ns: int) -> None:
        self._now_ns = ts_ns


class WallClock:
    """The machine's UTC clock."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()
