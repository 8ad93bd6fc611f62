"""The simulated broker's intrabar policy, gaps, fees, slippage and partial exits.

Every expected fill below is computed by hand from the bar prices in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.sim_broker import SimBroker
from engine.bus import PRIORITY_BROKER, PRIORITY_PORTFOLIO, Bus
from engine.events import (
    BarClosed,
    CancelOrder,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    SubmitOrder,
)
from engine.fills import Costs, IntrabarPolicy, MarketFill
from engine.portfolio import Account

FEE = 5e-4  # 5 bps taker
MAKER = 2e-4


class Rig:
    def __init__(self, policy=IntrabarPolicy.STOP_FIRST, market_fill=MarketFill.NEXT_OPEN,
                 slippage=0.0, cash=10_000.0):
        self.bus = Bus()
        self.events = []
        self.bus.subscribe_all(self.events.append)
        self.acct = Account("a", "BTC-USDT", cash, self.bus.publish)
        self.broker = SimBroker(self.acct, self.bus.publish, Costs(FEE, MAKER, slippage), policy,
                                market_fill)
        b = self.bus
        b.subscribe(BarClosed, self.broker.on_bar_closed, priority=PRIORITY_BROKER)
        b.subscribe(SubmitOrder, self.broker.on_submit_order, priority=PRIORITY_BROKER)
        b.subscribe(CancelOrder, self.broker.on_cancel_order, priority=PRIORITY_BROKER)
        b.subscribe(ModifyOrder, self.broker.on_modify_order, priority=PRIORITY_BROKER)
        b.subscribe(OrderFilled, self.acct.on_order_filled, priority=PRIORITY_PORTFOLIO)
        self.closes = []
        b.subscribe(BarClosed, lambda e: self.closes.append(e.close), priority=PRIORITY_PORTFOLIO)
        self.seq = -1
        self.n = 0

    def bar(self, o, h, lo, c):
        self.seq += 1
        ts = (self.seq + 1) * 900 * 10**9
        self.bus.publish(BarClosed(ts_event_ns=ts, ts_init_ns=ts, symbol="BTC-USDT",
                                   timeframe="15m", seq=self.seq, open=o, high=h, low=lo,
                                   close=c, volume=1.0))

    def submit(self, side, type_="market", **kw):
        self.n += 1
        oid = kw.pop("order_id", f"o{self.n}")
        self.bus.publish(SubmitOrder(ts_event_ns=0, ts_init_ns=0, account="a", order_id=oid,
                                     side=side, type=type_, seq=self.seq, **kw))
        return oid

    def fills(self):
        return [e for e in self.events if isinstance(e, OrderFilled)]

    def cancels(self):
        return [e for e in self.events if isinstance(e, OrderCanceled)]


def test_market_order_fills_at_next_open_with_taker_fee():
    r = Rig()
    r.bar(99, 101, 98, 100)
    r.submit("buy", qty=2.0)
    assert r.fills() == []  # nothing fills on the deciding bar
    r.bar(100.5, 102, 100, 101)
    (f,) = r.fills()
    assert (f.price, f.qty, f.seq, f.liquidity) == (100.5, 2.0, 1, "taker")
    assert f.fee == pytest.approx(2 * 100.5 * FEE)
    assert r.acct.cash == pytest.approx(10_000 - 201 - 2 * 100.5 * FEE)
    eq = r.acct.equity_curve(np.array(r.closes))
    assert eq.tolist() == pytest.approx([10_000, r.acct.cash + 2 * 101])


def test_market_fill_at_close_policy():
    r = Rig(market_fill=MarketFill.CLOSE)
    r.bar(99, 101, 98, 100)
    r.submit("buy", qty=1.0)
    (f,) = r.fills()
    assert (f.price, f.seq) == (100, 0)


def test_equity_fraction_sizing_includes_the_fee():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", equity_frac=0.5)
    r.bar(200, 210, 190, 205)
    (f,) = r.fills()
    assert f.qty == pytest.approx(5_000 / (200 * (1 + FEE)))
    assert f.qty * f.price + f.fee == pytest.approx(5_000)


def test_slippage_is_adverse():
    r = Rig(slippage=10e-4)
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0)
    r.bar(100, 101, 99, 100)
    r.submit("sell", qty=1.0, reduce_only=True)
    r.bar(100, 101, 99, 100)
    buy, sell = r.fills()
    assert buy.price == pytest.approx(100.1)
    assert sell.price == pytest.approx(99.9)


def test_attached_stop_fills_at_stop_and_trade_pnl_is_net_of_both_fees():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0, stop_loss=95.0)
    r.bar(100, 103, 96, 101)  # entry at 100, low 96 stays above the stop
    assert len(r.fills()) == 1
    r.bar(97, 98, 94, 96)  # low 94 crosses 95
    _entry, stop = r.fills()
    assert (stop.price, stop.side, stop.tag, stop.gap) == (95.0, "sell", "STOP_LOSS", False)
    (t,) = r.acct.trades
    fees = 100 * FEE + 95 * FEE
    assert t.pnl == pytest.approx(-5 - fees)
    assert t.fees == pytest.approx(fees)
    assert (t.entry_seq, t.exit_seq, t.exit_reason, t.side) == (1, 2, "STOP_LOSS", "long")
    assert r.acct.qty == 0.0


def test_gap_through_stop_fills_at_open():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0, stop_loss=95.0)
    r.bar(100, 101, 99, 100)
    r.bar(90, 92, 88, 91)  # opens below the stop
    stop = r.fills()[-1]
    assert (stop.price, stop.gap) == (90.0, True)


def test_stop_in_the_entry_bar_is_not_ambiguous():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0, stop_loss=95.0)
    r.bar(100, 101, 94, 96)  # entry at the open, then the low hits the stop
    entry, stop = r.fills()
    assert (entry.price, stop.price, stop.seq) == (100, 95.0, 1)
    assert r.acct.trades[0].ambiguous is False


@pytest.mark.parametrize(
    ("policy", "o", "c", "expected_price", "expected_tag"),
    [
        (IntrabarPolicy.STOP_FIRST, 100, 100, 95.0, "STOP_LOSS"),
        (IntrabarPolicy.TARGET_FIRST, 100, 100, 110.0, "TAKE_PROFIT"),
        (IntrabarPolicy.OHLC_PATH, 100, 105, 95.0, "STOP_LOSS"),  # rising bar: O-L-H-C
        (IntrabarPolicy.OHLC_PATH, 100, 96, 110.0, "TAKE_PROFIT"),  # falling bar: O-H-L-C
    ],
)
def test_stop_and_target_in_one_bar_follow_the_policy_and_are_flagged(
    policy, o, c, expected_price, expected_tag
):
    r = Rig(policy=policy)
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0, stop_loss=95.0, take_profit=110.0)
    r.bar(100, 101, 99, 100)  # entry, neither touched
    r.bar(o, 111, 94, c)  # both touched
    exit_fill = r.fills()[-1]
    assert (exit_fill.price, exit_fill.tag) == (expected_price, expected_tag)
    (t,) = r.acct.trades
    assert t.ambiguous is True
    assert r.acct.qty == 0.0
    # the sibling was canceled with the position
    assert any(e.reason == "position closed" for e in r.cancels())


def test_take_profit_is_a_maker_fill_at_its_price_even_on_a_gap():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0, take_profit=110.0)
    r.bar(100, 101, 99, 100)
    r.bar(115, 116, 112, 114)  # gaps above the target
    tp = r.fills()[-1]
    assert (tp.price, tp.liquidity) == (110.0, "maker")
    assert tp.fee == pytest.approx(110 * MAKER)


def test_partial_exit_then_stop_gives_two_trade_rows_with_fee_shares():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=2.0, stop_loss=95.0)
    r.bar(100, 101, 99, 100)
    r.submit("sell", "limit", qty=1.0, price=110.0, reduce_only=True, tag="PARTIAL")
    r.bar(105, 111, 104, 108)
    assert r.acct.qty == pytest.approx(1.0)
    r.bar(100, 101, 94, 96)
    t1, t2 = r.acct.trades
    entry_fee = 2 * 100 * FEE
    assert (t1.qty, t1.exit_price, t1.exit_reason) == (1.0, 110.0, "PARTIAL")
    assert t1.fees == pytest.approx(entry_fee / 2 + 110 * MAKER)
    assert t1.pnl == pytest.approx(10 - t1.fees)
    assert (t2.qty, t2.exit_price, t2.exit_reason) == (1.0, 95.0, "STOP_LOSS")
    assert t2.pnl == pytest.approx(-5 - entry_fee / 2 - 95 * FEE)
    assert r.acct.cash == pytest.approx(10_000 + t1.pnl + t2.pnl)


def test_short_is_the_mirror_image():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("sell", qty=1.0, stop_loss=105.0, take_profit=90.0)
    r.bar(100, 101, 99, 100)
    r.bar(101, 106, 100, 104)
    stop = r.fills()[-1]
    assert (stop.side, stop.price, stop.tag) == ("buy", 105.0, "STOP_LOSS")
    (t,) = r.acct.trades
    assert t.side == "short"
    assert t.pnl == pytest.approx(-5 - 100 * FEE - 105 * FEE)


def test_moved_stop_takes_effect_from_the_next_bar():
    r = Rig()
    r.bar(100, 100, 100, 100)
    stop_id = r.submit("sell", "stop", qty=1.0, price=90.0, reduce_only=True)
    r.submit("buy", qty=1.0)
    r.bar(100, 101, 99, 100)
    r.bus.publish(ModifyOrder(ts_event_ns=0, ts_init_ns=0, account="a", order_id=stop_id,
                              price=99.5))
    r.bar(100, 102, 99.6, 101)  # stays above the moved stop
    assert r.acct.qty == 1.0
    r.bar(100, 101, 99, 100)
    assert r.fills()[-1].price == 99.5


def test_reduce_only_without_position_is_canceled_and_missing_cancel_is_reported():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("sell", qty=1.0, reduce_only=True)
    r.bar(100, 101, 99, 100)
    assert r.fills() == []
    assert "no position" in r.cancels()[-1].reason
    r.bus.publish(CancelOrder(ts_event_ns=0, ts_init_ns=0, account="a", order_id="nope"))
    assert "not working" in r.cancels()[-1].reason


def test_close_at_end_closes_at_last_close():
    r = Rig()
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0, stop_loss=50.0)
    r.bar(100, 101, 99, 100)
    r.bar(100, 121, 99, 120)
    last = BarClosed(ts_event_ns=1, ts_init_ns=1, symbol="BTC-USDT", timeframe="15m", seq=2,
                     open=100, high=121, low=99, close=120, volume=1)
    r.broker.close_at_end(last, "END_OF_DATA")
    (t,) = r.acct.trades
    assert (t.exit_price, t.exit_reason) == (120, "END_OF_DATA")
    assert r.broker.working_orders() == []
    assert math.isnan(r.acct.avg_price)


def test_published_trades_are_final_when_a_bracket_makes_the_bar_ambiguous():
    """A reversal at the bar's first extreme whose take-profit fills at the second: the first
    trade's ambiguity is known only after it closed. It must be published ambiguous (before, it
    was published clean and rewritten on the account afterwards: journal and trades.csv
    disagreed)."""
    from engine.events import TradeClosed

    r = Rig(policy=IntrabarPolicy.OHLC_PATH)
    r.bar(100, 100, 100, 100)
    r.submit("buy", qty=1.0)
    r.bar(100, 101, 99, 100)  # long 1 at 100
    # sell 2 at 105: closes the long, opens a short 1 with a take-profit at 93
    r.submit("sell", "limit", qty=2.0, price=105.0, take_profit=93.0)
    r.bar(100, 108, 92, 95)  # falling bar: open -> high (105 sells) -> low (93 buys back)
    published = [e for e in r.events if isinstance(e, TradeClosed)]
    assert [(t.side, t.entry_price, t.exit_price) for t in published] == [
        ("long", 100.0, 105.0), ("short", 105.0, 93.0)]
    assert published == r.acct.trades  # what the journal got is what trades.csv gets
    assert all(t.ambiguous for t in published)
    assert all(f.ambiguous for f in r.fills() if f.seq == 2)
    assert r.acct.qty == 0.0


def test_dry_walk_for_ambiguity_leaves_no_trace():
    """The look-ahead walk over a bar with brackets publishes nothing and leaves the account and
    the book as the real walk finds them."""
    r = Rig(policy=IntrabarPolicy.OHLC_PATH)
    r.bar(100, 100, 100, 100)
    r.submit("buy", "stop", qty=1.0, price=103.0, stop_loss=98.0)
    r.bar(100, 101, 99, 100)  # not reached
    n_events = len(r.events)
    r.bar(100, 104, 100, 102)  # rising bar: low 100, high 104 fills the entry; stop not reached
    new = r.events[n_events:]
    assert [type(e).__name__ for e in new] == ["OrderFilled", "BarClosed"]
    assert r.acct.qty == 1.0 and not new[0].ambiguous
    assert [w.order_id for w in r.broker.working_orders()] == ["o1-stop_loss"]
