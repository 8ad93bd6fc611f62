"""The engine's one clock: simulated in a backtest, the wall clock in paper and live, with timers
that fire as ``TimerFired`` events through the bus in every mode.

Time. ``SimClock`` is moved by the loop to each bar's close time (``BarClosed.ts_event_ns``) before
the bar is delivered; before the first bar it reads the first bar's open time. ``WallClock`` reads
the machine's UTC clock. Components read ``now_ns()`` and never ask which one they have.

Timers. ``set_timer(name, interval_ns=..., at_ns=..., stop_ns=...)`` schedules a timer; when it is
due the clock publishes ``TimerFired(name, ts_event_ns=<the time it was due>, count=<1, 2, ...>)``
on the bus (subscribe to ``TimerFired`` and match ``name``). Timers fire on the loop's thread,
in time order (ties: in the order the timers were set), never early, and none is skipped: a
repeating timer that fell behind (a gap in the data, a stalled process) fires once for every
interval it missed, each with its own due time, so a timer-driven component sees the same
``TimerFired`` sequence in a backtest and live.

When they fire relative to bars: every timer due at or before a bar's close time fires **before**
that bar's ``BarClosed`` handlers (and before the bar is revealed in the ``BarStore``); one due
after it fires after them. A backtest fires timers only as bars pass: one due after the last bar's
close never fires. Live, the loop also fires the timers due by the wall clock whenever the feed
yields an idle tick (``None``) while it waits for the next bar (``engine.ports.BarFeed``), so an
order timeout fires even when no bar comes. The one difference from a backtest: a timer due in the
short gap between a bar's close and its arrival fires while waiting, so before that bar.

While a timer fires on a ``SimClock``, ``now_ns()`` is its due time.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.events import Event, TimerFired

NEVER_NS = 2**63 - 1  # ``due_ns`` when no timer is set


@dataclass(slots=True)
class _Timer:
    name: str
    interval_ns: int  # 0: one-shot
    stop_ns: int
    order: int  # tie-break between timers due at the same time: the order they were set
    next_ns: int
    count: int = 0


class Clock:
    """Time plus timers (see the module doc). Subclasses say what ``now_ns`` is."""

    __slots__ = ("_heap", "_order", "_publish", "_timers", "due_ns")

    def __init__(self) -> None:
        self._publish: Callable[[Event], None] | None = None
        self._timers: dict[str, _Timer] = {}
        self._heap: list[tuple[int, int, str]] = []  # (due, order, name); stale entries skipped
        self._order = 0
        self.due_ns = NEVER_NS  # the earliest due time (the loop compares a bar's close to it)

    def bind(self, publish: Callable[[Event], None]) -> None:
        """Publish ``TimerFired`` through ``publish`` (the composition root binds
        ``bus.publish``)."""
        self._publish = publish

    def now_ns(self) -> int:
        """Current time, UTC nanoseconds."""
        raise NotImplementedError

    # -- timers ---------------------------------------------------------------------------------
    def set_timer(
        self, name: str, *, interval_ns: int | None = None, at_ns: int | None = None,
        stop_ns: int | None = None,
    ) -> int:
        """Schedule timer ``name`` (replacing one of that name); return its first due time.

        - ``at_ns`` alone: fires once at ``at_ns``;
        - ``interval_ns`` alone: fires every ``interval_ns`` from now (first at now + interval);
        - both: first at ``at_ns``, then every ``interval_ns`` (calendar-aligned timers: pass the
          next boundary, e.g. ``at_ns=(now // DAY + 1) * DAY, interval_ns=DAY``);
        - ``stop_ns``: no firing after it.

        A due time already past fires at the next chance (the next bar, or the next idle tick).
        Names are global to the engine: prefix them with the component's name.

        Raises:
            ValueError: neither ``interval_ns`` nor ``at_ns``, or ``interval_ns`` not > 0.
        """
        if interval_ns is None and at_ns is None:
            raise ValueError(f"timer {name!r}: give interval_ns, at_ns or both")
        if interval_ns is not None and interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval_ns must be > 0, got {interval_ns}")
        first = at_ns if at_ns is not None else self.now_ns() + (interval_ns or 0)
        self._order += 1
        t = _Timer(name, interval_ns or 0, NEVER_NS if stop_ns is None else stop_ns,
                   self._order, first)
        self._timers[name] = t
        if first <= t.stop_ns:
            self._push(t)
        return first

    def cancel_timer(self, name: str) -> bool:
        """Stop timer ``name``; ``False`` if there was none."""
        found = self._timers.pop(name, None) is not None
        self._refresh_due()
        return found

    def timers(self) -> dict[str, int]:
        """Each set timer's next due time (UTC ns)."""
        return {n: t.next_ns for n, t in self._timers.items() if t.next_ns <= t.stop_ns}

    def next_due_ns(self) -> int | None:
        """When the next timer is due, or ``None``."""
        return None if self.due_ns == NEVER_NS else self.due_ns

    def seconds_until_due(self, cap_s: float) -> float:
        """How long a waiting live feed may block before the next timer is due (``<= cap_s``,
        ``>= 0``): wait at most this long, then yield an idle tick (``None``)."""
        if self.due_ns == NEVER_NS:
            return cap_s
        return max(0.0, min(cap_s, (self.due_ns - self.now_ns()) / 1e9))

    # -- advancing ------------------------------------------------------------------------------
    def advance(self, ts_ns: int) -> None:
        """The loop, before delivering a bar closing at ``ts_ns``: fire what is due by then."""
        raise NotImplementedError

    def fire_due(self) -> int:
        """Fire every timer due at ``now_ns()``; return how many fired."""
        return self._fire_until(self.now_ns())

    def _fire_until(self, limit_ns: int) -> int:
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= limit_ns:
            due, _, name = heapq.heappop(heap)
            t = self._timers.get(name)
            if t is None or t.next_ns != due:
                continue  # canceled or replaced
            t.count += 1
            if t.interval_ns and due + t.interval_ns <= t.stop_ns:
                t.next_ns = due + t.interval_ns
                self._push(t)
            else:
                del self._timers[name]
            self._refresh_due()
            self._at(due)
            fired += 1
            if self._publish is not None:
                self._publish(TimerFired(ts_event_ns=due, ts_init_ns=self.now_ns(), name=name,
                                         count=t.count))
        self._refresh_due()
        return fired

    def _at(self, due_ns: int) -> None:
        """A timer due at ``due_ns`` is about to fire (a simulated clock moves there)."""

    def _push(self, t: _Timer) -> None:
        heapq.heappush(self._heap, (t.next_ns, t.order, t.name))
        if t.next_ns < self.due_ns:
            self.due_ns = t.next_ns

    def _refresh_due(self) -> None:
        heap = self._heap
        while heap:
            due, _, name = heap[0]
            t = self._timers.get(name)
            if t is not None and t.next_ns == due:
                self.due_ns = due
                return
            heapq.heappop(heap)
        self.due_ns = NEVER_NS


class SimClock(Clock):
    """Simulated time: the close time of the last bar the loop delivered (or a timer's due time
    while it fires)."""

    __slots__ = ("now",)

    def __init__(self, start_ns: int = 0) -> None:
        super().__init__()
        self.now = start_ns  # public for the loop's per-bar fast path

    def now_ns(self) -> int:
        return self.now

    def advance(self, ts_ns: int) -> None:
        if ts_ns >= self.due_ns:
            self._fire_until(ts_ns)
        if ts_ns > self.now:
            self.now = ts_ns

    def _at(self, due_ns: int) -> None:
        if due_ns > self.now:
            self.now = due_ns


class WallClock(Clock):
    """The machine's UTC clock; timers fire when the loop polls (each bar, each idle tick)."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()

    def advance(self, ts_ns: int) -> None:
        # only what is due by the bar's close fires before it, as in a backtest; timers due
        # between the close and the bar's arrival fire at the next poll, after its handlers
        if self.due_ns <= ts_ns:
            self._fire_until(min(ts_ns, time.time_ns()))
