"""The exit plan's stop and first target attached to the entry (``isOpenTpslOrder``) on the local
venue, with the real apexomni client: the target carries its tier's size (not the position's),
it fills as a partial and leaves the attached stop working for the rest; the stop is moved by
cancel-and-replace (new first); a target too small for the venue is not attached, the stop is.
The venue's own order records are checked, not the broker's view of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.apex.broker import client_id
from adapters.apex.venue import TEST_CREDENTIALS, LocalVenue
from engine.bars import Bars
from engine.events import ModifyOrder, OrderCanceled, OrderFilled
from tests.adapters.test_apex_broker import START, Harness

N = 40


@pytest.fixture
def h(real_bars: Bars) -> Iterator[Harness]:
    sample = real_bars.slice(START, START + N)  # a rising stretch: a long's target is reached
    with LocalVenue(sample, speed=0, credentials=TEST_CREDENTIALS) as venue:
        hh = Harness(venue, sample)
        hh.bar()
        yield hh


def _entry(h: Harness, oid: str):  # type: ignore[no-untyped-def]
    cid = client_id("test-run", "s1", oid)
    return next(o for o in h.venue_orders() if o.client_id == cid)


def test_the_attached_target_takes_its_tiers_size_and_leaves_the_stop_for_the_rest(
        h: Harness) -> None:
    px = float(h.bars.close[0])
    target = round(px * 1.003, 1)
    h.submit("s1-1", "buy", qty=0.1, stop_loss=px * 0.95, take_profit=target,
             take_profit_frac=0.3, take_profit_tag="TIER_1", tag="ENTRY")
    entry = _entry(h, "s1-1")
    f = entry.form
    assert entry.is_open_tpsl and f["isSetOpenSl"] == "True" and f["isSetOpenTp"] == "True"
    assert (f["slSize"], f["tpSize"]) == ("0.1", "0.03")  # the stop: all; the target: 30 %
    assert f["tpClientOrderId"] == client_id("test-run", "s1", "s1-1-take_profit")
    kids = {o.type: o for o in h.venue_orders() if o.parent_id == entry.id}
    assert kids["TAKE_PROFIT_MARKET"].size == pytest.approx(0.03)
    assert kids["STOP_MARKET"].size == pytest.approx(0.1)
    for _ in range(N - 2):
        h.bar()
        if h.of(OrderFilled)[-1].order_id == "s1-1-take_profit":
            break
    tp = h.of(OrderFilled)[-1]
    assert (tp.order_id, tp.tag, tp.qty, tp.price) == ("s1-1-take_profit", "TIER_1",
                                                       pytest.approx(0.03), target)
    assert h.acct.qty == pytest.approx(0.07)
    # the target's fill did not take the stop with it (only a flat position cancels it)
    assert kids["STOP_MARKET"].status == "UNTRIGGERED"
    assert {w.order_id for w in h.broker.working_orders()} == {"s1-1-stop_loss"}
    # a trail moves the attached stop: the new stop is on the venue before the old one goes
    n0 = len(h.venue.requests)
    h.broker.on_modify_order(ModifyOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="s1-1-stop_loss", price=px * 0.99,
                                         tag="TRAIL_STOP"))
    posts = [(r["path"], r["form"]) for r in list(h.venue.requests)[n0:]
             if r["method"] == "POST" and r.get("error") is None]
    assert [p for p, _ in posts] == ["/api/v3/order", "/api/v3/delete-client-order-id"]
    assert posts[1][1]["id"] == kids["STOP_MARKET"].client_id  # the attached one replaced
    assert kids["STOP_MARKET"].status == "CANCELED"
    live = [o for o in h.venue.book.open_orders() if o["type"] == "STOP_MARKET"]
    assert len(live) == 1 and float(live[0]["triggerPrice"]) == pytest.approx(px * 0.99,
                                                                                abs=0.1)
    assert [w.order_id for w in h.broker.working_orders()] == ["s1-1-stop_loss"]


def test_a_target_below_the_minimum_size_is_not_attached_the_stop_is(h: Harness) -> None:
    px = float(h.bars.close[0])
    h.submit("s1-1", "buy", qty=0.01, stop_loss=px * 0.95, take_profit=px * 1.003,
             take_profit_frac=0.05, take_profit_tag="TIER_1", tag="ENTRY")  # 0.0005 < 0.001
    entry = _entry(h, "s1-1")
    assert entry.form["isSetOpenSl"] == "True" and entry.form.get("isSetOpenTp") != "True"
    (refused,) = [c for c in h.of(OrderCanceled) if c.order_id == "s1-1-take_profit"]
    assert "minOrderSize" in refused.reason
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1"]  # the entry went, with its stop
    assert {o.type for o in h.venue_orders() if o.parent_id == entry.id} == {"STOP_MARKET"}
    assert {w.order_id for w in h.broker.working_orders()} == {"s1-1-stop_loss"}
