"""The Apex broker (adapters/apex/broker.py) against the local venue on loopback, with the real
apexomni client: entries with the worst-price guard and attached stop/target, reduce-only exits,
stop moves that never leave the position without a stop, rounding and minOrderSize, idempotent
clientIds, fills from the venue as OrderFilled, and the injected faults (timeout, 5xx, 429, a reply
lost after the order was accepted, a rejected order) each ending in a defined state."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from adapters.apex.broker import ApexBroker, SymbolRules, client_id
from adapters.apex.client import ApexClient
from adapters.apex.venue import TEST_CREDENTIALS, LocalVenue
from engine.bars import Bars
from engine.events import (
    BarClosed,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    SubmitOrder,
)
from engine.fills import Costs
from engine.portfolio import Account

START = 30_000
N = 60


class Harness:
    """One account, its Apex broker and the venue; events recorded, fills booked."""

    def __init__(self, venue: LocalVenue, bars: Bars, **kw: object) -> None:
        self.venue = venue
        self.bars = bars
        self.events: list[Event] = []
        self.acct = Account("s1", "BTC-USDT", 10_000.0, self.events.append)
        self.client = ApexClient(venue.url, venue.credentials, timeout=5.0)
        self.waits: list[float] = []
        self.broker = ApexBroker(self.acct, self.publish, Costs.from_bps(5, 2, 0),
                                 client=self.client, symbol="BTC-USDT", run_id="test-run",
                                 sleep=self.waits.append, **kw)  # type: ignore[arg-type]
        self.k = -1  # the newest closed candle the engine has seen

    def publish(self, ev: Event) -> None:
        self.events.append(ev)
        if isinstance(ev, OrderFilled):
            self.acct.on_order_filled(ev)

    def bar(self) -> BarClosed:
        """Close the next candle on the venue and hand it to the broker (as the feed would)."""
        self.venue.advance(1)
        self.k += 1
        b, k = self.bars, self.k
        bar = BarClosed(ts_event_ns=int(b.ts_open_ns[k]) + b.tf_ns, ts_init_ns=0,
                        symbol="BTC-USDT", timeframe="15m", seq=k, open=float(b.open[k]),
                        high=float(b.high[k]), low=float(b.low[k]), close=float(b.close[k]),
                        volume=float(b.volume[k]))
        self.broker.on_bar_closed(bar)
        return bar

    def submit(self, oid: str, side: str, typ: str = "market", **kw: object) -> None:
        self.broker.on_submit_order(SubmitOrder(
            ts_event_ns=0, ts_init_ns=0, account="s1", order_id=oid, side=side,  # type: ignore
            type=typ, seq=self.k, **kw))  # type: ignore[arg-type]
        assert self.broker._bar is not None
        self.broker.after_bar(self.broker._bar)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    def venue_orders(self) -> list:  # type: ignore[type-arg]
        return list(self.venue.book.orders.values())


@pytest.fixture
def sample(real_bars: Bars) -> Bars:
    return real_bars.slice(START, START + N)


@pytest.fixture
def h(sample: Bars) -> Iterator[Harness]:
    with LocalVenue(sample, speed=0, credentials=TEST_CREDENTIALS) as venue:
        hh = Harness(venue, sample)
        hh.bar()
        yield hh


def test_client_ids_are_deterministic_and_distinct() -> None:
    a = client_id("run", "s1", "s1-1")
    assert a == client_id("run", "s1", "s1-1") and a.isdigit() and len(a) == 20
    assert len({a, client_id("run", "s1", "s1-2"), client_id("run", "s2", "s1-1"),
                client_id("run2", "s1", "s1-1")}) == 4


def test_rounding_to_step_and_tick() -> None:
    from decimal import Decimal

    r = SymbolRules("BTC-USDT", Decimal("0.1"), Decimal("0.001"), Decimal("0.001"))
    assert r.size(0.12345) == Decimal("0.123")  # down, never past what was asked
    assert r.size(0.3) == Decimal("0.3")  # 0.3 is 0.29999... in binary: not one step less
    assert r.price(42000.04) == Decimal("42000") and r.price(42000.06) == Decimal("42000.1")


def test_entry_with_attached_stop_and_target_fills_at_next_open(h: Harness) -> None:
    px = float(h.bars.close[0])
    h.submit("s1-1", "buy", equity_frac=0.5, stop_loss=px * 0.97, take_profit=px * 1.03,
             tag="ENTRY")
    fills = h.of(OrderFilled)
    assert len(fills) == 1, h.events
    f = fills[0]
    # the venue filled it at the open of the candle after the decision: seq 1, as a backtest
    assert f.order_id == "s1-1" and f.seq == 1 and f.price == pytest.approx(float(h.bars.open[1]))
    assert f.fee == pytest.approx(f.qty * f.price * 0.0005)  # the venue's fee (taker 5 bps)
    # sized from the account's equity at the worst price (0.1 % above the market), step 0.001
    assert f.qty == pytest.approx(math.floor(0.5 * 10_000 / (px * 1.001 * 1.0005) * 1000) / 1000,
                                  abs=0.0011)
    entry = next(o for o in h.venue_orders() if o.client_id == client_id("test-run", "s1", "s1-1"))
    assert entry.type == "MARKET" and entry.price >= px  # the worst-price guard
    kids = {o.type: o for o in h.venue_orders() if o.parent_id == entry.id}
    assert set(kids) == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    assert kids["STOP_MARKET"].status == "UNTRIGGERED" and kids["STOP_MARKET"].reduce_only
    assert kids["STOP_MARKET"].trigger == pytest.approx(px * 0.97, abs=0.1)
    assert {w.order_id for w in h.broker.working_orders()} == {"s1-1-stop_loss",
                                                               "s1-1-take_profit"}


def test_stop_move_places_the_new_stop_before_canceling_the_old_and_keeps_the_target(
        h: Harness) -> None:
    px = float(h.bars.close[0])
    h.submit("s1-1", "buy", qty=0.05, stop_loss=px * 0.95, take_profit=px * 1.2, tag="ENTRY")
    h.bar()
    n_req = len(h.venue.requests)
    h.broker.on_modify_order(ModifyOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="s1-1-stop_loss", price=px * 0.96,
                                         tag="TRAIL_STOP"))
    posts = [r for r in h.venue.requests[n_req:] if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/api/v3/order", "/api/v3/delete-client-order-id"]
    working = [o for o in h.venue.book.working.values()]
    assert sorted(o.type for o in working) == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]  # TP kept
    stop = next(o for o in working if o.type == "STOP_MARKET")
    assert stop.trigger == pytest.approx(px * 0.96, abs=0.1) and stop.size == pytest.approx(0.05)
    # a stop move that the venue refuses leaves the old stop working
    h.venue.inject("/api/v3/order", "reject", key="ORDER_PRICE_INVALID")
    h.broker.on_modify_order(ModifyOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="s1-1-stop_loss", price=px * 0.97))
    assert stop.status == "UNTRIGGERED" and stop.id in h.venue.book.working


def test_reduce_only_exit_closes_and_the_venue_cancels_the_orphans(h: Harness) -> None:
    h.submit("s1-1", "sell", qty=0.04, stop_loss=float(h.bars.close[0]) * 1.1, tag="ENTRY")
    h.bar()
    h.submit("s1-2", "buy", qty=math.inf, reduce_only=True, tag="SIGNAL_EXIT")
    fills = h.of(OrderFilled)
    assert [f.order_id for f in fills] == ["s1-1", "s1-2"] and fills[1].qty == pytest.approx(0.04)
    assert h.acct.qty == 0.0 and len(h.acct.trades) == 1
    assert h.acct.trades[0].entry_seq == 1 and h.acct.trades[0].exit_seq == 2
    assert not h.venue.book.working  # the stop died with the position
    assert any(c.order_id == "s1-1-stop_loss" and "POSITION_CLOSED" in c.reason
               for c in h.of(OrderCanceled))
    # a reduce-only order with nothing to reduce is refused locally, never sent
    n = len(h.venue.requests)
    h.submit("s1-3", "buy", qty=0.01, reduce_only=True, tag="X")
    assert not [r for r in h.venue.requests[n:] if r["method"] == "POST"]
    assert h.of(OrderCanceled)[-1].order_id == "s1-3"


def test_resting_stop_fills_on_the_bar_it_is_hit(h: Harness) -> None:
    lows = h.bars.low
    px = float(h.bars.close[0])
    # a stop just under the open of the bar after: hit within the next few bars
    h.submit("s1-1", "buy", qty=0.02, tag="ENTRY")
    target = float(min(lows[2:12]))
    h.submit("s1-2", "sell", "stop", qty=math.inf, price=target + 1.0, reduce_only=True,
             tag="STOP_LOSS")
    assert px > 0
    for _ in range(11):
        h.bar()
        if h.acct.qty == 0.0:
            break
    stop_fill = h.of(OrderFilled)[-1]
    assert stop_fill.order_id == "s1-2" and stop_fill.tag == "STOP_LOSS"
    assert lows[stop_fill.seq] <= target + 1.0  # booked on the bar whose range reached it
    assert all(lows[k] > target + 1.0 for k in range(2, stop_fill.seq))


def test_below_min_size_is_refused_locally(h: Harness) -> None:
    n = len(h.venue.requests)
    h.submit("s1-1", "buy", qty=0.0004, tag="ENTRY")  # step and min size 0.001
    assert not [r for r in h.venue.requests[n:] if r["method"] == "POST"]
    (c,) = h.of(OrderCanceled)
    assert c.order_id == "s1-1" and "minOrderSize" in c.reason
    assert not h.venue.book.orders


@pytest.mark.parametrize("kind", ["http500", "rate_limit", "html502"])
def test_transient_faults_are_retried_once_each(h: Harness, kind: str) -> None:
    h.venue.inject("/api/v3/order", kind)
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    assert len([o for o in h.venue_orders() if o.type == "MARKET"]) == 1  # one, not two
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1"]
    assert h.broker.retries == (1 if kind != "html502" else 0)
    if kind == "rate_limit":
        assert h.waits == [1.0]  # the venue's retryAfter


def test_reply_lost_after_accept_never_opens_a_second_position(h: Harness) -> None:
    h.venue.inject("/api/v3/order", "drop_reply_after_accept")
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    assert len([o for o in h.venue_orders() if o.type == "MARKET"]) == 1
    assert h.venue.book.qty == pytest.approx(0.01) and h.acct.qty == pytest.approx(0.01)
    lookups = [r for r in h.venue.requests if r["path"] == "/api/v3/order-by-client-order-id"]
    assert len(lookups) == 1  # looked up by clientId, found, not resent


def test_timeout_before_handling_is_looked_up_then_resent_once(h: Harness) -> None:
    h.client.set_timeout(0.3)
    h.venue.inject("/api/v3/order", "timeout", delay=0.6)
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    h.client.set_timeout(5.0)
    assert len([o for o in h.venue_orders() if o.type == "MARKET"]) == 1
    assert h.acct.qty == pytest.approx(0.01)


def test_rejected_order_is_reported_with_the_reason(h: Harness) -> None:
    h.venue.inject("/api/v3/order", "reject", key="ORDER_PRICE_INVALID")
    h.submit("s1-1", "buy", qty=0.01, stop_loss=1.0, tag="ENTRY")
    (c,) = h.of(OrderCanceled)
    assert c.order_id == "s1-1" and "ORDER_PRICE_INVALID" in c.reason
    assert not h.broker.working_orders() and h.acct.qty == 0.0


def test_insufficient_balance_is_a_rejection_not_a_crash(h: Harness) -> None:
    h.submit("s1-1", "buy", qty=50.0, tag="ENTRY")  # ~ 50 BTC on a 10k account
    (c,) = h.of(OrderCanceled)
    assert "INSUFFICIENT_BALANCE" in c.reason and not h.venue.book.orders


def test_cancel_of_a_missing_order_is_reported(h: Harness) -> None:
    h.broker.on_cancel_order(CancelOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="nope"))
    assert h.of(OrderCanceled)[0].reason.startswith("not working")


def test_live_config_with_two_strategies_is_refused() -> None:
    from pathlib import Path

    from engine.config import load_config
    from engine.errors import ConfigError

    live = Path(__file__).resolve().parents[2] / "configs" / "live.yaml"
    cfg = load_config(live, {"strategies": [{"name": "a", "kind": "trailing_stop"},
                                            {"name": "b", "kind": "multi_tier"}]})
    with pytest.raises(ConfigError, match="one strategy per Apex account"):
        ApexBroker.from_config(cfg)


def test_risk_gate_in_front_of_the_apex_broker_sends_nothing_it_refuses(h: Harness) -> None:
    import time

    from engine.config import RiskConfig
    from engine.risk import RiskBook, RiskGate

    gate = RiskGate(h.broker, RiskBook(RiskConfig(max_position_notional=100.0), time.time_ns),
                    h.publish)
    assert gate.after_bar == h.broker.after_bar  # the live hook still reaches the broker
    gate.book.on_bar(h.bar())  # the gate's book knows the last close
    n = len(h.venue.requests)
    gate.on_submit_order(SubmitOrder(ts_event_ns=0, ts_init_ns=0, account="s1", order_id="s1-1",
                                     side="buy", type="market", seq=0, qty=0.01, tag="ENTRY"))
    assert not [r for r in h.venue.requests[n:] if r["method"] == "POST"]  # ~430 USDT > 100
    (c,) = h.of(OrderCanceled)
    assert c.reason.startswith("risk: position worth") and not h.venue.book.orders


def test_flatten_cancels_everything_and_closes_reduce_only(
        h: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from engine.cli import main

    px = float(h.bars.close[0])
    h.submit("s1-1", "sell", qty=0.03, stop_loss=px * 1.05, take_profit=px * 0.9, tag="ENTRY")
    h.submit("s1-2", "buy", "limit", qty=0.01, price=px * 0.8, reduce_only=True, tag="TP2")
    h.bar()
    assert h.venue.book.qty == pytest.approx(-0.03) and len(h.venue.book.working) == 3
    c = TEST_CREDENTIALS
    for k, v in (("APEX_API_KEY", c.key), ("APEX_API_SECRET", c.secret),
                 ("APEX_API_PASSPHRASE", c.passphrase), ("APEX_ZK_SEEDS", c.zk_seeds)):
        monkeypatch.setenv(k, v)
    live = Path(__file__).resolve().parents[2] / "configs" / "live.yaml"
    assert main(["flatten", str(live), "--venue", h.venue.url]) == 0
    out = capsys.readouterr().out
    assert "canceled 3 open order(s)" in out and "closed the SHORT position of 0.03" in out
    assert h.venue.book.qty == 0.0 and not h.venue.book.working
    close = [o for o in h.venue_orders() if o.form.get("reduceOnly") == "True"
             and o.type == "MARKET"]
    assert len(close) == 1 and close[0].side == "BUY"
    assert main(["flatten", str(live), "--venue", h.venue.url]) == 0  # nothing left: no-op
    assert "no open position" in capsys.readouterr().out


def test_transient_faults_past_the_retries_end_in_a_reported_cancel(h: Harness) -> None:
    h.venue.inject("/api/v3/order", "http500", count=10)
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    (c,) = h.of(OrderCanceled)
    assert c.order_id == "s1-1" and c.reason.startswith("not placed")
    assert "after 5 retries" in c.reason
    assert not h.venue.book.orders and h.broker.retries == 5
    assert h.waits == [0.25, 0.5, 1.0, 2.0, 4.0]  # doubling, capped at 4 s


def test_a_failing_fills_read_is_retried_and_books_each_fill_once(h: Harness) -> None:
    h.venue.inject("/api/v3/fills", "http500", count=2)
    h.submit("s1-1", "buy", qty=0.01, stop_loss=float(h.bars.close[0]) * 0.9, tag="ENTRY")
    h.bar()
    h.bar()
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1"] and h.broker.retries == 2


def test_a_size_the_venue_refuses_is_reported(h: Harness) -> None:
    h.venue.inject("/api/v3/order", "reject", key="ORDER_SIZE_LESS_THAN_MIN")
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")
    (c,) = h.of(OrderCanceled)
    assert "ORDER_SIZE_LESS_THAN_MIN" in c.reason and not h.venue.book.orders
    h.submit("s1-2", "buy", qty=0.01, tag="ENTRY")  # the next order goes through
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-2"]


def test_stop_and_target_in_one_bar_and_the_runners_late_cancel_book_each_fill_once(
        h: Harness) -> None:
    """The position closes on a stop; the strategy's cancel of it arrives after (as the exit
    runner sends it): reported, and no fill is published twice."""
    px = float(h.bars.close[0])
    h.submit("s1-1", "buy", qty=0.02, tag="ENTRY")
    hi = float(max(h.bars.high[2:6]))
    h.submit("s1-2", "sell", "stop", qty=math.inf, price=px * 0.5, reduce_only=True,
             tag="STOP_LOSS")
    h.submit("s1-3", "sell", "limit", qty=0.02, price=hi - 1.0, reduce_only=True, tag="TP")
    for _ in range(5):
        h.bar()
    assert h.acct.qty == 0.0
    h.broker.on_cancel_order(CancelOrder(ts_event_ns=0, ts_init_ns=0, account="s1",
                                         order_id="s1-2", reason="position closed"))
    fills = h.of(OrderFilled)
    assert [f.order_id for f in fills] == ["s1-1", "s1-3"]
    assert len(fills) == len(h.venue.book.fills)
    assert any(c.order_id == "s1-2" for c in h.of(OrderCanceled))
    assert not h.venue.book.working


def test_a_live_start_on_an_account_that_is_not_flat_is_refused(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from engine.config import load_config
    from engine.errors import VenueError

    live = Path(__file__).resolve().parents[2] / "configs" / "live.yaml"
    cfg = load_config(live, {"data.venue": h.venue.url})
    factory = ApexBroker.from_config(cfg, client=h.client)
    factory(Account("a", "BTC-USDT", 1000.0, lambda e: None), lambda e: None,
            Costs.from_bps(5, 2, 0))  # flat: fine
    h.submit("s1-1", "buy", qty=0.01, stop_loss=float(h.bars.close[0]) * 0.9, tag="ENTRY")
    with pytest.raises(VenueError, match=r"holds a LONG position of 0.01 and 1 open order"):
        factory(Account("a", "BTC-USDT", 1000.0, lambda e: None), lambda e: None,
                Costs.from_bps(5, 2, 0))


def test_a_reduce_only_order_capped_at_the_position_stops_working(h: Harness) -> None:
    """A fill short of an order's size: a reduce-only target for the whole position fills only
    what is left after a partial exit; it is then done, not reported as working or canceled."""
    h.submit("s1-1", "buy", qty=0.02, tag="ENTRY")
    h.submit("s1-2", "sell", "limit", qty=0.02, price=float(max(h.bars.high[2:9])) - 1.0,
             reduce_only=True, tag="TP")
    h.submit("s1-3", "sell", qty=0.01, reduce_only=True, tag="PARTIAL")  # fills at once
    for _ in range(8):
        h.bar()
        if h.acct.qty == 0.0:
            break
    (f,) = [f for f in h.of(OrderFilled) if f.order_id == "s1-2"]
    assert f.qty == pytest.approx(0.01) and h.acct.qty == 0.0  # capped by the venue
    h.bar()
    assert not h.broker.working_orders()
    assert not [c for c in h.of(OrderCanceled) if c.order_id == "s1-2"]
