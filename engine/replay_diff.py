"""Backtest-to-live diff: re-run a paper or live run's journaled bars as a backtest and list, bar
by bar, where signals, orders, fills and trades differ from what the run did, with the likely
cause (``tradebot replay-diff JOURNAL``, docs/apex.md "Backtest-to-live diff").

How it works:

1. **Read the journal** (``engine.journal``): the run's bars (the warm-up history first, marked
   ``ts_init_ns=0``: nothing traded on it), and every signal, order, fill, cancel, trade and
   ``HandlerFailed`` it recorded.
2. **Replay** the run's config (``config.resolved.yaml`` beside the journal, or ``--config``) as
   a backtest on the same bars: the history preloaded but not traded, the live bars delivered
   through the same loop, with the paper/live error policy (a failing handler is disabled, as it
   was live). With ``--data FILE`` the replay runs on the file's bars for the same times instead
   (the venue's final data), and every journaled bar that differs from the file is a **revised
   bar**.
3. **Compare** per stream (the shared signals, then each strategy's account). Events are put on
   the bar they belong to (their own ``seq`` where they have one, else the bar being processed
   when they were published), sorted canonically within a bar, and aligned with a sequence
   matcher on keys that carry no order ids (bar, side, type, tag...). So one early extra or
   missing event is reported once, and the next matching event re-aligns the rest: a difference
   shifts nothing after it. Matched pairs are then compared by value (fill price, size, order
   and signal prices).

Causes, most specific first: an order the risk gate or the venue refused (``OrderCanceled``
reasons, a rejected ``OrderReply``); a handler disabled (``HandlerFailed``); a bar revised after
the fact; slippage (an adverse fill price) or a fill the venue gave at another price; and for
later differences, the earlier difference of the same stream they follow from. What is left is a
missing or extra event with no recorded cause.

Nothing here imports ``adapters/``: the replay's feed is the small in-memory one below.
"""

from __future__ import annotations

import difflib
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import events as ev
from engine.bars import Bars
from engine.errors import ConfigError, DataError

QTY_TOL = 0.02  # relative: a live broker sizes at the venue's worst-price guard and step size
PRICE_TOL = 1e-7  # relative: prices equal up to float formatting (0.001 bps)
MAX_SHOWN = 20  # differences listed per stream unless show_all
TIMING_BARS = 2  # the same event this many bars apart or less is one timing difference
RESTART_BARS = 3  # differences this close after a restart (Reconciled) are blamed on it

# kinds of records, in their canonical order within one bar
_RANK = {"fill": 0, "refused": 1, "signal": 2, "submit": 3, "modify": 4, "cancel": 5,
         "trade": 6}
_REFUSAL_WORDS = ("risk:", "reject", "refused", "not placed", "confirm:")


# -- records ------------------------------------------------------------------------------------


@dataclass
class Rec:
    """One signal, order, fill, refusal or trade, normalised for comparison."""

    stream: str  # "signals" or the strategy (account) name
    kind: str
    bar: int
    key: tuple[Any, ...]  # what must be equal to match (no order ids)
    vals: dict[str, float]  # compared on matched pairs
    text: str

    def sort_key(self) -> tuple[Any, ...]:
        return (self.bar, _RANK[self.kind], tuple(str(k) for k in self.key))


@dataclass
class Side:
    """What one side (the live run, or the backtest replay) did."""

    recs: dict[str, list[Rec]] = field(default_factory=dict)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (bar, handler, error)
    restarts: list[tuple[int, str, str]] = field(default_factory=list)  # (bar, account, what)
    counts: dict[str, int] = field(default_factory=dict)  # signals, orders, fills, trades
    pnl: dict[str, float] = field(default_factory=dict)


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.10g}"


def _is_refusal(reason: str) -> bool:
    r = reason.lower()
    return any(w in r for w in _REFUSAL_WORDS)


def _refuser(reason: str) -> str:
    r = reason.lower()
    return ("the risk gate" if r.startswith("risk:") else
            "the operator (alert-first: not taken)" if r.startswith("confirm:") else "the venue")


