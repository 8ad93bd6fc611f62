"""Restart a paper or live run from its journal (``engine.journal``), before it trades again.

``tradebot run`` of a paper/live config whose run id (``<name>-<config hash>``) already has a
journal (the committed result's, or the staging folder a killed run left: ``engine.journal.
journal_candidates``) continues that run instead of starting a new one:

1. the journal is copied forward into the new run's folder (the old file is left as it was);
2. the bar store gets every journaled bar back, with the same seqs (so the old fills' bars,
   trades.csv and equity.csv stay right), and the feed resumes after the last journaled bar
   (bars that closed while the engine was down are delivered as a venue outage's back-fill);
3. each account books its journaled fills again (cash, position, trades);
4. each exit runner gets its state back: the open trade's setup (from its ``SignalRaised``) and
   plan, the working stop's id and price (its ``SubmitOrder`` and the ``ModifyOrder`` s after),
   the partials taken, an entry still in flight, and the order counter, so new order ids (and
   the clientIds derived from them) never collide with the old run's;
5. each broker gets its working orders back: a venue broker by ``restore(events)`` (then it
   reconciles with the venue: ``adapters.apex.reconcile``); the simulated broker of a paper run
   by re-submitting the orders that were still working.

Events re-derived here (a runner's re-planned stop, an account's ``TradeClosed``) are not
published: the journal already holds them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from engine.events import (
    BarClosed,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    Reconciled,
    SignalRaised,
    SubmitOrder,
)

logger = logging.getLogger(__name__)

REPORT = "reconciliation.json"  # the last reconciliation's report, in the run folder


def order_number(order_id: str) -> int:
    """The counter part of an engine order id ``<strategy>-<n>`` (0 when it has none)."""
    tail = order_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def bars_of(events: list[Event]) -> list[BarClosed]:
    """The journaled bars, one per seq, in seq order (the history first, then the live bars).

    Raises:
        ValueError: the seqs have a hole (the journal is not one run's)."""
    seen: dict[int, BarClosed] = {}
    for e in events:
        if type(e) is BarClosed and e.seq not in seen:
            seen[e.seq] = e
    bars = [seen[k] for k in sorted(seen)]
    for i, b in enumerate(bars):
        if b.seq != i:
            raise ValueError(f"the journal's bars jump from seq {i - 1} to {b.seq}")
    return bars


def restore_account(acct: Any, events: list[Event]) -> None:
    """Book ``acct``'s journaled fills again (nothing published)."""
    for e in events:
        if type(e) is OrderFilled and e.account == acct.name:
            acct.book(e)


def restore_runner(runner: Any, events: list[Event]) -> None:
    """Give an ``engine.exits.ExitRunner`` its state back from the journal (its account must
    already hold the restored position: ``restore_account``)."""
    from engine.exits import TradeSetup

    name = runner.name
    # the journal is written in the bus's depth-first order: an event comes after what its
    # handlers published (a SignalRaised after its entry's SubmitOrder, a risk refusal's
    # OrderCanceled before it), so signals and cancels are gathered first
    signals = {(e.seq, e.side): e for e in events if type(e) is SignalRaised}
    canceled = {e.order_id for e in events
                if type(e) is OrderCanceled and e.account == name}
    subs: dict[str, SubmitOrder] = {}
    stop_px: dict[str, float] = {}
    n = 0
    qty = 0.0
    pending: tuple[str, TradeSetup] | None = None
    cur: dict[str, Any] | None = None
    for e in events:
        t = type(e)
        if getattr(e, "account", None) != name:
            continue
        if t is SubmitOrder:
            n = max(n, order_number(e.order_id))
            subs[e.order_id] = e
            stop_px.setdefault(e.order_id, e.price)
            if not e.reduce_only and math.isfinite(e.stop_loss):  # the attached stop
                stop_px.setdefault(f"{e.order_id}-stop_loss", e.stop_loss)
            if e.tag == "ENTRY" and not e.reduce_only and e.order_id not in canceled:
                sig = signals.get((e.seq, "long" if e.side == "buy" else "short"))
                if sig is not None:
                    pending = (e.order_id, TradeSetup.from_signal(sig))
        elif t is ModifyOrder:
            stop_px[e.order_id] = e.price
        elif t is OrderFilled:
            qty += e.qty if e.side == "buy" else -e.qty
            if abs(qty) < 1e-12:
                qty = 0.0
            if e.tag == "ENTRY" and pending is not None and e.order_id == pending[0]:
                cur = {"setup": pending[1], "entry": e.order_id, "qty": e.qty, "seq": e.seq,
                       "exits": []}
                pending = None
            elif e.tag != "ENTRY" and cur is not None and qty != 0.0:
                cur["exits"].append((e.order_id, e.seq))
            if qty == 0.0 and e.tag != "ENTRY":
                cur = None
    runner._n = max(runner._n, n)
    if pending is not None and qty == 0.0:
        runner._pending, runner._entry_id = pending[1], pending[0]
        sub = subs[pending[0]]
        runner._pending_plan = runner.plugin.plan(pending[1], runner.ctx)
        runner._attached_sl = math.isfinite(sub.stop_loss)
        runner._attached_tp = math.isfinite(sub.take_profit)
    if cur is None or runner.account.qty == 0.0:
        if runner.account.qty != 0.0:
            logger.warning("%s: the journal holds a position of %g without the entry signal "
                           "that opened it; it is not managed by the exit plugin (its stop, if "
                           "any, stays on the broker)", name, runner.account.qty)
        return
    k = order_number(cur["entry"])
    entry = subs.get(cur["entry"])
    if entry is not None and math.isfinite(entry.stop_loss):  # attached to the entry
        stop_id = f"{cur['entry']}-stop_loss"
    else:  # placed at the entry's fill (a plan without a finite stop; older journals)
        stops = sorted((order_number(o), o) for o, s in subs.items()
                       if s.tag == "STOP_LOSS" and s.type == "stop" and s.reduce_only
                       and order_number(o) > k)
        stop_id = stops[0][1] if stops else ""
    setup: TradeSetup = cur["setup"]
    runner._setup = setup
    runner._plan = runner.plugin.plan(setup, runner.ctx)
    runner._stop_id = stop_id
    runner._stop_price = stop_px.get(stop_id, math.nan) if stop_id else math.nan
    runner._initial_qty = cur["qty"]
    runner._entry_seq = cur["seq"]
    partials = [s for o, s in cur["exits"] if o != stop_id]
    runner._partials_filled = len(partials)
    runner._last_partial_seq = partials[-1] if partials else -1


def working_commands(account: str, events: list[Event], position: float) -> list[Event]:
    """The orders of ``account`` still working at the journal's end, as the commands that
    recreate them (``SubmitOrder``, then a ``ModifyOrder`` for a moved price): for a simulated
    broker, which keeps no venue. Reduce-only orders are dropped when ``position`` is flat.
    The attached stop/target of a filled entry (``SubmitOrder.stop_loss`` / ``take_profit``,
    ids ``<entry>-stop_loss`` / ``<entry>-take_profit``) come back as reduce-only orders of
    their own, as the broker made them at the entry's fill."""
    subs: dict[str, SubmitOrder] = {}
    price: dict[str, float] = {}
    tags: dict[str, str] = {}
    gone = {e.order_id for e in events  # (before or after its SubmitOrder: restore_runner)
            if type(e) is OrderCanceled and e.account == account}
    for e in events:
        if getattr(e, "account", None) != account:
            continue
        t = type(e)
        if t is SubmitOrder:
            if e.order_id not in gone:
                subs[e.order_id] = e
        elif t is ModifyOrder and e.order_id in subs:
            price[e.order_id] = e.price
            if e.tag:  # the exit reason of a moved stop (BREAK_EVEN, TRAIL_STOP...)
                tags[e.order_id] = e.tag
        elif t is CancelOrder:
            subs.pop(e.order_id, None)
        elif t is OrderFilled:
            s = subs.get(e.order_id)
            if s is None:
                continue
            done = s.type != "limit" or not math.isfinite(s.qty) or e.qty >= s.qty - 1e-12
            kids = [] if s.reduce_only else [c for c in _children(s, e.qty)
                                             if c.order_id not in gone and c.order_id not in subs]
            if done or kids:  # the children take the entry's place in the book
                new: dict[str, SubmitOrder] = {}
                for oid, x in subs.items():
                    if oid != e.order_id or not done:
                        new[oid] = x
                    if oid == e.order_id:
                        new.update((c.order_id, c) for c in kids)
                subs = new
    out: list[Event] = []
    for oid, s in subs.items():
        if s.reduce_only and position == 0.0:
            continue
        out.append(s)
        if oid in price:
            out.append(ModifyOrder(ts_event_ns=s.ts_event_ns, ts_init_ns=s.ts_init_ns,
                                   account=account, order_id=oid, price=price[oid],
                                   tag=tags.get(oid, "")))
    return out


def _children(s: SubmitOrder, filled: float) -> list[SubmitOrder]:
    """The attached stop / target of entry ``s`` as the reduce-only orders the simulated broker
    made of them when ``filled`` of it filled (``adapters.sim_broker``)."""
    exit_side = "sell" if s.side == "buy" else "buy"
    out = []
    if math.isfinite(s.stop_loss):
        out.append(SubmitOrder(ts_event_ns=s.ts_event_ns, ts_init_ns=s.ts_init_ns,
                               account=s.account, order_id=f"{s.order_id}-stop_loss",
                               side=exit_side, type="stop", seq=s.seq, qty=math.inf,
                               price=s.stop_loss, reduce_only=True, tag="STOP_LOSS"))
    if math.isfinite(s.take_profit):
        qty = s.take_profit_frac * filled if math.isfinite(s.take_profit_frac) else math.inf
        out.append(SubmitOrder(ts_event_ns=s.ts_event_ns, ts_init_ns=s.ts_init_ns,
                               account=s.account, order_id=f"{s.order_id}-take_profit",
                               side=exit_side, type="limit", seq=s.seq, qty=qty,
                               price=s.take_profit, reduce_only=True,
                               tag=s.take_profit_tag or "TAKE_PROFIT"))
    return out


def restore_risk_day(book: Any, events: list[Event]) -> None:
    """Give an ``engine.risk.RiskBook`` the UTC day of the journal's last bar back: the day's
    starting equity as the book took it (at the day's first live bar close, before its fills:
    each account's state after the bar before, from its ``EquityMarked``) and whether the daily
    loss limit already stopped entries that day, so a restart neither resets the day's loss nor
    lifts its halt."""
    from engine.events import EquityMarked

    restore_orders_last_minute(book, events)
    day_ns = 86_400 * 1_000_000_000
    last = next((e for e in reversed(events) if type(e) is BarClosed), None)
    if last is None:
        return
    day = last.ts_event_ns // day_ns
    opening = next((e for e in events if type(e) is BarClosed and e.ts_init_ns != 0
                    and e.ts_event_ns // day_ns == day), None)
    if opening is None:
        return
    before: dict[str, EquityMarked] = {}
    for e in events:
        if type(e) is EquityMarked and e.seq < opening.seq:
            before[e.account] = e
    equity = 0.0
    for name, acct in book.accounts.items():
        m = before.get(name)
        equity += (m.cash + m.qty * opening.close) if m is not None else acct.initial_cash
    book.day = day
    book.day_start_equity = equity
    book.last_seq = last.seq
    book.last_close = last.close
    if any(type(e) is OrderCanceled and e.ts_event_ns // day_ns == day
           and "daily loss" in e.reason for e in events):
        book.halted_day = day


def restore_orders_last_minute(book: Any, events: list[Event]) -> None:
    """Give an ``engine.risk.RiskBook`` the orders of the last minute back, so a restart (a
    crash loop included) cannot send ``max_orders_per_minute`` more at once: every journaled
    ``SubmitOrder`` the risk gate let through (no ``OrderCanceled`` "risk: ..." for it) and every
    ``ModifyOrder``, at the wall-clock time the engine received its bar (``ts_init_ns``; the
    commands of a live run are stamped with it), when that is within the last 60 s of the
    book's clock."""
    from engine.events import ModifyOrder, SubmitOrder

    cutoff = book.now_ns() - 60 * 1_000_000_000
    refused = {e.order_id for e in events
               if type(e) is OrderCanceled and e.reason.startswith("risk: ")}
    sent = sorted(e.ts_init_ns for e in events
                  if (type(e) is ModifyOrder or (type(e) is SubmitOrder
                                                  and e.order_id not in refused))
                  and e.ts_init_ns > cutoff)
    book.sent.clear()
    book.sent.extend(sent)


def write_report(path: Path, rep: Reconciled) -> None:
    """Write a ``Reconciled`` report as ``reconciliation.json`` (``REPORT``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "account": rep.account, "resumed_from": rep.resumed_from,
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rep.ts_init_ns / 1e9)),
        "halted": rep.halted, "found": list(rep.found), "actions": list(rep.actions),
        "problems": list(rep.problems),
    }, indent=2) + "\n")
