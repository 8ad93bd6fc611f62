"""A restarted live run's reconciliation with the venue, before it trades again.

``restore(broker, events)`` rebuilds what the Apex broker had on the venue from the run's journal
(``engine.journal``; ``engine.restore`` does the accounts and the exit runners): every order by
its ``OrderSent`` (journaled before the request left), the venue's ``OrderReply``, its fills and
cancels; orders sent without a reply (the process died while the request was in flight) are
remembered as unknown.

``reconcile(broker, journal, report_dir)`` then asks the venue (open orders, the position, the
fills of the account since the run's first order) and:

- **adopts what the venue proves**: a fill of one of this run's clientIds that the journal does
  not have (the process died after sending, before booking) is booked as the ``OrderFilled`` it
  would have been (the account, the exit runner and the journal see it like any fill: an
  adopted entry's attached stop and target, journaled with it as its children, are its
  working orders on the venue and in the exit runner); an order sent without a reply that the
  venue has is adopted as working, with its attached children;
- **never invents a fill**: a journaled order the venue does not have is canceled in the engine
  ("never reached the venue"), with no fill;
- **cancels orphans it owns**: an open venue order with one of this run's clientIds that the
  engine no longer wants (a stop replaced just before the crash, a target whose position is
  gone);
- **halts on what it cannot explain**: open orders with clientIds this run never sent
  (someone else's, or another run's), or a venue position different from the journal's after
  the adoptions: new entries are refused (``ApexBroker.halted``; exits and stops still work)
  and the reason is logged at ERROR and written in the report.

The report is a ``Reconciled`` event (journaled) and ``reconciliation.json`` in the run folder.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.apex.broker import row_cid
from engine.errors import VenueError
from engine.events import (
    BarClosed,
    Event,
    OrderCanceled,
    OrderFilled,
    OrderReply,
    OrderSent,
    Reconciled,
)
from engine.restore import REPORT, write_report

if TYPE_CHECKING:
    from adapters.apex.broker import ApexBroker

logger = logging.getLogger(__name__)



def restore(broker: ApexBroker, events: list[Event]) -> None:
    """Rebuild ``broker``'s orders from its account's journaled events (see the module doc)."""
    from adapters.apex.broker import _Order

    name = broker.name
    sent: dict[str, tuple[OrderSent, Any]] = {}  # clientId -> (record, order)
    replied: set[str] = set()
    orders: dict[str, Any] = {}
    first_ms = 0
    for e in events:
        t = type(e)
        if t is BarClosed:
            broker._bar = e
            continue
        if getattr(e, "account", None) != name:
            continue
        if t is OrderSent:
            o = _Order(e.order_id, e.client_id, e.side, e.type, e.qty, e.price, e.reduce_only,
                       e.tag, e.seq, parent=e.parent)
            sent[e.client_id] = (e, o)
            if not first_ms and e.ts_event_ns:
                first_ms = e.ts_event_ns // 1_000_000 - 60_000
        elif t is OrderReply:
            replied.add(e.client_id)
            if e.status != "accepted" or e.client_id not in sent:
                continue
            rec, o = sent[e.client_id]
            _adopt(broker, orders, rec, o)
            for _c_rec, c in sent.values():  # its attached children: working once it fills
                if c.parent == o.order_id and c.order_id not in orders:
                    orders[c.order_id] = c
                    broker._by_cid[c.cid] = c
        elif t is OrderFilled:
            o = orders.get(e.order_id)
            if o is None:
                continue
            o.filled += e.qty
            if o.type == "market" or o.filled >= o.qty - 1e-12:
                o.working = False
            if not o.reduce_only:
                for c in orders.values():
                    if c.parent == o.order_id:
                        c.working = True
        elif t is OrderCanceled:
            o = orders.get(e.order_id)
            if o is not None:
                o.working = False
    broker._orders.update(orders)
    for cid, (_rec, o) in sent.items():
        broker._sent.add(cid)
        broker._by_cid.setdefault(cid, o)
    # sent, never answered (the process died while the request was in flight): reconcile asks
    broker._unanswered = [(rec, o) for cid, (rec, o) in sent.items()  # type: ignore[attr-defined]
                          if cid not in replied and not rec.parent]
    broker._unanswered_children = [o for cid, (rec, o) in sent.items()  # type: ignore[attr-defined]
                                   if cid not in replied and rec.parent]
    broker._fills_from_ms = first_ms
    broker._journaled_fills = Counter(  # type: ignore[attr-defined]
        (e.order_id, e.ts_event_ns // 1_000_000, e.qty, e.price) for e in events
        if type(e) is OrderFilled and e.account == name)


def _adopt(broker: ApexBroker, orders: dict[str, Any], rec: OrderSent, o: Any) -> None:
    """``o`` is on the venue: it is the engine order's current venue order (a replacement
    supersedes the clientId it replaces, which stays mapped for its late fills)."""
    prev = orders.get(o.order_id)
    if rec.replaces and prev is not None:
        o.old_cids = [*prev.old_cids, rec.replaces]
        o.filled = prev.filled
        broker._by_cid[rec.replaces] = o
    o.working = not o.parent  # a child works once its entry fills
    orders[o.order_id] = o
    broker._by_cid[o.cid] = o


def reconcile(broker: ApexBroker, journal: str = "", report_dir: Path | None = None
              ) -> Reconciled:
    """Compare ``broker``'s restored state with the venue and act on it (module doc); publish
    and return the ``Reconciled`` report, written to ``report_dir/reconciliation.json``.

    Raises:
        VenueError: the venue cannot be asked (the run does not start: nothing is traded on a
            state that was not checked).
    """
    acct = broker.account
    r = broker.rules
    sym = r.symbol.replace("-", "")
    found: list[str] = []
    actions: list[str] = []
    problems: list[str] = []
    unanswered = list(getattr(broker, "_unanswered", []))
    journaled: Counter[tuple[str, int, float, float]] = getattr(
        broker, "_journaled_fills", Counter())
    working = [o for o in broker._orders.values() if o.working]
    found.append(f"journal: position {acct.qty:+g} {r.symbol}, {len(working)} working order(s)"
                 f", {len(unanswered)} order(s) sent without a reply")

    priv = broker.client.private
    broker._retry("configs", broker.client.call, "configs", priv.configs_v3)
    positions = [p for p in (broker._retry("account", broker.client.account).get("positions")
                             or [])
                 if str(p.get("symbol", "")).replace("-", "") == sym and float(p.get("size") or 0)]
    venue_qty = sum(float(p["size"]) * (1.0 if str(p.get("side", "")).upper() == "LONG" else -1.0)
                    for p in positions)
    open_orders = [o for o in broker._retry("open orders", broker.client.open_orders) or []
                   if str(o.get("symbol", "")).replace("-", "") == sym]
    fills = broker.venue_fills() if broker._fills_from_ms else []
    ours = [f for f in fills if row_cid(f) in broker._by_cid]
    found.append(f"venue: position {venue_qty:+g} {r.symbol}, {len(open_orders)} open order(s), "
                 f"{len(ours)} fill(s) of this run's clientIds")

    # 1. sent without a reply: the venue has it (adopt) or never got it (cancel, no fill)
    for rec, o in unanswered:
        try:
            v = broker._lookup(o.cid)
        except VenueError as exc:
            problems.append(f"order {o.order_id} (clientId {o.cid}) was sent without a reply "
                            f"and the venue cannot say whether it has it: {exc}")
            continue
        if v is None:
            for c in [c for c in broker._orders.values() if c.parent == o.order_id]:
                del broker._orders[c.order_id]
            if broker._orders.get(o.order_id) is None or not rec.replaces:
                broker._orders.pop(o.order_id, None)
                broker._canceled(o.order_id, "not placed: sent just before the restart, the "
                                 "venue does not have it")
            actions.append(f"order {o.order_id} (clientId {o.cid}) never reached the venue: "
                           "canceled, no fill booked")
            continue
        orders = broker._orders
        _adopt(broker, orders, rec, o)
        for c in getattr(broker, "_unanswered_children", []):
            if c.parent == o.order_id:  # on the venue with it, working once it fills
                orders[c.order_id] = c
                broker._by_cid[c.cid] = c
        status = str(v.get("status", ""))
        o.working = status not in ("FILLED", "CANCELED")
        actions.append(f"order {o.order_id} (clientId {o.cid}) was accepted by the venue before "
                       f"the restart ({status}): adopted")

    # 2. fills the venue has and the journal does not: adopted, in the venue's order
    missed = []
    for f in sorted(ours, key=lambda f: (int(f.get("createdAt", 0)), str(f.get("id")))):
        o = broker._by_cid[row_cid(f)]
        key = (o.order_id, int(f.get("createdAt", 0)), float(f["size"]), float(f["price"]))
        broker._seen_fills.add(str(f.get("id")))
        if journaled[key] > 0:
            journaled[key] -= 1
        else:
            missed.append(f)
    for f in missed:
        o = broker._by_cid[row_cid(f)]
        broker._fills_from_ms = max(broker._fills_from_ms, int(f.get("createdAt", 0)))
        broker._on_fill(f)
        actions.append(f"adopted a fill the journal missed: {f.get('side')} {f.get('size')} "
                       f"at {f.get('price')} of order {o.order_id} (clientId {row_cid(f)})")
    left = sum(journaled.values())
    if left:
        problems.append(f"{left} journaled fill(s) are not in the venue's fills of this run")

    # 3. open venue orders: ours and wanted (keep), ours and not wanted (cancel), foreign (halt)
    for v in open_orders:
        cid = row_cid(v)
        o = broker._by_cid.get(cid)
        if o is not None and o.cid == cid and o.working:
            continue
        if o is None:
            problems.append(f"an open {v.get('side')} {v.get('type')} order of "
                            f"{v.get('size')} (clientId {cid or '?'}, id {v.get('id')}) that "
                            "this run never sent (someone else's, or another run's)")
            continue
        try:
            broker._cancel_cid(cid)
            actions.append(f"canceled the orphan order {cid} ({o.order_id}, {o.tag}): the engine "
                           "no longer wants it")
        except VenueError as exc:
            problems.append(f"the orphan order {cid} ({o.order_id}) could not be canceled: {exc}")
    # our working orders the venue no longer works: canceled there (or filled short)
    broker._poll_canceled()

    # 4. the position after the adoptions
    if abs(venue_qty - acct.qty) > 1e-9 * max(1.0, abs(venue_qty)):
        problems.append(f"the venue holds {venue_qty:+g} {r.symbol} and the journal (with the "
                        f"fills adopted) accounts for {acct.qty:+g}")

    halted = bool(problems)
    broker.halted = "; ".join(problems)
    bar = broker._bar
    ts = bar.ts_event_ns if bar is not None else 0
    rep = Reconciled(ts_event_ns=ts, ts_init_ns=time.time_ns(), account=broker.name,
                     resumed_from=journal, found=tuple(found), actions=tuple(actions),
                     problems=tuple(problems), halted=halted)
    broker._publish(rep)
    for line in (*found, *actions):
        logger.info("%s: reconciliation: %s", broker.name, line)
    if halted:
        logger.error("%s: reconciliation found what it cannot explain, new entries are halted "
                     "(exits and stops still work): %s", broker.name, broker.halted)
    if report_dir is not None:
        write_report(Path(report_dir) / REPORT, rep)
    return rep