class _Collector:
    """Turns an event stream (journal order or bus order: the same) into ``Rec``s per stream.

    An event without its own bar (cancel, modify, refusal, handler failure) belongs to the bar
    being processed when it was published. A sink (the replay's recorder, a journal without
    durable mode) gets the events of bar k before ``BarClosed`` k itself, which reaches it last;
    a durable journal writes ``BarClosed`` k first (``bar_first``), then the bar's events. Events
    after the last bar (the close at the end) belong to the last bar.
    """

    def __init__(self, bar_first: bool = False) -> None:
        self.bar_first = bar_first
        self.side = Side()
        self._pending: list[tuple[Any, ...]] = []
        self._orders: dict[tuple[str, str], tuple[str, str, str]] = {}  # (acct, id) -> side..
        self._fills: dict[tuple[str, str, int], list[ev.OrderFilled]] = {}
        self.last_bar = -1

    def __call__(self, e: ev.Event) -> None:
        t = type(e).__name__
        if t == "BarClosed":
            if self.bar_first:
                self._settle(self.last_bar)  # the events of the bar before
                self.last_bar = e.seq  # type: ignore[attr-defined]
            else:
                self._settle(e.seq)  # type: ignore[attr-defined]
            return
        if t == "SubmitOrder":
            self._orders[(e.account, e.order_id)] = (e.side, e.type, e.tag)  # type: ignore
        if t in ("SignalRaised", "SubmitOrder", "OrderFilled", "TradeClosed"):
            self._add(e, None)
        elif t in ("ModifyOrder", "CancelOrder", "OrderCanceled", "OrderReply", "HandlerFailed",
                   "Reconciled"):
            self._pending.append((e,))

    def _settle(self, bar: int) -> None:
        self.last_bar = bar
        for (e,) in self._pending:
            self._add(e, bar)
        self._pending.clear()

    def finish(self) -> Side:
        self._settle(self.last_bar)
        for (acct, _oid, seq), fills in self._fills.items():  # one record per order and bar
            qty = sum(f.qty for f in fills)
            px = sum(f.qty * f.price for f in fills) / qty if qty else fills[0].price
            f0 = fills[0]
            self._put(Rec(acct, "fill", seq, (f0.side, f0.tag or "?"),
                          {"price": px, "qty": qty},
                          f"fill {f0.side} {_fmt(qty)} @ {_fmt(px)} {f0.tag}".rstrip()))
        for recs in self.side.recs.values():
            recs.sort(key=Rec.sort_key)
        return self.side

    def _put(self, r: Rec) -> None:
        self.side.recs.setdefault(r.stream, []).append(r)
        group = {"signal": "signals", "submit": "orders", "modify": "orders", "cancel": "orders",
                 "fill": "fills", "trade": "trades", "refused": "refused"}[r.kind]
        self.side.counts[group] = self.side.counts.get(group, 0) + 1

    def _target(self, acct: str, order_id: str) -> str:
        side, typ, tag = self._orders.get((acct, order_id), ("?", "?", "?"))
        return f"{side} {typ} {tag}".strip()

    def _add(self, e: Any, bar: int | None) -> None:
        t = type(e).__name__
        if t == "SignalRaised":
            self._put(Rec("signals", "signal", e.seq, (e.rule, e.side),
                          {"entry": e.entry_price, "stop": e.stop_price},
                          f"signal {e.rule} {e.side} entry {_fmt(e.entry_price)} stop "
                          f"{_fmt(e.stop_price)}"))
        elif t == "SubmitOrder":
            size = (f"{_fmt(e.equity_frac)} of equity" if e.equity_frac else
                    "all" if not math.isfinite(e.qty) else _fmt(e.qty))
            at = f" @ {_fmt(e.price)}" if math.isfinite(e.price) else ""
            vals = {"price": e.price, "stop_loss": e.stop_loss, "take_profit": e.take_profit,
                    "take_profit_frac": e.take_profit_frac, "equity_frac": e.equity_frac}
            if math.isfinite(e.qty) and e.qty > 0:
                vals["qty"] = e.qty
            self._put(Rec(e.account, "submit", e.seq, (e.side, e.type, e.tag, e.reduce_only),
                          vals, f"submit {e.side} {e.type} {size}{at} {e.tag}"
                          f"{' reduce-only' if e.reduce_only else ''}".rstrip()))
        elif t == "OrderFilled":
            self._fills.setdefault((e.account, e.order_id, e.seq), []).append(e)
        elif t == "TradeClosed":
            self.side.pnl[e.account] = self.side.pnl.get(e.account, 0.0) + e.pnl
            self._put(Rec(e.account, "trade", e.exit_seq,
                          (e.side, e.entry_seq, e.exit_reason),
                          {}, f"trade {e.side} entered bar {e.entry_seq} @ "
                          f"{_fmt(e.entry_price)}, exit {e.exit_reason} @ {_fmt(e.exit_price)}, "
                          f"pnl {e.pnl:+.2f}"))
        elif t == "ModifyOrder":
            what = self._target(e.account, e.order_id)
            self._put(Rec(e.account, "modify", bar, (what, e.tag or e.reason),  # type: ignore
                          {"price": e.price},
                          f"move {what} to {_fmt(e.price)} {e.tag or e.reason}".rstrip()))
        elif t == "CancelOrder":
            what = self._target(e.account, e.order_id)
            self._put(Rec(e.account, "cancel", bar, (what, e.reason), {},  # type: ignore
                          f"cancel {what} ({e.reason})"))
        elif t == "OrderCanceled":
            if _is_refusal(e.reason):  # bookkeeping cancels differ by broker: refusals only
                what = self._target(e.account, e.order_id)
                self._put(Rec(e.account, "refused", bar, (what,), {},  # type: ignore
                              f"{what} refused by {_refuser(e.reason)}: {e.reason}"))
        elif t == "OrderReply":
            if e.status != "accepted":
                what = self._target(e.account, e.order_id)
                self._put(Rec(e.account, "refused", bar, (what,), {},  # type: ignore
                              f"{what} {e.status} by the venue: {e.reason}"))
        elif t == "HandlerFailed":
            self.side.failed.append((bar, e.handler, e.error))  # type: ignore[arg-type]
        elif t == "Reconciled":  # a restart: state rebuilt from the journal, then the venue's
            what = "; ".join([*e.actions, *e.problems]) or "nothing to do"
            if e.halted:
                what = f"entries halted: {what}"
            if len(what) > 200:
                what = what[:197] + "..."
            self.side.restarts.append((bar, e.account, what))  # type: ignore[arg-type]


