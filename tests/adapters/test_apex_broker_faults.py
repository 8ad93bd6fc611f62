"""Venue faults the Apex broker must end in a defined state (beside those in
test_apex_broker.py: 5xx, 429, a 502 page, a lost reply of an order, a timeout before handling,
rejected price and size, a failing fills read): a resting order the venue fills in two parts
(fault ``partial``: each part is an ``OrderFilled`` of its size, the rest keeps working, the
engine's position is the venue's), a reply lost after a cancel or a stop move was done, and a
read that times out."""

from __future__ import annotations

import math

import pytest

from adapters.apex.broker import client_id
from engine.events import CancelOrder, ModifyOrder, OrderCanceled, OrderFilled
from tests.adapters.test_apex_broker import Harness, h, sample  # noqa: F401 (fixtures)


def _bars_until(hh: Harness, done, n: int = 20) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        if done():
            return
        hh.bar()


def test_a_limit_filled_in_two_parts_books_each_part_and_the_rest_keeps_working(
        h: Harness) -> None:  # noqa: F811
    h.submit("s1-1", "buy", qty=0.02, tag="ENTRY")
    k0 = h.k
    hi = max(float(x) for x in h.bars.high[k0 + 1: k0 + 8])
    price = hi - 1.0
    h.submit("s1-2", "sell", "limit", qty=0.02, price=price, reduce_only=True, tag="TP")
    h.venue.inject("*", "partial")
    _bars_until(h, lambda: any(f.order_id == "s1-2" for f in h.of(OrderFilled)))
    first = [f for f in h.of(OrderFilled) if f.order_id == "s1-2"]
    assert len(first) == 1 and first[0].qty == pytest.approx(0.01)
    assert first[0].price == pytest.approx(price, abs=0.1)
    # the defined state between the parts: half the position left, the target working for it
    assert h.acct.qty == pytest.approx(0.01) == h.venue.book.qty
    (w,) = h.broker.working_orders()
    assert w.order_id == "s1-2" and w.qty == pytest.approx(0.01)
    v = next(o for o in h.venue_orders() if o.client_id == client_id("test-run", "s1", "s1-2"))
    assert v.status == "OPEN" and v.filled_size == pytest.approx(0.01)
    # the rest fills the next time a candle reaches the price (not on the same one)
    _bars_until(h, lambda: h.acct.qty == 0.0, 40)
    parts = [f for f in h.of(OrderFilled) if f.order_id == "s1-2"]
    assert [p.qty for p in parts] == pytest.approx([0.01, 0.01])
    assert parts[1].seq > parts[0].seq
    assert h.bars.high[parts[1].seq] >= price - 0.1
    assert h.acct.qty == 0.0 == h.venue.book.qty and v.status == "FILLED"
    assert not h.broker.working_orders() and not h.venue.book.working
    assert len(h.acct.trades) >= 1 and len(h.of(OrderFilled)) == len(h.venue.book.fills)


def test_an_attached_stop_filled_in_two_parts_closes_the_position_in_two_fills(
        h: Harness) -> None:  # noqa: F811
    lows = h.bars.low
    k0 = h.k
    stop = float(min(lows[k0 + 2: k0 + 10])) + 1.0  # reached within a few candles
    h.submit("s1-1", "buy", qty=0.03, stop_loss=stop, tag="ENTRY")
    h.venue.inject("*", "partial")
    _bars_until(h, lambda: h.acct.qty == 0.0, 30)
    parts = [f for f in h.of(OrderFilled) if f.order_id == "s1-1-stop_loss"]
    assert [p.qty for p in parts] == pytest.approx([0.015, 0.015])
    assert parts[0].seq < parts[1].seq and lows[parts[0].seq] <= stop
    assert h.acct.qty == 0.0 == h.venue.book.qty
    assert not h.broker.working_orders() and not h.venue.book.working
    assert sum(p.qty for p in parts) == pytest.approx(0.03)


def test_a_reply_lost_after_a_cancel_ends_canceled_on_both_sides(h: Harness) -> None:  # noqa: F811
    px = float(h.bars.close[0])
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    h.submit("s1-2", "sell", "limit", qty=0.01, price=px * 1.5, reduce_only=True, tag="TP")
    h.venue.inject("/api/v3/delete-client-order-id", "drop_reply_after_accept")
    h.broker.on_cancel_order(CancelOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="s1-2", reason="exit plan changed"))
    (c,) = [c for c in h.of(OrderCanceled) if c.order_id == "s1-2"]
    # the cancel was done, its reply lost; the retry finds the order already canceled
    assert "cancel refused" in c.reason and "already CANCELED" in c.reason
    v = next(o for o in h.venue_orders() if o.type == "LIMIT")
    assert v.status == "CANCELED" and not h.broker.working_orders()
    h.bar()  # nothing more is reported for it
    assert len([c for c in h.of(OrderCanceled) if c.order_id == "s1-2"]) == 1


def test_a_reply_lost_after_a_stop_move_leaves_exactly_one_stop(h: Harness) -> None:  # noqa: F811
    px = float(h.bars.close[0])
    h.submit("s1-1", "buy", qty=0.02, stop_loss=px * 0.9, tag="ENTRY")
    h.venue.inject("/api/v3/order", "drop_reply_after_accept")
    h.broker.on_modify_order(ModifyOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="s1-1-stop_loss", price=px * 0.92))
    stops = [o for o in h.venue.book.working.values() if o.type == "STOP_MARKET"]
    assert len(stops) == 1 and stops[0].trigger == pytest.approx(px * 0.92, abs=0.1)
    (w,) = h.broker.working_orders()
    assert w.order_id == "s1-1-stop_loss" and w.price == pytest.approx(px * 0.92, rel=1e-6)
    assert len([o for o in h.venue_orders() if o.type == "STOP_MARKET"]) == 2  # no third


def test_a_read_that_times_out_is_retried_and_fills_are_booked_once(
        h: Harness) -> None:  # noqa: F811
    h.client.set_timeout(0.3)
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    h.venue.inject("/api/v3/fills", "timeout", delay=0.6)
    h.submit("s1-2", "sell", qty=math.inf, reduce_only=True, tag="EXIT")
    h.client.set_timeout(5.0)
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1", "s1-2"]
    assert h.broker.retries >= 1 and h.acct.qty == 0.0 == h.venue.book.qty
