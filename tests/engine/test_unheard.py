"""Events nobody hears may be skipped by their publisher (``Bus.unheard``), never once a sink or a
handler listens: a journal or bridge attached at any time still sees every cancel and trade."""

from __future__ import annotations

import math

from adapters.sim_broker import SimBroker
from engine.bus import PRIORITY_BROKER, PRIORITY_PORTFOLIO, Bus, unheard_types
from engine.events import (
    BarClosed,
    OrderCanceled,
    OrderFilled,
    SubmitOrder,
    TradeClosed,
)
from engine.fills import Costs
from engine.portfolio import Account


def _bar(seq: int, o: float, h: float, lo: float, c: float) -> BarClosed:
    t = (seq + 1) * 900_000_000_000
    return BarClosed(ts_event_ns=t, ts_init_ns=t, symbol="BTC-USDT", timeframe="15m", seq=seq,
                     open=o, high=h, low=lo, close=c, volume=1.0)


def _rig() -> tuple[Bus, Account, SimBroker]:
    bus = Bus()
    acct = Account("a", "BTC-USDT", 10_000.0, bus.publish)
    broker = SimBroker(acct, bus.publish, Costs(5e-4, 5e-4, 0.0))
    bus.subscribe(BarClosed, broker.on_bar_closed, priority=PRIORITY_BROKER)
    bus.subscribe(SubmitOrder, broker.on_submit_order, priority=PRIORITY_BROKER, account="a")
    bus.subscribe(OrderFilled, acct.on_order_filled, priority=PRIORITY_PORTFOLIO, account="a")
    return bus, acct, broker


def _round_trip(bus: Bus, seq: int) -> None:
    """Enter long with a stop, then close by a market exit: the stop is canceled (orphan)."""
    def submit(oid: str, side: str, **kw: object) -> None:
        bus.publish(SubmitOrder(ts_event_ns=0, ts_init_ns=0, account="a", order_id=oid,
                                side=side, type="market", seq=seq, **kw))  # type: ignore[arg-type]
    submit(f"e{seq}", "buy", equity_frac=0.5, stop_loss=50.0)
    bus.publish(_bar(seq + 1, 100.0, 101.0, 99.0, 100.0))
    submit(f"x{seq}", "sell", qty=math.inf, reduce_only=True)
    bus.publish(_bar(seq + 2, 100.0, 101.0, 99.0, 100.0))


def test_a_sink_attached_after_the_publishers_sees_every_cancel_and_trade():
    bus, acct, _ = _rig()
    bus.publish(_bar(0, 100.0, 101.0, 99.0, 100.0))
    _round_trip(bus, 0)  # nobody hears cancels and trades: skipped, the account still books
    assert OrderCanceled in bus.unheard and TradeClosed in bus.unheard
    assert len(acct.trades) == 1
    seen: list[object] = []
    bus.subscribe_all(seen.append)
    assert not bus.unheard
    _round_trip(bus, 2)
    cancels = [e for e in seen if isinstance(e, OrderCanceled)]
    trades = [e for e in seen if isinstance(e, TradeClosed)]
    assert [c.order_id for c in cancels] == ["e2-stop_loss"]
    assert trades == acct.trades[1:]


def test_a_typed_handler_takes_its_type_out_of_the_unheard_set():
    bus, _, _ = _rig()
    bus.publish(_bar(0, 100.0, 101.0, 99.0, 100.0))
    _round_trip(bus, 0)
    got: list[OrderCanceled] = []
    bus.subscribe(OrderCanceled, got.append, priority=500)
    assert OrderCanceled not in bus.unheard and TradeClosed in bus.unheard
    _round_trip(bus, 2)
    assert [c.reason for c in got] == ["position closed"]


def test_a_publish_that_is_not_a_bus_hears_everything():
    assert unheard_types(print) == frozenset()


def test_unsubscribing_the_last_listener_makes_a_type_unheard_again():
    bus, acct, _ = _rig()
    got: list[object] = []
    kept: list[object] = []
    name = bus.subscribe(OrderCanceled, got.append, priority=500, name="sink", owner=acct)
    assert name == "sink"
    # one owner, one name, several handlers (builtins: their __self__ is the list)
    assert bus.subscribe(TradeClosed, kept.append, priority=500, name="sink", owner=acct) == name
    assert not {OrderCanceled, TradeClosed} & bus.unheard
    bus.publish(_bar(0, 100.0, 101.0, 99.0, 100.0))
    _round_trip(bus, 0)
    assert len(got) == 1 and len(kept) == 1
    assert bus.unsubscribe("sink") == 2
    assert {OrderCanceled, TradeClosed} <= bus.unheard
    _round_trip(bus, 2)  # built by nobody, booked by the account all the same
    assert len(got) == 1 and len(kept) == 1 and len(acct.trades) == 2
    # the name is free again, for anybody
    assert bus.subscribe(OrderCanceled, print, priority=500, name="sink") == "sink"
    assert bus.unsubscribe("nobody") == 0