# -- the journal --------------------------------------------------------------------------------


@dataclass
class JournalRun:
    """A journaled paper/live run: its bars and its events."""

    path: Path
    run_id: str
    runs: int  # run ids in the file
    bars: Bars
    first_live: int  # seq of the first bar the run traded on (after the history)
    events: list[ev.Event]


def read_journal(path: Path, run_id: str | None = None) -> JournalRun:
    """Read the run ``run_id`` (default: the most recent) of journal ``path``.

    Raises:
        ConfigError: not a file, not a tradebot journal, no such run, no live bars (a backtest's
            journal, or a run stopped before its first bar), or bars that do not follow each
            other.
    """
    from engine.journal import read_events, run_ids
    from engine.timeframes import timeframe_ns

    if not path.is_file():
        raise ConfigError(f"{path}: no such file; give the journal.sqlite of a paper or live "
                          "run (in its output folder, e.g. runs/paper/journal.sqlite)")
    try:
        ids = run_ids(path)
    except sqlite3.Error:
        raise ConfigError(f"{path}: not a tradebot journal (no events table readable); give the "
                          "journal.sqlite of a paper or live run") from None
    if not ids:
        raise ConfigError(f"{path}: the journal is empty (no events); the run stopped before it "
                          "wrote anything")
    if run_id is None:
        run_id = ids[-1]
    elif run_id not in ids:
        raise ConfigError(f"{path}: no run {run_id!r} in this journal; it has {ids}")
    events = list(read_events(path, run_id))
    by_seq: dict[int, ev.BarClosed] = {}
    for e in events:
        if type(e) is ev.BarClosed:
            have = by_seq.get(e.seq)
            if have is not None and have.ts_event_ns != e.ts_event_ns:
                raise ConfigError(f"{path}: bar {e.seq} is journaled twice with different times "
                                  "(a run restarted into the same journal?); pass --run RUN_ID")
            if have is None or (have.ts_init_ns == 0 and e.ts_init_ns != 0):
                by_seq[e.seq] = e
    live = [s for s, b in by_seq.items() if b.ts_init_ns != 0]
    if not live:
        raise ConfigError(f"{path}: run {run_id} has no live bars journaled (a backtest journal, "
                          "or a paper/live run stopped before its first bar): nothing to replay")
    seqs = sorted(by_seq)
    if seqs != list(range(len(seqs))):
        missing = sorted(set(range(seqs[-1] + 1)) - set(seqs))[:5]
        raise ConfigError(f"{path}: run {run_id} lacks the journaled bars {missing}; the journal "
                          "is incomplete, so its run cannot be replayed")
    bs = [by_seq[s] for s in seqs]
    b0 = bs[0]
    tf_ns = timeframe_ns(b0.timeframe)
    bars = Bars.from_columns(
        b0.symbol, b0.timeframe, tf_ns, np.array([b.ts_event_ns - tf_ns for b in bs]),
        *(np.array([getattr(b, k) for b in bs], dtype=np.float64)
          for k in ("open", "high", "low", "close", "volume")))
    return JournalRun(path, run_id, len(ids), bars, min(live), events)


# -- the replay ---------------------------------------------------------------------------------


class ReplayFeed:
    """A replay ``BarFeed`` over ``bars`` that delivers from ``start``: the bars before it are
    history (in the store for the handlers, traded on by nobody), as in the live run."""

    def __init__(self, bars: Bars, start: int) -> None:
        self._bars = bars
        self._start = start
        self.symbol = bars.symbol
        self.timeframe = bars.timeframe

    def history(self) -> Bars:
        return self._bars

    def __iter__(self) -> Iterator[ev.BarClosed]:
        b = self._bars
        t, o, h, lo, c, v = (b.ts_open_ns.tolist(), b.open.tolist(), b.high.tolist(),
                             b.low.tolist(), b.close.tolist(), b.volume.tolist())
        for i in range(self._start, len(t)):
            ts = t[i] + b.tf_ns
            yield ev.BarClosed(ts_event_ns=ts, ts_init_ns=ts, symbol=b.symbol,
                               timeframe=b.timeframe, seq=i, open=o[i], high=h[i], low=lo[i],
                               close=c[i], volume=v[i])


