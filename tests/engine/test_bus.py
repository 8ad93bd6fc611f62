from __future__ import annotations

import pytest

from engine.bus import Bus
from engine.errors import StrategyError
from engine.events import BarClosed, HandlerFailed


def _bar(seq: int = 0) -> BarClosed:
    return BarClosed(ts_event_ns=seq, ts_init_ns=seq, symbol="X", timeframe="15m", seq=seq,
                     open=1, high=1, low=1, close=1, volume=1)


def test_handlers_run_in_priority_then_subscription_order():
    bus = Bus()
    calls = []
    bus.subscribe(BarClosed, lambda e: calls.append("c"), priority=200, name="c")
    bus.subscribe(BarClosed, lambda e: calls.append("a"), priority=0, name="a")
    bus.subscribe(BarClosed, lambda e: calls.append("b1"), priority=100, name="b1")
    bus.subscribe(BarClosed, lambda e: calls.append("b2"), priority=100, name="b2")
    bus.subscribe_all(lambda e: calls.append("sink"), name="sink")
    bus.publish(_bar())
    assert calls == ["a", "b1", "b2", "c", "sink"]
    assert bus.handler_names(BarClosed) == ("a", "b1", "b2", "c", "sink")


def test_dispatch_is_by_exact_type():
    bus = Bus()
    seen = []
    bus.subscribe(HandlerFailed, seen.append, priority=0)
    bus.publish(_bar())
    assert seen == []


def test_backtest_policy_reraises_with_handler_name_and_cause():
    bus = Bus(on_error="raise")

    def boom(e):
        raise ZeroDivisionError("division by zero in my rule")

    bus.subscribe(BarClosed, boom, priority=0, name="my_rule")
    with pytest.raises(StrategyError, match=r"my_rule.*ZeroDivisionError.*my rule") as ei:
        bus.publish(_bar())
    assert isinstance(ei.value.__cause__, ZeroDivisionError)


def test_live_policy_disables_the_failing_handler_and_reports_it():
    bus = Bus(on_error="isolate")
    after, failed = [], []

    def boom(e):
        raise RuntimeError("bad")

    bus.subscribe(BarClosed, boom, priority=0, name="bad_handler")
    bus.subscribe(BarClosed, after.append, priority=1, name="good")
    bus.subscribe(HandlerFailed, failed.append, priority=0)
    bus.publish(_bar(0))
    bus.publish(_bar(1))
    assert [f.handler for f in failed] == ["bad_handler"]
    assert [e.seq for e in after] == [1]  # the failing bar is not re-delivered; later bars are
    assert bus.handler_names(BarClosed) == ("good",)
