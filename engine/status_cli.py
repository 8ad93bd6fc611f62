"""``tradebot status JOURNAL``: a paper or live run's state from its journal alone (no venue).

Prints, for the journal's most recent run (or ``--run ID``): the last bar, each account's
position, its open orders (with their venue clientIds in live runs), today's PnL (UTC day:
marked equity now against the last mark before the day, and the trades closed today) and the
last reconciliation (``engine.restore``, ``adapters/apex/reconcile.py``). A path that is not a
file, or a file that is not a tradebot journal, is an error (exit 2) saying what to pass.

The top level imports nothing heavy (``tradebot --help`` stays fast).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="positions, open orders, today's PnL and the last "
                                      "reconciliation of a paper/live run, from its journal")
    p.add_argument("journal", type=Path,
                   help="a run's journal.sqlite (in its output folder, e.g. runs/live/), or "
                        "the output folder itself")
    p.add_argument("--run", metavar="ID", help="the run id to show (default: the most recent "
                                                "run in the journal)")
    p.set_defaults(func=cmd_status)


def _utc(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ns / 1e9)) + " UTC"


def resolve_journal(path: Path) -> Path:
    """``path`` or ``path/journal.sqlite``, checked to be a tradebot journal.

    Raises:
        ConfigError: not there, or not a journal (what was found and what to pass)."""
    from engine.journal import is_journal

    p = path / "journal.sqlite" if path.is_dir() else path
    if not p.exists():
        raise ConfigError(f"{path}: no such file; pass a paper/live run's journal.sqlite (it is "
                          "in the run's output folder, e.g. runs/live/journal.sqlite)")
    if not is_journal(p):
        raise ConfigError(f"{p} is not a tradebot journal (no events table: not a SQLite file "
                          "tradebot wrote); pass a paper/live run's journal.sqlite")
    return p


def status_lines(path: Path, run: str | None = None, now_ns: int | None = None) -> list[str]:
    """The report ``tradebot status`` prints, one line each.

    Raises:
        ConfigError: ``run`` is not in the journal, or the journal has no run."""
    from engine.events import (
        BarClosed,
        EquityMarked,
        OrderFilled,
        OrderReply,
        OrderSent,
        Reconciled,
        TradeClosed,
    )
    from engine.journal import read_events, run_ids
    from engine.portfolio import Account
    from engine.restore import working_commands

    ids = run_ids(path)
    if not ids:
        raise ConfigError(f"{path}: the journal has no events yet (a run that stopped before "
                          "its first bar?)")
    rid = run or ids[-1]
    if rid not in ids:
        raise ConfigError(f"{path}: no run {rid!r} in this journal; it has {', '.join(ids)}")
    events = list(read_events(path, rid))
    accounts: dict[str, Account] = {}
    last_bar: BarClosed | None = None
    marks: dict[str, list[EquityMarked]] = {}
    cids: dict[str, str] = {}
    sent: dict[str, OrderSent] = {}
    last_rec: dict[str, Reconciled] = {}
    symbol = ""
    for e in events:
        t = type(e)
        if t is BarClosed:
            if last_bar is None or e.seq >= last_bar.seq:
                last_bar = e
            symbol = e.symbol
        elif t is OrderFilled:
            a = accounts.get(e.account)
            if a is None:
                a = accounts[e.account] = Account(e.account, symbol, 0.0, lambda _e: None)
            a.book(e)
        elif t is EquityMarked:
            marks.setdefault(e.account, []).append(e)
            accounts.setdefault(e.account, Account(e.account, symbol, 0.0, lambda _e: None))
        elif t is OrderSent:
            sent[e.client_id] = e
        elif t is OrderReply and e.status == "accepted" and e.client_id in sent:
            cids[e.order_id] = e.client_id
        elif t is Reconciled:
            last_rec[e.account] = e
    now = now_ns if now_ns is not None else (last_bar.ts_event_ns if last_bar else 0)
    day = now // 86_400_000_000_000
    out = [f"journal {path}", f"run {rid}: {len(events):,} events"]
    if last_bar is not None:
        out.append(f"last bar: seq {last_bar.seq}, {last_bar.symbol} {last_bar.timeframe} closed "
                   f"{_utc(last_bar.ts_event_ns)}, close {last_bar.close:g}")
    out.append("positions:")
    for name, a in sorted(accounts.items()):
        if a.qty == 0.0:
            out.append(f"  {name}: flat")
        else:
            side = "long" if a.qty > 0 else "short"
            out.append(f"  {name}: {side} {abs(a.qty):g} {symbol} at {a.avg_price:g} (entry bar "
                       f"{a.entry_seq}, {_utc(a.entry_ts_ns)})")
    if not accounts:
        out.append("  none (no fill journaled)")
    out.append("open orders:")
    n_open = 0
    for name, a in sorted(accounts.items()):
        cmds = working_commands(name, events, a.qty)
        moved = {m.order_id: m.price for m in cmds if type(m).__name__ == "ModifyOrder"}
        for cmd in cmds:
            if type(cmd).__name__ != "SubmitOrder":
                continue
            px = moved.get(cmd.order_id, cmd.price)
            qty = "all" if cmd.qty == float("inf") else (f"{cmd.qty:g}" if cmd.qty else
                                                         f"{cmd.equity_frac:g} of equity")
            cid = cids.get(cmd.order_id)
            out.append(f"  {name}: {cmd.order_id} {cmd.side} {cmd.type} {qty}"
                       + (f" at {px:g}" if px == px else "") + f" {cmd.tag}"
                       + (" reduce-only" if cmd.reduce_only else "")
                       + (f" (clientId {cid})" if cid else ""))
            n_open += 1
    if not n_open:
        out.append("  none")
    out.append(f"today ({time.strftime('%Y-%m-%d', time.gmtime(now / 1e9))} UTC):")
    for name in sorted(accounts):
        ms = marks.get(name, [])
        today = [m for m in ms if m.ts_event_ns // 86_400_000_000_000 == day]
        before = [m for m in ms if m.ts_event_ns // 86_400_000_000_000 < day]
        closed = [t for t in events if type(t) is TradeClosed and t.account == name
                  and t.exit_ts_ns // 86_400_000_000_000 == day]
        realized = sum(t.pnl for t in closed)
        line = f"  {name}: realized {realized:+.2f} ({len(closed)} trade(s) closed)"
        if today:
            base = (before[-1] if before else today[0]).equity
            line += f", PnL {today[-1].equity - base:+.2f} (equity {today[-1].equity:.2f})"
        out.append(line)
    out.append("last reconciliation:")
    if not last_rec:
        out.append("  none (the run has not been restarted)")
    for name, r in sorted(last_rec.items()):
        state = "HALTED: new entries refused" if r.halted else "ok"
        out.append(f"  {name}: {_utc(r.ts_init_ns)}, {state}")
        out += [f"    found: {x}" for x in r.found]
        out += [f"    did: {x}" for x in r.actions]
        out += [f"    problem: {x}" for x in r.problems]
    return out


def cmd_status(args: argparse.Namespace) -> int:
    path = resolve_journal(args.journal)
    print("\n".join(status_lines(path, args.run)))
    return 0