def load_run_config(path: Path) -> tuple[Any, str]:
    """The run's config (a ``config.resolved.yaml`` or the YAML it was started with) and its
    hash as the run computed it (the one a resolved config records, else computed now).

    Raises:
        ConfigError: missing, unreadable or invalid.
    """
    import yaml

    from engine.config import RunConfig, load_config, validate_config

    if not path.is_file():
        raise ConfigError(f"{path}: no such config; give the run's config.resolved.yaml with "
                          "--config")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read it as YAML ({exc}); give the run's "
                          "config.resolved.yaml with --config") from None
    if isinstance(raw, dict) and "config_hash" in raw:
        recorded = str(raw.pop("config_hash"))
        cfg = validate_config(RunConfig, raw, path)
        return cfg, recorded
    cfg = load_config(path)
    return cfg, cfg.config_hash()


def replay_config(cfg: Any, source: Path, close_at_end: bool | None = None) -> Any:
    """``cfg`` as a journal-free, single-process, silent backtest (``close_at_end``: whether it
    closes the positions open at its end; default the config's)."""
    from engine.config import RunConfig, validate_config

    d = cfg.resolved_dict()
    d["mode"] = "backtest"
    d["data"]["file"] = str(source)  # not read: the replay's feed is given
    d["journal"]["enabled"] = False
    d["publish"]["enabled"] = False
    d["output"]["progress"] = False
    d["execution"]["workers"] = 1  # every strategy on this bus, where the recorder listens
    if close_at_end is not None:
        d["execution"]["close_at_end"] = close_at_end
    if d["execution"].get("confirm", "none") != "none":  # alert-first: nobody taps in a replay;
        d["execution"]["confirm"] = "none"  # what the operator did not take shows as refused
    return validate_config(RunConfig, d, "replay config")


def replay(cfg: Any, bars: Bars, start: int) -> Side:
    """Run ``cfg`` as a backtest over ``bars``, trading from bar ``start``; what it did."""
    from engine.bootstrap import build_engine

    engine = build_engine(cfg, feed=ReplayFeed(bars, start))
    engine.bus.on_error = "isolate"  # as live: a failing handler is disabled, not fatal
    rec = _Collector()
    engine.bus.subscribe_all(rec, name="replay-diff")
    try:
        engine.run()
    finally:
        engine.close()
    return rec.finish()


def revisions(bars: Bars, data: Bars) -> tuple[Bars, list[tuple[int, str]]]:
    """The file's bars at the journal's times, and each journaled bar that differs from the
    file's (seq, what changed).

    Raises:
        DataError: the file lacks some of the journal's bars, or is of another symbol/timeframe.
    """
    if data.tf_ns != bars.tf_ns:
        raise DataError(f"--data: the file's timeframe {data.timeframe} is not the journal's "
                        f"{bars.timeframe}; give a file of the run's candles")
    idx = np.searchsorted(data.ts_open_ns, bars.ts_open_ns)
    ok = (idx < len(data.ts_open_ns)) & (data.ts_open_ns[np.minimum(idx, len(data) - 1)]
                                         == bars.ts_open_ns)
    if not ok.all():
        k = int(np.argmin(ok))
        t = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(bars.ts_open_ns[k]) // 10**9))
        raise DataError(f"--data: the file has no candle opening at {t} UTC (journaled bar {k}) "
                        f"and {int((~ok).sum()) - 1} more; give a file covering the run "
                        "(e.g. `tradebot data download`)")
    sel = Bars.from_columns(bars.symbol, bars.timeframe, bars.tf_ns, bars.ts_open_ns,
                            *(getattr(data, k)[idx] for k in
                              ("open", "high", "low", "close", "volume")))
    out: list[tuple[int, str]] = []
    cols = ("open", "high", "low", "close", "volume")
    diff = np.zeros(len(bars), dtype=bool)
    for k in cols:
        a, b = getattr(bars, k), getattr(sel, k)
        diff |= ~np.isclose(a, b, rtol=1e-9, atol=0.0)
    for i in np.flatnonzero(diff).tolist():
        parts = [f"{k} {_fmt(float(getattr(bars, k)[i]))} -> {_fmt(float(getattr(sel, k)[i]))}"
                 for k in cols if not math.isclose(float(getattr(bars, k)[i]),
                                                   float(getattr(sel, k)[i]), rel_tol=1e-9)]
        out.append((i, "journaled " + ", ".join(parts) + " in the file"))
    return sel, out


# -- the comparison -----------------------------------------------------------------------------


