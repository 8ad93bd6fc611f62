"""A restart (``engine.restore``) of a run whose entries carry the plan's stop and first target
attached: the exit runner gets the attached stop back as its working stop (moved price
included) and the attached target counted as a partial; a paper run's simulated broker gets the
children back as working orders; the restored run then trades on exactly like the one that was
never stopped. Real runner, simulated broker and account (tests/strategies' rig)."""

from __future__ import annotations

import math

from engine.events import ModifyOrder, SubmitOrder
from engine.restore import restore_account, restore_runner, working_commands
from tests.strategies.test_exit_plugins import HandProfile, Rig

HVNS = (101.0, 104.0, 107.0, 112.0)  # multi_tier: tier 1 at 104, tier 2 at 107 (entry 100)
BARS = [(100, 101, 99, 100), (100, 104.5, 100, 104), (104, 105, 103, 104.5),
        (104.5, 107.5, 103, 107), (107, 108, 106, 107.5), (107.5, 107.6, 99, 99.5)]


def _restarted(events: list, n_bars: int) -> Rig:
    """A fresh rig given the journal ``events`` of ``n_bars`` bars, as a restart does."""
    r = Rig("multi_tier", HandProfile(hvns=HVNS))
    for b in BARS[:n_bars]:  # the store's bars back (no bus: nothing published)
        r.store.append(r.store.count * 15 * 60 * 10**9, *b, 1.0)
    restore_account(r.acct, events)
    restore_runner(r.runner, events)
    for cmd in working_commands("s", events, r.acct.qty):
        (r.broker.on_submit_order if isinstance(cmd, SubmitOrder)
         else r.broker.on_modify_order)(cmd)
    return r


def _trades(r: Rig) -> list[tuple]:
    return [(t.exit_reason, t.entry_seq, t.exit_seq, t.qty, t.exit_price, t.pnl)
            for t in r.acct.trades]


def _fresh() -> Rig:
    r = Rig("multi_tier", HandProfile(hvns=HVNS))
    r.bar(*BARS[0])
    r.signal(entry=100, stop=91, atr=2.0)
    return r


def test_restart_after_the_attached_target_filled_and_the_stop_moved() -> None:
    r = _fresh()
    for b in BARS[1:3]:  # entry, tier 1 (attached) at 104 -> ATR stop 98 on that close
        r.bar(*b)
    assert [(m.order_id, m.price) for m in r.events if isinstance(m, ModifyOrder)] == [
        ("s-1-stop_loss", 98.0)]
    events = list(r.events)
    r2 = _restarted(events, 3)
    assert (r2.runner._stop_id, r2.runner._stop_price) == ("s-1-stop_loss", 98.0)
    assert r2.runner._partials_filled == 1 and r2.runner._n == r.runner._n
    work = {w.order_id: (w.price, w.tag, w.qty) for w in r2.broker.working_orders()}
    assert list(work.items()) == [(w.order_id, (w.price, w.tag, w.qty))
                                  for w in r.broker.working_orders()]
    assert list(work) == ["s-1-stop_loss", "s-2"]  # the stop (moved, its reason kept), tier 2
    for b in BARS[3:]:  # both go on: tier 2 at 107, then the break-even stop
        r.bar(*b)
        r2.bar(*b)
    assert _trades(r2) == _trades(r)
    assert [t[0] for t in _trades(r)] == ["TIER_1", "TIER_2", "BREAK_EVEN"]


def test_restart_with_the_entry_in_flight_adopts_the_attached_children_at_its_fill() -> None:
    r = _fresh()  # the entry sent on this close, not filled yet
    events = list(r.events)
    r2 = _restarted(events, 1)
    assert r2.runner._pending is not None and r2.runner._attached_sl
    assert r2.runner._attached_tp and r2.runner._pending_plan is not None
    for b in BARS[1:]:
        r.bar(*b)
        r2.bar(*b)
    assert r2.runner._stop_id == "" and r2.acct.qty == 0.0  # closed
    assert _trades(r2) == _trades(r) and len(_trades(r)) == 3
    sent = [e for e in r2.events if isinstance(e, SubmitOrder)]
    assert [(s.type, s.tag) for s in sent] == [("limit", "TIER_2")]  # no separate stop


def test_working_commands_give_the_attached_children_back_sized_from_the_fill() -> None:
    r = _fresh()
    r.bar(100, 101, 99, 100)  # the entry fills; its target (104) is not reached
    cmds = working_commands("s", list(r.events), r.acct.qty)
    by_id = {c.order_id: c for c in cmds}
    sl, tp = by_id["s-1-stop_loss"], by_id["s-1-take_profit"]
    assert (sl.type, sl.price, sl.reduce_only, sl.tag) == ("stop", 91.0, True, "STOP_LOSS")
    assert math.isinf(sl.qty)
    assert (tp.type, tp.price, tp.reduce_only, tp.tag) == ("limit", 104.0, True, "TIER_1")
    assert tp.qty == 0.15 * r.qty0
    assert [c.order_id for c in cmds] == ["s-1-stop_loss", "s-1-take_profit", "s-2"]
    assert working_commands("s", list(r.events), 0.0) == []  # flat: reduce-only dropped
