"""Exit plugins on hand-built bars, through the real runner, broker and account.

The volume profile is given by hand (a fixed POC/VAH/VAL/HVN/LVN/peaks per test), so every
expected fill is computed from the numbers written here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from adapters.sim_broker import SimBroker
from engine.bars import BarStore
from engine.bus import PRIORITY_BROKER, PRIORITY_PORTFOLIO, PRIORITY_STRATEGY, Bus
from engine.errors import PluginLoadError
from engine.events import (
    BarClosed,
    CancelOrder,
    ModifyOrder,
    OrderFilled,
    SignalRaised,
    SubmitOrder,
)
from engine.exits import API_VERSION, ExitContext, ExitRunner, check_exit_contract
from engine.features import FeatureStore
from engine.fills import Costs
from engine.portfolio import Account
from engine.registry import EXIT_STRATEGIES, Registry

TF = 15 * 60 * 10**9


class HandProfile:
    """Stands in for the volume-profile handler: the same profile for every window."""

    def __init__(self, **levels):
        base = dict(poc=math.nan, poc_volume=1.0, vah=math.nan, val=math.nan, hvns=(),
                    peaks=(), lvn_list=(), two=())
        base.update(levels)
        self.p = SimpleNamespace(**base)
        self.p.lvns = lambda: tuple(self.p.lvn_list)
        self.p.two_peak_means = lambda: tuple(self.p.two)
        self.windows = []
        self.by_window = {}

    def window_profile(self, start, stop):
        self.windows.append((start, stop))
        return self.by_window.get((start, stop), self.p)


class Rig:
    def __init__(self, kind, profile, **params):
        cls = Registry.installed(EXIT_STRATEGIES).load(kind)
        self.bus = Bus()
        self.store = BarStore("BTC-USDT", "15m", TF)
        feats = FeatureStore(self.store)
        feats.add("atr")
        self.events = []
        self.bus.subscribe_all(self.events.append)
        self.acct = Account("s", "BTC-USDT", 10_000.0, self.bus.publish)
        self.broker = SimBroker(self.acct, self.bus.publish, Costs(0.0, 0.0, 0.0))
        ctx = ExitContext(self.store, feats, "atr", {"vp": profile})
        self.runner = ExitRunner("s", cls(cls.Params(**params)), self.acct, ctx,
                                 self.bus.publish, 0.5)
        b = self.bus
        b.subscribe(BarClosed, self.broker.on_bar_closed, priority=PRIORITY_BROKER)
        for t, h in ((SubmitOrder, self.broker.on_submit_order),
                     (CancelOrder, self.broker.on_cancel_order),
                     (ModifyOrder, self.broker.on_modify_order)):
            b.subscribe(t, h, priority=PRIORITY_BROKER)
        b.subscribe(OrderFilled, self.acct.on_order_filled, priority=PRIORITY_PORTFOLIO)
        b.subscribe(OrderFilled, self.runner.on_order_filled, priority=PRIORITY_PORTFOLIO + 1)
        b.subscribe(SignalRaised, self.runner.on_signal_raised, priority=PRIORITY_STRATEGY)
        b.subscribe(BarClosed, self.runner.on_bar_closed, priority=PRIORITY_STRATEGY)

    def bar(self, o, h, lo, c):
        seq = self.store.append(self.store.count * TF, o, h, lo, c, 1.0)
        ev = BarClosed(ts_event_ns=(seq + 1) * TF, ts_init_ns=0, symbol="BTC-USDT",
                       timeframe="15m", seq=seq, open=o, high=h, low=lo, close=c, volume=1.0)
        self.bus.publish(ev)
        return ev

    def signal(self, side="long", entry=100.0, stop=90.0, atr=2.0):
        seq = self.store.count - 1
        self.bus.publish(SignalRaised(ts_event_ns=0, ts_init_ns=0, symbol="BTC-USDT",
                                      timeframe="15m", seq=seq, alarm_id=f"a{seq}", rule="t",
                                      side=side, entry_price=entry, stop_price=stop, atr=atr))

    def trades(self):
        return [(t.exit_reason, round(t.qty / self.qty0, 6), t.exit_price)
                for t in self.acct.trades]

    @property
    def qty0(self):
        return next(e.qty for e in self.events if isinstance(e, OrderFilled) and e.tag == "ENTRY")

    def moves(self):
        return [(e.price, e.tag) for e in self.events if isinstance(e, ModifyOrder)]

    def targets(self):
        """The resting sell/buy limits working on the broker (the first one is attached to the
        entry: ``<entry>-take_profit``; the others placed at its fill)."""
        side = "sell" if self.acct.qty > 0 else "buy"
        return [w for w in self.broker.working_orders() if w.side == side
                and math.isfinite(w.price) and not w.order_id.endswith("-stop_loss")
                and "STOP" not in w.tag]


def test_poc_target_half_at_poc_then_break_even():
    r = Rig("poc_target", HandProfile(poc=110.0, vah=115.0))
    r.bar(100, 100, 100, 100)
    r.signal(entry=100, stop=90)
    r.bar(100, 101, 99, 100)  # entry at the open, 100
    r.bar(100, 111, 99, 109)  # high 111 reaches the POC partial at 110
    assert r.moves() == [(100.0, "BREAK_EVEN")]  # decided on this close
    r.bar(109, 110, 99.5, 100)  # the moved stop works from this bar: low 99.5 < 100
    assert r.trades() == [("PARTIAL_TARGET", 0.5, 110.0), ("BREAK_EVEN", 0.5, 100.0)]


def test_partial_target_falls_back_to_vah_then_percent():
    r = Rig("poc_target", HandProfile(poc=100.5, vah=107.0))  # POC not 1 % beyond: VAH
    r.bar(100, 100, 100, 100)
    r.signal()
    r.bar(100, 101, 99, 100)
    orders = r.targets()
    assert orders[-1].price == 107.0 and orders[-1].qty == pytest.approx(0.5 * r.qty0)
    r2 = Rig("vah_exit", HandProfile(poc=100.5, vah=100.8))  # neither: +4 %
    r2.bar(100, 100, 100, 100)
    r2.signal()
    r2.bar(100, 101, 99, 100)
    lim = r2.targets()
    assert lim[-1].price == pytest.approx(104.0)


def test_trail_really_moves_to_the_hvn_and_exits_there():
    prof = HandProfile(poc=104.0, hvns=(95.0, 103.0, 108.0))
    r = Rig("poc_target", prof)
    r.bar(100, 100, 100, 100)
    r.signal()
    r.bar(100, 101, 99, 100)  # entry 100
    r.bar(100, 105, 101, 104.5)  # partial at 104 (seq 2): stop -> BE on this close
    assert r.moves()[-1] == (100.0, "BREAK_EVEN")
    for _ in range(9):
        r.bar(104.5, 106, 104, 105)  # seq 3..11
    r.bar(105, 112, 104, 111)  # seq 12 = partial bar + 10: a trailing tick
    # highest HVN below 111 * 0.99 = 109.89 is 108, above the break-even stop
    assert r.moves()[-1] == (108.0, "TRAIL_STOP")
    r.bar(111, 111, 107, 107.5)
    assert r.trades()[-1] == ("TRAIL_STOP", 0.5, 108.0)


def test_short_is_mirrored():
    r = Rig("poc_target", HandProfile(poc=90.0, val=85.0, hvns=(92.0, 97.0)))
    r.bar(100, 100, 100, 100)
    r.signal(side="short", entry=100, stop=110)
    r.bar(100, 101, 99, 100)
    r.bar(100, 101, 89, 91)  # low 89 reaches the POC partial at 90 (buy limit)
    assert r.moves() == [(100.0, "BREAK_EVEN")]
    r.bar(91, 100.5, 90, 95)  # stop (now 100) hit by the high
    assert r.trades() == [("PARTIAL_TARGET", 0.5, 90.0), ("BREAK_EVEN", 0.5, 100.0)]
    assert all(t.side == "short" for t in r.acct.trades)


def test_hold_limit_closes_at_the_next_open():
    r = Rig("trailing_stop", HandProfile(), max_hold_bars=3)
    r.bar(100, 100, 100, 100)
    r.signal()
    r.bar(100, 101, 99, 100)  # entry, bars_held 1
    r.bar(100, 101, 99, 100)  # 2
    r.bar(100, 101, 99, 100.5)  # 3: hold limit reached on this close
    r.bar(100.7, 101, 99, 100)
    assert r.trades() == [("HOLD_LIMIT", 1.0, 100.7)]


def test_multi_tier_tiers_atr_stop_then_break_even():
    # entry 100, ATR 2: tiers are the HVNs beyond 103 -> 104 and 107
    r = Rig("multi_tier", HandProfile(hvns=(101.0, 104.0, 107.0, 112.0)))
    r.bar(100, 100, 100, 100)
    r.signal(entry=100, stop=91, atr=2.0)
    r.bar(100, 101, 99, 100)
    r.bar(100, 104.5, 100, 104)  # tier 1 at 104
    assert r.moves() == [(98.0, "ATR_STOP")]  # entry - 1 ATR
    r.bar(104, 107.5, 103, 107)  # tier 2 at 107
    assert r.moves()[-1] == (100.0, "BREAK_EVEN")
    assert r.trades() == [("TIER_1", 0.15, 104.0), ("TIER_2", 0.15, 107.0)]
    assert r.acct.qty == pytest.approx(0.70 * r.qty0)  # the runner


def test_lvn_acceleration_targets_the_lvn_not_the_peak():
    r = Rig("lvn_acceleration", HandProfile(lvn_list=(103.0,), peaks=(106.0,)))
    r.bar(100, 100, 100, 100)
    r.signal(entry=100, stop=91, atr=2.0)
    r.bar(100, 101, 99, 100)
    lim = r.targets()
    assert (lim[-1].price, lim[-1].tag) == (103.0, "LVN_TARGET")
    assert lim[-1].qty == pytest.approx(0.2 * r.qty0)
    r.bar(100, 103.5, 100, 103)
    assert r.moves() == [(98.0, "ATR_STOP")]


def test_trailing_stop_needs_to_lock_profit():
    r = Rig("trailing_stop", HandProfile(hvns=(100.5, 101.0)))
    r.bar(100, 100, 100, 100)
    r.signal()
    r.bar(100, 104, 99, 103)  # entry bar = first tick: HVN 101 < entry * 1.015: not adopted
    assert r.moves() == []
    prof2 = HandProfile(hvns=(100.5, 102.0))
    r.runner.ctx.handlers["vp"].p = prof2.p
    for _ in range(9):
        r.bar(103, 104, 102.5, 103)
    r.bar(103, 105, 103, 104.5)  # tick: 102 > 101.5 and > stop
    assert r.moves() == [(102.0, "TRAILING_STOP_HIT")]


def test_volume_divergence_break_even_next_bar_and_divergence_exit():
    prof = HandProfile()
    r = Rig("volume_divergence", prof, trail_every_bars=1000)
    r.bar(100, 100, 100, 100)
    r.signal(entry=100, stop=90)
    r.bar(100, 101, 99, 100)  # entry seq 1
    r.bar(100, 103, 99.5, 102.5)  # 2.5 % profit on the close: BE decided now...
    assert r.moves() == [(100.0, "BREAK_EVEN")]
    assert r.acct.qty > 0  # ...not tested against this bar's low 99.5
    for _ in range(38):
        r.bar(102, 103, 101, 102)
    # seq 40..41: bars_held > 40 from here; make the last 20 bars a new high on fading volume
    last = r.store.count - 1
    i = last + 1
    prof.by_window[(i - 19, i + 1)] = SimpleNamespace(poc_volume=50.0)
    prof.by_window[(i - 39, i - 19)] = SimpleNamespace(poc_volume=100.0)
    r.bar(102, 104, 101.5, 103.5)  # new high 104 > 103, profit 3.5 %, volume 50 < 70
    r.bar(103.4, 104, 103, 103.5)
    assert r.trades() == [("VOLUME_DIVERGENCE", 1.0, 103.4)]


def test_all_six_load_from_entry_points_with_the_api_version():
    reg = Registry.installed(EXIT_STRATEGIES)
    names = {"poc_target", "vah_exit", "lvn_acceleration", "multi_tier", "trailing_stop",
             "volume_divergence"}
    assert names <= set(reg.names())
    for n in names:
        cls = reg.load(n)
        check_exit_contract(n, cls)
        assert cls.API_VERSION == API_VERSION


def test_a_plugin_with_another_api_version_is_refused_with_the_reason():
    class Old:
        API_VERSION = 0
        Params = dict

    with pytest.raises(PluginLoadError, match=r"written for plugin API 0\.0, and this tradebot's "
                                              r"is 1\.\d+ .*upgrade the plugin.*Params"):
        check_exit_contract("old", Old)


def test_the_entry_carries_the_plans_stop_and_first_target_attached():
    """Planned at the signal: one entry order carrying the stop and tier 1 (isOpenTpslOrder
    live); at its fill the children work, tier 2 is placed, and MoveStop moves the attached
    stop (no separate stop order is ever sent)."""
    r = Rig("multi_tier", HandProfile(hvns=(101.0, 104.0, 107.0, 112.0)))
    r.bar(100, 100, 100, 100)
    r.signal(entry=100, stop=91, atr=2.0)
    subs = [e for e in r.events if isinstance(e, SubmitOrder)]
    assert len(subs) == 1  # before the fill: the entry alone
    e = subs[0]
    assert (e.order_id, e.tag, e.stop_loss, e.take_profit, e.take_profit_frac,
            e.take_profit_tag) == ("s-1", "ENTRY", 91.0, 104.0, 0.15, "TIER_1")
    r.bar(100, 101, 99, 100)  # the entry fills at the open
    later = [(s.type, s.price, s.tag, s.reduce_only) for s in r.events
             if isinstance(s, SubmitOrder)][1:]
    assert later == [("limit", 107.0, "TIER_2", True)]  # tier 2 only: no stop order sent
    work = {w.order_id: w for w in r.broker.working_orders()}
    # the children first (placed the moment the entry filled), then what the fill's handler sent
    assert list(work) == ["s-1-stop_loss", "s-1-take_profit", "s-2"]
    assert (work["s-1-stop_loss"].price, work["s-1-stop_loss"].tag) == (91.0, "STOP_LOSS")
    assert work["s-1-take_profit"].qty == pytest.approx(0.15 * r.qty0)
    r.bar(100, 104.5, 100, 104)  # the attached tier 1 fills; the ATR stop is decided
    assert [(m.order_id, m.price, m.tag) for m in r.events if isinstance(m, ModifyOrder)] == [
        ("s-1-stop_loss", 98.0, "ATR_STOP")]
    r.bar(104, 104, 97, 98)  # the moved attached stop is hit: the rest closes at 98
    assert r.trades() == [("TIER_1", 0.15, 104.0), ("ATR_STOP", 0.85, 98.0)]
    assert r.acct.qty == 0.0 and r.broker.working_orders() == []  # tier 2 died with it


def test_the_attached_stop_works_from_the_entry_fill_and_no_target_without_partials():
    r = Rig("trailing_stop", HandProfile())
    r.bar(100, 100, 100, 100)
    r.signal(entry=100, stop=95)
    (e,) = [e for e in r.events if isinstance(e, SubmitOrder)]
    assert e.stop_loss == 95.0 and math.isnan(e.take_profit)  # no partials: nothing attached
    r.bar(100, 101, 94, 96)  # filled at the open, stopped in the same bar (as before)
    assert r.trades() == [("STOP_LOSS", 1.0, 95.0)]
    assert [e.order_id for e in r.events if isinstance(e, OrderFilled)] == ["s-1",
                                                                            "s-1-stop_loss"]


def test_plan_runs_at_the_signal_and_reads_nothing_later():
    prof = HandProfile(poc=110.0)
    r = Rig("poc_target", prof)
    r.bar(100, 100, 100, 100)
    r.signal()
    assert prof.windows and max(stop for _, stop in prof.windows) == 1  # bars [.., seq 0]
    n = len(prof.windows)
    r.bar(100, 101, 99, 100)  # the fill asks nothing more of the profile
    assert len(prof.windows) == n