@dataclass
class Difference:
    stream: str
    bar: int
    kind: str  # "missing" (backtest only), "extra" (live only), "changed", "value", "timing"
    live: list[str]
    backtest: list[str]
    cause: str

    def as_dict(self, when: str) -> dict[str, Any]:
        return {"stream": self.stream, "bar": self.bar, "time": when, "kind": self.kind,
                "live": self.live, "backtest": self.backtest, "cause": self.cause}


@dataclass
class Report:
    journal: Path
    run_id: str
    runs: int
    config: Path
    config_note: str
    bars: Bars
    first_live: int
    data: Path | None
    live: Side
    backtest: Side
    matched: dict[str, int]
    differences: list[Difference]
    revised: list[tuple[int, str]]
    failed_only: list[tuple[str, int, str, str]]  # (side, bar, handler, error)

    @property
    def identical(self) -> bool:
        return not (self.differences or self.revised or self.failed_only)

    def when(self, seq: int) -> str:
        if not 0 <= seq < len(self.bars):
            return "?"
        t = int(self.bars.ts_open_ns[seq] + self.bars.tf_ns) // 10**9
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    def first_divergence(self) -> tuple[int, str] | None:
        cands = [(d.bar, f"{d.stream}: {d.cause}") for d in self.differences]
        cands += [(s, f"bar revised: {what}") for s, what in self.revised]
        cands += [(b, f"handler {h} disabled ({side} only): {err}")
                  for side, b, h, err in self.failed_only]
        return min(cands, default=None)

    # -- text --------------------------------------------------------------------------------
    def text(self, show_all: bool = False) -> str:
        n, h = len(self.bars), self.first_live
        lines = [f"replay-diff {self.journal} (run {self.run_id}"
                 + (f", the last of {self.runs} in the file" if self.runs > 1 else "") + ")",
                 f"config: {self.config}{self.config_note}",
                 f"bars: {n:,} journaled: {h:,} history, {n - h:,} live (closes "
                 f"{self.when(h)} .. {self.when(n - 1)} UTC); replayed on "
                 + (f"the bars of {self.data}" if self.data else "the journaled bars")]
        for group in ("signals", "orders", "fills", "trades"):
            a, b = self.live.counts.get(group, 0), self.backtest.counts.get(group, 0)
            lines.append(f"{group}: {a} live, {b} backtest, {self.matched.get(group, 0)} matched")
        slip = [d for d in self.differences if d.kind == "value" and "slippage" in d.cause]
        if slip:
            lines.append(f"fills at another price: {len(slip)} with slippage")
        refused = self.live.counts.get("refused", 0)
        if refused:
            lines.append(f"refused orders live: {refused}")
        for b, acct, what in self.live.restarts:
            lines.append(f"restart at bar {b} ({self.when(b)} UTC), {acct}: {what}")
        lines.append(f"handlers disabled: {len(self.live.failed)} live, "
                     f"{len(self.backtest.failed)} backtest; bars revised: "
                     + (str(len(self.revised)) if self.data else "not checked (no --data)"))
        for name in sorted(set(self.live.pnl) | set(self.backtest.pnl)):
            lines.append(f"pnl {name}: {self.live.pnl.get(name, 0.0):+.2f} live, "
                         f"{self.backtest.pnl.get(name, 0.0):+.2f} backtest")
        first = self.first_divergence()
        if first is None:
            lines.append("result: identical: the backtest of the journaled bars did what the run "
                         "did")
            return "\n".join(lines) + "\n"
        lines.append(f"result: {len(self.differences) + len(self.revised) + len(self.failed_only)}"
                     f" differences; first divergence at bar {first[0]} ({self.when(first[0])} "
                     f"UTC), {first[1]}")
        if self.revised:
            lines += ["", "## bars revised after the fact (journaled vs --data)"]
            lines += [f"bar {s} ({self.when(s)}): {what}" for s, what in self.revised]
        if self.failed_only:
            lines += ["", "## handlers disabled"]
            lines += [f"bar {b} ({self.when(b)}): {h} disabled in the {side} only: {err}"
                      for side, b, h, err in self.failed_only]
        streams: dict[str, list[Difference]] = {}
        for d in self.differences:
            streams.setdefault(d.stream, []).append(d)
        for name in sorted(streams, key=lambda s: (s != "signals", s)):
            ds = streams[name]
            lines += ["", f"## {name}: {len(ds)} difference{'s' * (len(ds) != 1)}, first at bar "
                      f"{ds[0].bar} ({self.when(ds[0].bar)} UTC)"]
            shown = ds if show_all else ds[:MAX_SHOWN]
            for d in shown:
                lines.append(f"bar {d.bar} ({self.when(d.bar)}) {d.kind}: {d.cause}")
                for x in d.live:
                    lines.append(f"    live:     {x}")
                if not d.live:
                    lines.append("    live:     -")
                for x in d.backtest:
                    lines.append(f"    backtest: {x}")
                if not d.backtest:
                    lines.append("    backtest: -")
            if len(ds) > len(shown):
                lines.append(f"... and {len(ds) - len(shown)} more (--all lists them)")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        first = self.first_divergence()
        n = len(self.bars)
        return {
            "journal": str(self.journal), "run_id": self.run_id, "config": str(self.config),
            "config_note": self.config_note.strip(" ;"),
            "data": str(self.data) if self.data else None,
            "bars": {"journaled": n, "history": self.first_live, "live": n - self.first_live},
            "counts": {g: {"live": self.live.counts.get(g, 0),
                           "backtest": self.backtest.counts.get(g, 0),
                           "matched": self.matched.get(g, 0)}
                       for g in ("signals", "orders", "fills", "trades")},
            "pnl": {k: {"live": self.live.pnl.get(k, 0.0),
                        "backtest": self.backtest.pnl.get(k, 0.0)}
                    for k in sorted(set(self.live.pnl) | set(self.backtest.pnl))},
            "identical": self.identical,
            "first_divergence": None if first is None else {
                "bar": first[0], "time": self.when(first[0]), "what": first[1]},
            "revised": [{"bar": s, "time": self.when(s), "what": w} for s, w in self.revised],
            "handlers_disabled": [{"side": side, "bar": b, "handler": h, "error": err}
                                  for side, b, h, err in self.failed_only],
            "restarts": [{"bar": b, "account": a, "what": w} for b, a, w in self.live.restarts],
            "differences": [d.as_dict(self.when(d.bar)) for d in self.differences],
        }


