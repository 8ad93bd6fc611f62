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
    # the handlers after the failing one still get the failing bar, and every later bar
    assert [e.seq for e in after] == [0, 1]
    assert bus.handler_names(BarClosed) == ("good",)


# -- the loop's failure path: the right handler is blamed ------------------------------------------
from engine.bars import BarStore  # noqa: E402
from engine.events import CancelOrder, OrderFilled, SubmitOrder  # noqa: E402
from engine.loop import run_loop  # noqa: E402

TF = 900 * 10**9


class _Counter:
    """Two instances of one class share every code object: only the instance tells them apart."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.seen: list[int] = []
        self.fail_at = fail_at

    def on_bar_closed(self, bar: BarClosed) -> None:
        if bar.seq == self.fail_at:
            raise RuntimeError(f"bad bar {bar.seq}")
        self.seen.append(bar.seq)

    def note(self, event) -> None:
        pass


class _JournalLikeSink:
    """A sink (subscribe_all) that fails, as a journal on a full disk would."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, event) -> None:
        if isinstance(event, BarClosed) and event.seq == 1:
            raise OSError("disk full")
        self.n += 1


def _live_bars(n: int) -> list[BarClosed]:
    return [BarClosed(ts_event_ns=(i + 1) * TF, ts_init_ns=(i + 1) * TF, symbol="X",
                      timeframe="15m", seq=i, open=1, high=1, low=1, close=1, volume=1)
            for i in range(n)]


def _run(bus: Bus, n: int = 4) -> None:
    run_loop(_live_bars(n), BarStore("X", "15m", TF), bus, replay=False)


def test_raise_mode_names_the_second_instance_when_it_raises():
    bus = Bus(on_error="raise")
    first, second = _Counter(), _Counter(fail_at=2)
    bus.subscribe(BarClosed, first.on_bar_closed, priority=0, name="broker:first")
    bus.subscribe(BarClosed, second.on_bar_closed, priority=0, name="broker:second")
    with pytest.raises(StrategyError, match=r"'broker:second' raised RuntimeError.*bad bar 2"):
        _run(bus)


def test_isolate_mode_disables_only_the_failing_instance():
    bus = Bus(on_error="isolate")
    first, second, after = _Counter(), _Counter(fail_at=1), _Counter()
    failed: list[HandlerFailed] = []
    bus.subscribe(HandlerFailed, failed.append, priority=0, name="alerts")
    bus.subscribe(BarClosed, first.on_bar_closed, priority=0, name="broker:first")
    bus.subscribe(BarClosed, second.on_bar_closed, priority=0, name="broker:second")
    bus.subscribe(BarClosed, after.on_bar_closed, priority=10, name="strategy")
    _run(bus, 4)
    assert [f.handler for f in failed] == ["broker:second"]
    assert first.seen == [0, 1, 2, 3]  # the healthy instance keeps running on later bars
    assert second.seen == [0]  # disabled from its failure on
    assert after.seen == [0, 1, 2, 3]  # the failing bar still reaches the handlers after it
    assert bus.handler_names(BarClosed) == ("broker:first", "strategy")


def test_a_raising_sink_is_blamed_and_isolated():
    sink = _JournalLikeSink()
    bus = Bus(on_error="raise")
    keep = _Counter()
    bus.subscribe(BarClosed, keep.on_bar_closed, priority=0, name="broker:a")
    bus.subscribe_all(sink, name="journal")
    with pytest.raises(StrategyError, match=r"'journal' raised OSError.*disk full"):
        _run(bus)

    sink, keep = _JournalLikeSink(), _Counter()
    bus = Bus(on_error="isolate")
    failed: list[HandlerFailed] = []
    bus.subscribe(HandlerFailed, failed.append, priority=0, name="alerts")
    bus.subscribe(BarClosed, keep.on_bar_closed, priority=0, name="broker:a")
    bus.subscribe_all(sink, name="journal")
    _run(bus, 4)
    assert [(f.handler, f.error) for f in failed] == [("journal", "OSError: disk full")]
    assert keep.seen == [0, 1, 2, 3]
    assert bus.is_enabled("broker:a") and not bus.is_enabled("journal")


def test_default_names_are_unique_per_instance():
    bus = Bus(on_error="isolate")
    a, b = _Counter(), _Counter(fail_at=0)
    na = bus.subscribe(BarClosed, a.on_bar_closed, priority=0)
    nb = bus.subscribe(BarClosed, b.on_bar_closed, priority=0)
    assert na != nb
    # one owner may reuse its name for several subscriptions; another owner may not
    assert bus.subscribe(HandlerFailed, a.note, priority=0, name=na) == na
    assert bus.subscribe(BarClosed, _Counter().on_bar_closed, priority=5, name=na) != na
    bus.publish(_bar(0))  # b fails: only b is disabled
    bus.publish(_bar(1))
    assert a.seen == [0, 1] and b.seen == []


