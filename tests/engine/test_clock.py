"""The engine's one clock: simulated time moved by the loop, wall time live, and timers that fire
as ``TimerFired`` through the bus the same way in both."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from engine.bars import Bars, BarStore
from engine.bus import Bus
from engine.clock import SimClock, WallClock
from engine.events import BarClosed, TimerFired
from engine.loop import run_loop

MIN = 60 * 10**9
TF = 15 * MIN
DAY = 24 * 60 * MIN
T0 = 1_700_000_000 * 10**9 // DAY * DAY + 9 * 60 * MIN  # a 09:00 UTC


def _bars(n: int, start_ns: int = T0) -> Bars:
    close = 100 + np.sin(np.arange(n) / 7.0)
    return Bars.from_columns("BTC-USDT", "15m", TF, start_ns + np.arange(n) * TF, close, close + 1,
                             close - 1, close, np.ones(n))


def _fired(clock, bus) -> list[tuple[str, int, int, int]]:
    got: list[tuple[str, int, int, int]] = []
    bus.subscribe(TimerFired, lambda e: got.append((e.name, e.ts_event_ns, e.count,
                                                   clock.now_ns())), priority=0, name="rec")
    return got


# -- the timer schedule ----------------------------------------------------------------------------
def test_timers_fire_in_time_order_each_missed_interval_once_and_never_early():
    bus = Bus()
    clock = SimClock(1000)
    clock.bind(bus.publish)
    got = _fired(clock, bus)
    assert clock.set_timer("b", interval_ns=100) == 1100  # from now
    clock.set_timer("a", at_ns=1150)  # one-shot
    clock.set_timer("c", at_ns=1100, interval_ns=300, stop_ns=1800)  # ties with b: set after it
    clock.advance(1099)
    assert got == []
    clock.advance(1400)  # b at 1100, 1200, 1300, 1400; c at 1100, 1400; a at 1150
    assert [(n, t, k) for n, t, k, _ in got] == [
        ("b", 1100, 1), ("c", 1100, 1), ("a", 1150, 1), ("b", 1200, 2), ("b", 1300, 3),
        ("b", 1400, 4), ("c", 1400, 2)]
    assert all(now == t for _, t, _, now in got)  # simulated time is the due time while firing
    assert clock.now_ns() == 1400
    assert clock.timers() == {"b": 1500, "c": 1700}
    assert clock.cancel_timer("b") and not clock.cancel_timer("b")
    got.clear()
    clock.advance(5000)
    assert [(n, t, k) for n, t, k, _ in got] == [("c", 1700, 3)]  # stop_ns 1800: no more
    assert clock.next_due_ns() is None


def test_a_handler_may_replace_or_cancel_timers_while_they_fire():
    bus = Bus()
    clock = SimClock(0)
    clock.bind(bus.publish)
    seen: list[tuple[str, int]] = []

    def on_timer(e: TimerFired) -> None:
        seen.append((e.name, e.ts_event_ns))
        if e.name == "timeout":
            clock.cancel_timer("poll")
            clock.set_timer("retry", at_ns=e.ts_event_ns + 5)

    bus.subscribe(TimerFired, on_timer, priority=0, name="component")
    clock.set_timer("poll", interval_ns=10)
    clock.set_timer("timeout", at_ns=25)
    clock.advance(100)
    assert seen == [("poll", 10), ("poll", 20), ("timeout", 25), ("retry", 30)]


def test_bad_timer_arguments_are_refused():
    clock = SimClock()
    with pytest.raises(ValueError, match="interval_ns, at_ns or both"):
        clock.set_timer("x")
    with pytest.raises(ValueError, match="must be > 0"):
        clock.set_timer("x", interval_ns=0)


# -- a timer-driven component over a replay --------------------------------------------------------
class _DailyCounter:
    """Counts a daily timer and notes what it saw: the component under test in both modes."""

    def __init__(self, clock, store: BarStore) -> None:
        self.clock, self.store = clock, store
        self.days: list[tuple[int, int, int]] = []  # (due, count, bars revealed then)

    def on_timer(self, e: TimerFired) -> None:
        if e.name == "summary:daily":
            assert self.clock.now_ns() == e.ts_event_ns
            self.days.append((e.ts_event_ns, e.count, self.store.count))


def test_a_daily_timer_over_a_replay_fires_once_per_midnight_before_that_bars_handlers():
    from adapters.csv_feed import CsvFeed
    from engine.bootstrap import build_engine
    from engine.config import RunConfig

    n = 4 * 96 + 10  # 09:00 on day 0 .. ~11:30 on day 4: four midnights
    bars = _bars(n)
    cfg = RunConfig.model_validate({
        "name": "timers", "data": {"file": "unused.csv"},
        "strategies": [{"name": "s", "kind": "stoch_cross"}],
    })
    eng = build_engine(cfg, feed=CsvFeed.from_bars(bars))
    assert eng.clock.now_ns() == T0  # before the first bar: its open
    counter = _DailyCounter(eng.clock, eng.store)
    eng.bus.subscribe(TimerFired, counter.on_timer, priority=0, name="daily-counter")
    closes: list[int] = []
    eng.bus.subscribe(BarClosed, lambda b: closes.append(eng.clock.now_ns()), priority=0,
                      name="close-times")
    first = (T0 // DAY + 1) * DAY
    eng.clock.set_timer("summary:daily", at_ns=first, interval_ns=DAY)
    eng.run()
    assert closes == bars.ts_close_ns.tolist()  # the loop moves the clock to each bar's close
    midnights = [first + k * DAY for k in range(4)]
    close_ns = bars.ts_close_ns.tolist()
    # the bar closing at midnight is not yet revealed when the timer fires: it comes after
    assert counter.days == [(m, k + 1, close_ns.index(m)) for k, m in enumerate(midnights)]
    assert eng.clock.timers() == {"summary:daily": first + 4 * DAY}  # after the last close


class _TimerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _HourlyRule:
    """An entry rule that trades nothing and counts an hourly timer through its context."""

    Params = _TimerParams
    fired: list[int] = []

    def __init__(self, ctx, params) -> None:
        self.ctx = ctx
        ctx.clock.set_timer(f"{ctx.name}:hourly", at_ns=(ctx.clock.now_ns() // (60 * MIN) + 1)
                            * 60 * MIN, interval_ns=60 * MIN)

    def on_timer(self, e: TimerFired) -> None:
        if e.name == f"{self.ctx.name}:hourly":
            _HourlyRule.fired.append(e.ts_event_ns)

    def on_bar_closed(self, bar: BarClosed) -> None:
        pass


def test_a_strategy_gets_the_clock_and_its_timers_through_its_context():
    from adapters.csv_feed import CsvFeed
    from engine.bootstrap import Registries, build_engine
    from engine.config import RunConfig
    from engine.registry import ENTRY_RULES, Registry

    reg = Registries(strategies=Registry.from_mapping(ENTRY_RULES, {"hourly": _HourlyRule}))
    cfg = RunConfig.model_validate({
        "name": "timers", "data": {"file": "unused.csv"},
        "strategies": [{"name": "h", "kind": "hourly"}],
    })
    _HourlyRule.fired = []
    eng = build_engine(cfg, reg, feed=CsvFeed.from_bars(_bars(20)))  # 09:00 .. 14:00 closes
    eng.run()
    assert _HourlyRule.fired == [T0 + h * 60 * MIN for h in (1, 2, 3, 4, 5)]


# -- the same component live: wall clock, idle ticks between bars ----------------------------------
class _WallFeed:
    """A live-style feed: a bar every ``gap_s`` of wall time, idle ticks while waiting."""

    def __init__(self, n: int, gap_s: float) -> None:
        self.n, self.gap_s = n, gap_s
        self.clock = None
        self.bars: list[BarClosed] = []

    def bind_clock(self, clock) -> None:
        self.clock = clock

    def __iter__(self):
        nxt = time.monotonic() + self.gap_s
        for i in range(self.n):
            while (wait := nxt - time.monotonic()) > 0:
                time.sleep(min(wait, self.clock.seconds_until_due(0.005)))
                yield None  # an idle tick: the loop fires what is due
            nxt += self.gap_s
            t = time.time_ns()  # the bar closes now and arrives at once
            bar = BarClosed(ts_event_ns=t, ts_init_ns=t, symbol="X", timeframe="15m", seq=i,
                            open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)
            self.bars.append(bar)
            yield bar


def _record(bus, clock) -> list[tuple]:
    seq: list[tuple] = []
    bus.subscribe(TimerFired, lambda e: seq.append(("timer", e.name, e.ts_event_ns, e.count)),
                  priority=0, name="timers")
    bus.subscribe(BarClosed, lambda b: seq.append(("bar", b.seq, b.ts_event_ns)), priority=0,
                  name="bars")
    return seq


def test_live_timers_fire_between_bars_and_a_replay_of_those_bars_fires_the_same():
    interval = 23 * 10**6  # 23 ms
    bus = Bus(on_error="isolate")
    clock = WallClock()
    clock.bind(bus.publish)
    live = _record(bus, clock)
    feed = _WallFeed(6, 0.08)
    feed.bind_clock(clock)
    start = time.time_ns()
    clock.set_timer("poll", at_ns=start + interval, interval_ns=interval)
    fired_at: list[int] = []
    bus.subscribe(TimerFired, lambda e: fired_at.append(e.ts_init_ns - e.ts_event_ns),
                  priority=1, name="lag")
    run_loop(feed, BarStore("X", "15m", TF), bus, replay=False, clock=clock)
    timers = [e for e in live if e[0] == "timer"]
    assert len(timers) >= 6 * 2  # ~3 per 80 ms gap, even on a busy machine at least 2
    # timers fired while the feed waited, between bars, not only when a bar came
    kinds = [e[0] for e in live]
    assert any(a == "bar" and b == "timer" for a, b in zip(kinds, kinds[1:], strict=False))
    assert all(lag >= 0 for lag in fired_at)  # never early
    assert sorted(e[2] for e in timers) == [e[2] for e in timers]

    # the same bars replayed on a simulated clock: the same sequence of events
    bus2 = Bus()
    sim = SimClock(start)
    sim.bind(bus2.publish)
    replayed = _record(bus2, sim)
    sim.set_timer("poll", at_ns=start + interval, interval_ns=interval)
    run_loop(list(feed.bars), BarStore("X", "15m", TF), bus2, replay=False, clock=sim)
    last_bar = max(i for i, e in enumerate(live) if e[0] == "bar")
    assert replayed == live[: last_bar + 1]