def _affects(handler: str, stream: str) -> bool:
    """Whether disabling ``handler`` (a bus subscription name) changes ``stream``'s events."""
    if stream == "signals":
        return handler == "signals" or handler.startswith("feature:")
    tail = handler.split(":", 1)[-1]
    return (tail == stream or handler == "signals" or handler.startswith("feature:"))


class _Causes:
    """The likely cause of a difference at a bar of a stream (module docstring)."""

    def __init__(self, live: Side, revised: list[tuple[int, str]]) -> None:
        self.failed = sorted(live.failed)
        self.restarts = sorted(live.restarts)
        self.revised = sorted(s for s, _ in revised)
        # per stream: (bar, what, whether it is a fill's price alone)
        self.earlier: dict[str, list[tuple[int, str, bool]]] = {}

    def note(self, stream: str, bar: int, what: str, fill_price: bool = False) -> None:
        self.earlier.setdefault(stream, []).append((bar, what, fill_price))

    def upstream(self, stream: str, bar: int, own: bool = True, follows: bool = True,
                 skip_fill_prices: bool = False) -> str | None:
        for b, h, err in reversed(self.failed):
            if b <= bar and _affects(h, stream):
                return f"handler {h} disabled at bar {b} (HandlerFailed: {err})"
        for r, acct, what in reversed(self.restarts):
            near = r - 1 <= bar <= r + RESTART_BARS or (
                bar >= r and what.startswith("entries halted"))
            if near and acct in (stream, "signals", ""):
                return f"the run restarted at bar {r} (reconciliation of {acct}: {what})"
        rev = [s for s in self.revised if s <= bar]
        if rev:
            return f"bar {rev[-1]} revised after the fact (journaled bar differs from --data)"
        if own:
            for b, what, fill_price in self.earlier.get(stream, []):
                if b <= bar and not (skip_fill_prices and fill_price):
                    return f"follows the {what} at bar {b}"
        sig = [b for b, _, _ in self.earlier.get("signals", []) if b <= bar]
        if stream != "signals" and sig and follows:
            return f"follows the signal difference at bar {sig[0]}"
        return None


def _price_cause(side: str, live: float, bt: float) -> tuple[str, str]:
    bps = (live - bt) / bt * 1e4 if bt else math.inf
    adverse = bps > 0 if side == "buy" else bps < 0
    if adverse:
        return (f"slippage: filled {abs(bps):.2f} bps worse than the backtest's model price",
                "slippage")
    return (f"the venue filled at another price ({abs(bps):.2f} bps better than the backtest's "
            "model price)", "fill price")


def _same_values(x: Rec, y: Rec, qty_tol: float) -> bool:
    return all(_close(x.vals[k], y.vals[k], qty_tol if k == "qty" else PRICE_TOL)
               for k in x.vals.keys() & y.vals.keys())


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=tol, abs_tol=1e-12)


