"""Risk limits (engine/risk.py, config risk:) in front of the simulated broker: each limit refuses
the entry it should, publishes the refusal as OrderCanceled "risk: ..." (and logs it), and never
refuses an exit; and through build_engine a backtest with the kill switch trades nothing while the
refusals are on the bus."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from adapters.sim_broker import SimBroker
from engine.config import RiskConfig
from engine.events import (
    BarClosed,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    SubmitOrder,
)
from engine.fills import Costs
from engine.portfolio import Account
from engine.risk import DAY_NS, RiskBook, RiskGate

T0 = 1_700_000_000 // 86_400 * DAY_NS  # a UTC midnight
TF = 15 * 60 * 1_000_000_000


class World:
    def __init__(self, n_accounts: int = 1, **limits: object) -> None:
        self.events: list[Event] = []
        self.now = T0
        self.book = RiskBook(RiskConfig(**limits), lambda: self.now)  # type: ignore[arg-type]
        self.gates: list[RiskGate] = []
        for i in range(n_accounts):
            acct = Account(f"s{i}", "BTC-USDT", 10_000.0, self.publish)
            self.gates.append(RiskGate(SimBroker(acct, self.publish, Costs.from_bps(0, 0, 0)),
                                       self.book, self.publish))
        self.seq = -1
        self.n = 0

    def publish(self, ev: Event) -> None:
        self.events.append(ev)
        if isinstance(ev, OrderFilled):
            next(g for g in self.gates if g.name == ev.account).account.on_order_filled(ev)

    def bar(self, price: float = 100.0, day: int = 0) -> None:
        self.seq += 1
        self.now = T0 + day * DAY_NS + (self.seq + 1) * TF
        b = BarClosed(ts_event_ns=self.now, ts_init_ns=self.now, symbol="BTC-USDT",
                      timeframe="15m", seq=self.seq, open=price, high=price, low=price,
                      close=price, volume=1.0)
        for g in self.gates:
            g.on_bar_closed(b)

    def submit(self, i: int = 0, side: str = "buy", qty: float = 1.0, reduce_only: bool = False,
               **kw: object) -> str:
        self.n += 1
        oid = f"o{self.n}"
        self.gates[i].on_submit_order(SubmitOrder(
            ts_event_ns=self.now, ts_init_ns=self.now, account=f"s{i}", order_id=oid,
            side=side, type="market", seq=self.seq, qty=qty,  # type: ignore[arg-type]
            reduce_only=reduce_only, **kw))  # type: ignore[arg-type]
        return oid

    def refusals(self) -> list[OrderCanceled]:
        return [e for e in self.events if isinstance(e, OrderCanceled)
                and e.reason.startswith("risk: ")]


def test_no_limits_refuses_nothing() -> None:
    w = World()
    w.bar()
    w.submit(qty=1000.0)
    w.bar()
    assert not w.refusals() and w.gates[0].account.qty == 1000.0


def test_kill_switch_refuses_entries_not_exits(caplog: pytest.LogCaptureFixture) -> None:
    w = World()
    w.bar()
    w.submit(qty=2.0)
    w.bar()
    w.book.config = RiskConfig(kill_switch=True)
    with caplog.at_level(logging.WARNING, logger="engine.risk"):
        oid = w.submit(qty=1.0)
    (r,) = w.refusals()
    assert r.order_id == oid and "kill switch" in r.reason and r.account == "s0"
    assert any("refused: risk: kill switch" in m for m in caplog.messages)
    w.submit(side="sell", qty=math.inf, reduce_only=True)  # the exit still goes out
    w.bar()
    assert w.gates[0].account.qty == 0.0 and len(w.refusals()) == 1


def test_max_position_notional() -> None:
    w = World(max_position_notional=250.0)
    w.bar(price=100.0)
    w.submit(qty=3.0)  # 300 > 250
    w.submit(qty=2.0)  # 200: fine
    assert [r.order_id for r in w.refusals()] == ["o1"] and "250" in w.refusals()[0].reason
    w.bar(price=100.0)
    w.submit(qty=1.0)  # 300 after it
    assert len(w.refusals()) == 2
    # sized by equity: half of 10,000 at 100 = 5,000 of notional
    w2 = World(max_position_notional=4_000.0)
    w2.bar()
    w2.submit(qty=0.0, equity_frac=0.5)
    assert len(w2.refusals()) == 1


def test_max_open_positions_counts_every_strategy() -> None:
    w = World(n_accounts=3, max_open_positions=2)
    w.bar()
    w.submit(0)
    w.submit(1)
    w.bar()
    w.submit(2)
    assert [r.account for r in w.refusals()] == ["s2"]
    w.submit(0, qty=1.0)  # adding to an open position is not a new one
    assert len(w.refusals()) == 1
    w.submit(1, side="sell", qty=math.inf, reduce_only=True)
    w.bar()
    w.submit(2)
    assert len(w.refusals()) == 1


def test_max_orders_per_minute_refuses_entries_counts_exits_and_stop_moves() -> None:
    w = World(max_orders_per_minute=3)
    w.bar()
    w.submit(qty=1.0)
    w.submit(side="sell", qty=0.5, reduce_only=True)
    w.gates[0].on_modify_order(ModifyOrder(ts_event_ns=w.now, ts_init_ns=w.now, account="s0",
                                           order_id="nope", price=1.0))
    w.submit(qty=1.0)  # the 4th within the minute
    assert len(w.refusals()) == 1 and "3 orders in the last minute" in w.refusals()[0].reason
    w.submit(side="sell", qty=0.1, reduce_only=True)  # an exit: never refused
    assert len(w.refusals()) == 1
    w.now += 61 * 1_000_000_000
    w.submit(qty=1.0)
    assert len(w.refusals()) == 1


def test_max_daily_loss_stops_entries_until_the_next_utc_day() -> None:
    w = World(max_daily_loss=500.0)
    w.bar(price=100.0)  # the day's first close: equity 10,000
    w.submit(qty=50.0)
    w.bar(price=100.0)  # filled at 100
    w.bar(price=91.0)  # 50 x -9 = -450: still fine
    w.submit(side="sell", qty=math.inf, reduce_only=True)
    w.bar(price=89.0)  # closed at 89: -550 realized
    assert w.gates[0].account.qty == 0.0
    w.submit(qty=1.0)
    assert len(w.refusals()) == 1 and "daily loss 550.00" in w.refusals()[0].reason
    w.bar(price=120.0)
    w.submit(qty=1.0)  # same day: still halted
    assert len(w.refusals()) == 2
    w.bar(price=120.0, day=1)  # a new UTC day: the limit resets
    w.submit(qty=1.0)
    assert len(w.refusals()) == 2


def test_backtest_with_the_kill_switch_trades_nothing_and_publishes_the_refusals(
        tmp_path: Path) -> None:
    from engine.bootstrap import build_engine
    from engine.bus import PRIORITY_SINK
    from engine.config import load_config

    root = Path(__file__).resolve().parents[2]
    synth = root / "data" / "SYNTH-BTCUSDT_15m_data.csv"
    base = {"data.file": str(synth),
            "output.dir": str(tmp_path), "output.report": False, "execution.workers": 1,
            "strategies": [{"name": "trailing_stop", "kind": "trailing_stop"}]}
    cfg = load_config(root / "configs" / "default.yaml", {**base, "risk": {"kill_switch": True}})
    eng = build_engine(cfg)
    refused: list[OrderCanceled] = []
    eng.bus.subscribe(OrderCanceled, lambda e: refused.append(e) if e.reason.startswith("risk:")
                      else None, priority=PRIORITY_SINK, name="test")
    eng.run()
    assert refused and not eng.accounts["trailing_stop"].trades
    assert load_config(root / "configs" / "default.yaml", base).config_hash() != cfg.config_hash()


def test_a_refused_entry_frees_the_exit_runner_for_the_next_signal(tmp_path: Path) -> None:
    """Before the fix the runner waited for its refused entry to fill: one try, then never again
    for the rest of the run (a risk limit or a venue rejection stopped the strategy for good)."""
    from engine.bootstrap import build_engine
    from engine.bus import PRIORITY_SINK
    from engine.config import load_config
    from engine.events import SignalRaised

    root = Path(__file__).resolve().parents[2]
    synth = root / "data" / "SYNTH-BTCUSDT_15m_data.csv"
    cfg = load_config(root / "configs" / "default.yaml", {
        "data.file": str(synth), "output.dir": str(tmp_path), "output.report": False,
        "execution.workers": 1, "risk": {"kill_switch": True},
        "strategies": [{"name": "trailing_stop", "kind": "trailing_stop"}]})
    eng = build_engine(cfg)
    refused: list[OrderCanceled] = []
    signals: list[SignalRaised] = []
    eng.bus.subscribe(OrderCanceled, lambda e: refused.append(e) if e.reason.startswith("risk:")
                      else None, priority=PRIORITY_SINK, name="test-refused")
    eng.bus.subscribe(SignalRaised, signals.append, priority=PRIORITY_SINK, name="test-signals")
    eng.run()
    sides = eng.strategies["trailing_stop"].sides
    tried = [s for s in signals if s.side in sides]
    assert len(tried) > 1
    assert len(refused) == len(tried)  # every signal got its own try, each refused


def test_a_restart_keeps_the_orders_of_the_last_minute() -> None:
    """engine.restore gives a new RiskBook the journaled orders of the last 60 s (not the ones
    the gate refused): a crash loop cannot send max_orders_per_minute more at every start."""
    from engine.restore import restore_orders_last_minute

    w = World(max_orders_per_minute=3)
    w.bar()
    journal: list[Event] = []
    for i in range(4):  # the 4th is refused
        oid = f"o{i + 1}"
        cmd = SubmitOrder(ts_event_ns=w.now, ts_init_ns=w.now - 70_000_000_000 * (i == 0),
                          account="s0", order_id=oid, side="buy", type="market", seq=w.seq,
                          qty=1.0)
        journal.append(cmd)
        w.gates[0].on_submit_order(cmd)
    journal += w.events
    assert [r.order_id for r in w.refusals()] == ["o4"]
    book = RiskBook(RiskConfig(max_orders_per_minute=3), lambda: w.now + 1)
    restore_orders_last_minute(book, journal)
    # o1 was sent 70 s ago, o4 was refused: o2 and o3 count
    assert book.orders_last_minute() == 2
    book.now_ns = lambda: w.now + 60_000_000_000
    assert book.orders_last_minute() == 0