# -- routing by account ----------------------------------------------------------------------------
def _submit(account: str) -> SubmitOrder:
    return SubmitOrder(ts_event_ns=0, ts_init_ns=0, account=account, order_id=f"{account}-1",
                       side="buy", type="market", seq=0, qty=1.0)


def test_commands_reach_only_their_accounts_endpoint_and_every_sink():
    bus = Bus()
    got: dict[str, list] = {"a": [], "b": [], "all": [], "sink": []}
    bus.subscribe(SubmitOrder, got["a"].append, priority=0, name="broker:a", account="a")
    bus.subscribe(SubmitOrder, got["b"].append, priority=0, name="broker:b", account="b")
    bus.subscribe(SubmitOrder, got["all"].append, priority=5, name="risk")
    bus.subscribe_all(got["sink"].append, name="journal")
    bus.publish(_submit("a"))
    bus.publish(_submit("b"))
    bus.publish(_submit("nobody"))
    assert [c.account for c in got["a"]] == ["a"]
    assert [c.account for c in got["b"]] == ["b"]
    assert [c.account for c in got["all"]] == ["a", "b", "nobody"]
    assert [c.account for c in got["sink"]] == ["a", "b", "nobody"]
    assert bus.handler_names(SubmitOrder, "a") == ("broker:a", "risk", "journal")


def test_routing_needs_an_account_field():
    with pytest.raises(TypeError, match="no 'account' field"):
        Bus().subscribe(BarClosed, print, priority=0, account="a")


def _walk_bars(n: int):
    import numpy as np

    from engine.bars import Bars

    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.003, n)) * close
    return Bars.from_columns("BTC-USDT", "15m", TF, np.arange(n) * TF, open_,
                             np.maximum(open_, close) + spread, np.minimum(open_, close) - spread,
                             close, np.ones(n))


def test_engine_routes_commands_and_fills_one_to_one():
    from adapters.csv_feed import CsvFeed
    from engine.bootstrap import build_engine
    from engine.config import RunConfig

    cfg = RunConfig.model_validate({
        "name": "routing", "data": {"file": "unused.csv"},
        "execution": {"workers": 1},
        "strategies": [{"name": "s1", "kind": "stoch_cross"},
                       {"name": "s2", "kind": "stoch_cross"}],
    })
    eng = build_engine(cfg, feed=CsvFeed.from_bars(_walk_bars(3000)))
    sink: list = []
    eng.bus.subscribe_all(sink.append, name="recorder")
    for me, other in (("s1", "s2"), ("s2", "s1")):
        mine, theirs = eng.brokers[me], eng.brokers[other]
        for t, meth in ((SubmitOrder, "on_submit_order"), (CancelOrder, "on_cancel_order")):
            route = eng.bus.handlers(t, me)
            assert getattr(mine, meth) in route and getattr(theirs, meth) not in route
        fills = eng.bus.handlers(OrderFilled, me)
        assert eng.accounts[me].on_order_filled in fills
        assert eng.accounts[other].on_order_filled not in fills
    eng.run()
    t1, t2 = eng.accounts["s1"].trades, eng.accounts["s2"].trades
    assert t1 and [msgspec_replace(t, account="s1") for t in t2] == t1
    # the sink saw every command and fill of both accounts
    kinds = {(type(e).__name__, e.account) for e in sink if hasattr(e, "account")}
    assert {("SubmitOrder", "s1"), ("SubmitOrder", "s2"), ("OrderFilled", "s1"),
            ("OrderFilled", "s2"), ("TradeClosed", "s1"), ("TradeClosed", "s2")} <= kinds


def msgspec_replace(t, **kw):
    import msgspec

    return msgspec.structs.replace(t, **kw)


# -- tickers: a sink's look at the clock every N bars, between chunks of the loop ---------------
@pytest.mark.parametrize("replay", [True, False])
def test_a_ticker_runs_after_every_nth_bar_and_may_change_its_pace(replay):
    bus = Bus()
    seen: list[int] = []
    bus.subscribe(BarClosed, lambda b: seen.append(b.seq), priority=0)
    ticks: list[int] = []  # how many bars the handlers had seen at each tick

    def tick() -> None:
        ticks.append(len(seen))
        if len(seen) >= 9:
            ticker.every = 1  # read by the loop at its next chunk

    ticker = bus.tick_every(tick, 3)
    # replay: the hot path (chunks of bars); not replay: the live path, bar by bar
    run_loop(_live_bars(14), BarStore("X", "15m", TF), bus, replay=replay)
    assert seen == list(range(14))
    assert ticks == [3, 6, 9, 10, 11, 12, 13, 14]
    with pytest.raises(ValueError, match="1 or more bars"):
        bus.tick_every(print, 0)