def compare(live: Side, backtest: Side, revised: list[tuple[int, str]],
            qty_tol: float = QTY_TOL) -> tuple[dict[str, int], list[Difference]]:
    """Align and compare each stream; (matched counts per group, differences in bar order)."""
    causes = _Causes(live, revised)
    matched: dict[str, int] = {}
    out: list[Difference] = []
    group = {"signal": "signals", "submit": "orders", "modify": "orders", "cancel": "orders",
             "fill": "fills", "trade": "trades", "refused": "refused"}
    streams = sorted(set(live.recs) | set(backtest.recs), key=lambda s: (s != "signals", s))
    for name in streams:
        a, b = live.recs.get(name, []), backtest.recs.get(name, [])
        ka = [(r.bar, r.kind, r.key) for r in a]
        kb = [(r.bar, r.kind, r.key) for r in b]
        sm = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
        items: list[tuple[int, int, Any]] = []  # (bar, order, payload) to walk in bar order
        only_a: list[Rec] = []
        only_b: list[Rec] = []
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                    items.append((x.bar, 0, ("pair", x, y)))
            else:
                only_a += a[i1:i2]
                only_b += b[j1:j2]
        # the same event a bar or two apart (e.g. a fill the venue reported a bar later): one
        # timing difference, not a missing and an extra one
        for x in list(only_a):
            near = [y for y in only_b if y.kind == x.kind and y.key == x.key
                    and 0 < abs(y.bar - x.bar) <= TIMING_BARS and _same_values(x, y, qty_tol)]
            if near:
                y = min(near, key=lambda r: abs(r.bar - x.bar))
                only_a.remove(x)
                only_b.remove(y)
                items.append((min(x.bar, y.bar), 1, ("late", x, y)))
        # one difference per bar: a hunk spanning bars reads as unrelated events
        by_bar: dict[int, tuple[list[Rec], list[Rec]]] = {}
        for r in only_a:
            by_bar.setdefault(r.bar, ([], []))[0].append(r)
        for r in only_b:
            by_bar.setdefault(r.bar, ([], []))[1].append(r)
        for bar, (la, lb) in by_bar.items():
            items.append((bar, 2, ("hunk", la, lb)))
        items.sort(key=lambda it: (it[0], it[1]))
        for bar, _, payload in items:
            if payload[0] == "pair":
                _, x, y = payload
                matched[group[x.kind]] = matched.get(group[x.kind], 0) + 1
                d = _value_diff(name, x, y, qty_tol, causes)
                if d is not None:
                    out.append(d)
                continue
            if payload[0] == "late":
                _, x, y = payload
                n = x.bar - y.bar
                when = (f"the run did this {abs(n)} bar{'s' * (abs(n) != 1)} "
                        f"{'later' if n > 0 else 'earlier'} than the backtest")
                up = causes.upstream(name, max(x.bar, y.bar), own=False, follows=False)
                out.append(Difference(
                    name, bar, "timing", [f"bar {x.bar}: {x.text}"], [f"bar {y.bar}: {y.text}"],
                    f"{up}: {when}" if up else when + (
                        " (a venue reports a fill when it is polled, and what follows a fill "
                        "moves with it; a backtest books it on its bar)"
                        if x.kind in ("fill", "cancel", "modify", "submit") else "")))
                continue
            _, la, lb = payload
            refusals = [r for r in la if r.kind == "refused"]
            kind = "extra" if not lb else "missing" if not la else "changed"
            if refusals:
                cause = f"order refused live: {refusals[0].text}"
            else:
                cause = causes.upstream(name, bar) or (
                    "missing live: the run did not do what the backtest did, and the journal "
                    "records no cause" if kind == "missing" else
                    "extra live: the run did what the backtest did not, and the journal records "
                    "no cause" if kind == "extra" else
                    "the run and the backtest did different things here, and the journal "
                    "records no cause")
            out.append(Difference(name, bar, kind, [r.text for r in la], [r.text for r in lb],
                                  cause))
            causes.note(name, bar, "signal difference" if name == "signals" else "divergence")
    out.sort(key=lambda d: (d.bar, d.stream != "signals", d.stream))
    return matched, out


def _value_diff(name: str, x: Rec, y: Rec, qty_tol: float, causes: _Causes) -> Difference | None:
    """A matched pair (live ``x``, backtest ``y``) whose values differ, with its cause."""
    changed = [k for k in x.vals.keys() & y.vals.keys()
               if not _close(x.vals[k], y.vals[k], qty_tol if k == "qty" else PRICE_TOL)]
    if not changed:
        return None
    if x.kind == "fill" and "price" in changed:
        # an earlier difference other than fill prices (a moved stop, a signal, a revised bar,
        # a restart) moves the fill price with it; else the fill itself differs
        before = causes.upstream(name, x.bar, own=True, skip_fill_prices=True)
        cause, what = _price_cause(x.key[0], x.vals["price"], y.vals["price"])
        what = "fill price difference (slippage)" if what == "slippage" else what
        if before:
            cause = f"{before}; the fill price moved with it"
            what = "fill at another price"
        if "qty" in changed:
            cause += (f"; size {_fmt(x.vals['qty'])} live vs {_fmt(y.vals['qty'])} backtest "
                      f"(beyond --qty-tol {qty_tol:g}: a venue broker sizes at its worst-price "
                      "guard and step size)")
        causes.note(name, x.bar, what, fill_price=not before)
    elif x.kind == "fill":  # the size alone: how a venue broker sizes, whatever came before
        cause = (f"size: {_fmt(x.vals['qty'])} live vs {_fmt(y.vals['qty'])} backtest "
                 f"(beyond --qty-tol {qty_tol:g}: a venue broker sizes at its worst-price guard "
                 "and step size)")
    else:
        what = f"{', '.join(sorted(changed))} differ{'s' * (len(changed) == 1)}"
        cause = causes.upstream(name, x.bar) or f"{what} and the journal records no cause"
        causes.note(name, x.bar, f"{x.kind} {'/'.join(sorted(changed))} difference")
    return Difference(name, x.bar, "value", [x.text], [y.text], cause)


# -- the whole diff -----------------------------------------------------------------------------


def bars_first(events: list[ev.Event]) -> bool:
    """Whether a journal writes each ``BarClosed`` before the bar's events (durable mode) or
    after them (a sink): told by where the signals of a bar are (else its orders)."""
    at: dict[int, int] = {}
    for i, e in enumerate(events):
        if type(e) is ev.BarClosed:
            at.setdefault(e.seq, i)
    for kind in (ev.SignalRaised, ev.SubmitOrder):
        votes = [at[e.seq] < i for i, e in enumerate(events)  # type: ignore[attr-defined]
                 if type(e) is kind and e.seq in at]  # type: ignore[attr-defined]
        if votes:
            return sum(votes) * 2 > len(votes)
    return False


def _live_side(events: list[ev.Event]) -> Side:
    c = _Collector(bar_first=bars_first(events))
    for e in events:
        c(e)
    return c.finish()


def replay_diff(journal: Path, config: Path | None = None, data: Path | None = None,
                run_id: str | None = None, qty_tol: float = QTY_TOL) -> Report:
    """Replay journal ``journal``'s run as a backtest and compare (module docstring).

    Raises:
        ConfigError: not a journal, an empty one, no config found, an invalid config.
        DataError: ``data`` does not cover the journal's bars.
    """
    run = read_journal(journal, run_id)
    if config is None:
        config = journal.parent / "config.resolved.yaml"
        if not config.is_file():
            raise ConfigError(f"{journal}: no config.resolved.yaml beside the journal (a run "
                              "that was interrupted keeps only its journal); give the run's "
                              "config with --config FILE (its config.resolved.yaml, or the YAML "
                              "it was started with and the same overrides)")
    cfg, chash = load_run_config(config)
    note = ""
    if not run.run_id.endswith(chash):
        note = (f"; note: this config's hash {chash} is not the journal's run {run.run_id}: the "
                "backtest uses another config than the run did")
    elif chash != cfg.config_hash():
        note = (f"; note: this config records the run's hash {chash} but its content hashes to "
                f"{cfg.config_hash()}: edited after the run, or written by another tradebot "
                "version (whose defaults differ)")
    if cfg.mode == "backtest":
        note += "; note: the config is a backtest's"
    bars, revised = run.bars, []
    if data is not None:
        from engine.datafile import load_bars

        if not data.is_file():
            raise ConfigError(f"--data {data}: no such file; give the candle file of the run's "
                              "symbol and timeframe")
        # gaps filled as the live feed fills them (flat bars at the previous close, no volume):
        # a bar the feed filled that the file has is a revision, one both lack is equal
        file_bars = load_bars(data, symbol=run.bars.symbol, timeframe=run.bars.timeframe,
                              gaps="fill", use_cache=False)
        bars, revised = revisions(run.bars, file_bars)
    # the replay closes at its end only if the run did (a live run never does; a killed one did
    # not get to): END_OF_DATA fills in the journal
    closed = any(type(e) is ev.OrderFilled and e.tag == "END_OF_DATA" for e in run.events)
    rcfg = replay_config(cfg, data or journal, close_at_end=closed)
    if rcfg.data.symbol and rcfg.data.symbol != bars.symbol:
        note += f"; note: the config trades {rcfg.data.symbol}, the journal {bars.symbol}"
    backtest = replay(rcfg, bars, run.first_live)
    live = _live_side(run.events)
    matched, diffs = compare(live, backtest, revised, qty_tol)
    failed_only: list[tuple[str, int, str, str]] = []
    bt_failed = {(b, h) for b, h, _ in backtest.failed}
    live_failed = {(b, h) for b, h, _ in live.failed}
    failed_only += [("live", b, h, e) for b, h, e in live.failed if (b, h) not in bt_failed]
    failed_only += [("backtest", b, h, e) for b, h, e in backtest.failed
                    if (b, h) not in live_failed]
    return Report(journal, run.run_id, run.runs, config, note, bars, run.first_live, data, live,
                  backtest, matched, diffs, revised, sorted(failed_only, key=lambda x: x[1]))
