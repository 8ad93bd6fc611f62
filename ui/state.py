"""The UI's view of a running engine: bounded, lock-protected, fed by the subscriber thread.

One ``UiState`` per UI process. The subscriber thread (``ui.subscriber``) is its only writer: it
applies a snapshot (``apply_snapshot``) and then every PUB message (``apply_message``). Dash
callbacks only read: ``view()`` for a full render and ``delta(cursor)`` for the items that arrived
since the browser's last update, so a figure is extended, never rebuilt, while the run goes on.

Everything here is plain Python on the wire's ``data`` dicts (WIRE.md: the field names of
``engine/events.py``); nothing imports the engine's internals, so the functions are tested
without sockets or a browser.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

_TF = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar in ms (``"15m"`` -> 900000); 0 when the text is not understood."""
    m = _TF.match(timeframe or "")
    return int(m.group(1)) * _UNIT_MS[m.group(2)] if m else 0


def fmt_time(ms: int | float) -> str:
    """``YYYY-MM-DD HH:MM`` UTC: the x values of every chart (plotly reads them as dates)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


class Log:
    """An append-only log bounded to ``maxlen`` items, addressed by a global index.

    ``since(k)`` returns the items with global index ``>= k``; when some of them were already
    dropped (the browser fell too far behind) ``truncated`` is true and the caller re-renders.
    """

    __slots__ = ("items", "total")

    def __init__(self, maxlen: int) -> None:
        self.items: deque[Any] = deque(maxlen=maxlen)
        self.total = 0

    def append(self, item: Any) -> None:
        self.items.append(item)
        self.total += 1

    def since(self, k: int) -> tuple[list[Any], bool]:
        first = self.total - len(self.items)
        if k >= self.total:
            return [], False
        if k < first:
            return list(self.items), True
        # from the right end: a few new items, not a copy of the whole log on every poll
        out = list(islice(reversed(self.items), self.total - k))
        out.reverse()
        return out, False

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Bar:
    seq: int
    x: str  # open time, formatted
    t_ms: int  # open time
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class Levels:
    """A working stop or target of one strategy at one price from bar ``x`` to ``x_end``: one
    segment per price it held (a moved stop starts a new one), not one per bar."""

    seq: int  # the last bar it covers
    x: str  # open time of its first bar
    x_end: str  # close time of its last bar
    account: str
    kind: str  # "stop" | "target"
    price: float


LOG_NAMES = ("bars", "features", "signals", "fills", "levels", "equity")


@dataclass
class Conn:
    state: str = "connecting"  # connecting | live | stale | disconnected
    last_msg_wall: float = 0.0  # time.time() of the last message
    lag_ms: float = math.nan  # receive time minus publish ts of the last message
    snapshots: int = 0
    gaps: int = 0
    reconnects: int = 0
    error: str = ""


@dataclass
class UiState:
    """Bounded state of one engine run as the UI knows it (see the module docstring)."""

    max_bars: int = 10_000
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.conn = Conn()
        self.changed = threading.Condition(self.lock)  # notified on every bar and snapshot
        self._reset()

    # -- lifecycle -------------------------------------------------------------------------------
    def _reset(self) -> None:
        n = self.max_bars
        self.gen = getattr(self, "gen", 0) + 1  # bumps on every snapshot: browsers re-render
        self.run = ""
        self.mode = ""
        self.symbol = ""
        self.timeframe = ""
        self.tf_ms = 0
        self.seq = 0  # last applied wire seq
        self.status: dict[str, Any] = {}
        self.setups: dict[str, Any] = {}
        self.bars_by_seq: OrderedDict[int, Bar] = OrderedDict()
        self.logs: dict[str, Log] = {
            "bars": Log(n), "features": Log(n), "signals": Log(2000), "fills": Log(5000),
            "levels": Log(4 * n), "equity": Log(n),
        }
        self.features: dict[int, dict[str, float]] = {}
        self.signals: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.trades: deque[dict[str, Any]] = deque(maxlen=5000)
        self.equity: dict[str, list[tuple[int, float]]] = {}
        self.accounts: list[str] = []
        self.positions: dict[str, dict[str, float]] = {}
        self.orders: dict[str, dict[str, Any]] = {}  # working reduce-only children per order id
        self.last_x_end = ""  # close time of the last bar
        self.last_seq = -1
        self.last_bar_wall = 0.0  # time.time() the last bar arrived
        self.last_bar_complete = True  # its last message (equity) arrived too
        self.pending: dict[str, dict[str, Any]] = {}  # entry id -> attached stop/target
        self.commands: deque[dict[str, Any]] = deque(maxlen=50)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=50)

    def apply_snapshot(self, reply: dict[str, Any]) -> None:
        """Replace everything with a snapshot reply (WIRE.md ``op: snapshot``)."""
        snap = reply.get("snapshot") or {}
        with self.lock:
            self._reset()
            self.run = str(snap.get("run", ""))
            self.mode = str(snap.get("mode", ""))
            self.symbol = str(snap.get("symbol", ""))
            self.timeframe = str(snap.get("timeframe", ""))
            self.tf_ms = timeframe_ms(self.timeframe)
            self.status = dict(snap.get("status") or {})
            self.setups = dict(snap.get("setups") or {})
            for kind, data in _timeline(snap):
                if kind == "bar":
                    self._bar(data)
                elif kind == "features":
                    self._features(data)
                elif kind == "equity":
                    self._equity(data)
                elif kind == "signal":
                    self._signal(data)
                elif kind == "order":
                    typ, d = ((data["type"], data["data"]) if "data" in data
                              else (_order_type(data), data))
                    self._order(typ, d)
                elif kind == "fill":
                    self._fill(data)
                elif kind == "trade":
                    self._trade(data)
            positions = snap.get("positions")
            if isinstance(positions, dict):  # authoritative: open positions, flat otherwise
                for acct in self.accounts:
                    self.positions[acct] = {"qty": 0.0, "entry": math.nan}
                for oid in list(self.orders):
                    self._drop_order(oid)
                for acct, pos in positions.items():
                    if not isinstance(pos, dict):
                        continue
                    self._account(acct)
                    qty = abs(_f(pos.get("qty", 0.0)))
                    self.positions[acct] = {
                        "qty": -qty if pos.get("side") == "short" else qty,
                        "entry": _f(pos.get("entry_price", pos.get("entry", math.nan)))}
                    for o in pos.get("orders") or ():
                        if o.get("type") in ("stop", "limit"):
                            self.orders[str(o.get("order_id"))] = {
                                "account": acct, "price": _f(o.get("price")), "active": True,
                                "x0": self.last_x_end and next(reversed(
                                    self.bars_by_seq.values())).x,
                                "kind": "stop" if o["type"] == "stop" else "target"}
            self.seq = int(reply.get("seq", 0))
            self.changed.notify_all()
            self.conn.snapshots += 1
            self.conn.state = "live"
            self.conn.last_msg_wall = time.time()

    # -- messages ---------------------------------------------------------------------------------
    def check(self, msg: dict[str, Any]) -> str:
        """What to do with a PUB message: ``apply``, ``drop`` (already in the snapshot) or
        ``resync`` (another run, or a gap in the sequence)."""
        run, seq = str(msg.get("run", "")), int(msg.get("seq", 0))
        with self.lock:
            if not self.run or run != self.run:
                return "resync"
            if seq <= self.seq:
                return "drop" if seq > 0 else "resync"
            if seq != self.seq + 1:
                return "resync"
            return "apply"

    def apply_message(self, topic: str, msg: dict[str, Any], now: float | None = None) -> str:
        """Check and apply one decoded PUB payload; return what ``check`` said."""
        verdict = self.check(msg)
        now = time.time() if now is None else now
        with self.lock:
            self.conn.last_msg_wall = now
            ts = msg.get("ts")
            if topic.startswith("status.") and isinstance(ts, int | float):
                # the heartbeat's ts is the publisher's clock (an event's is market time)
                self.conn.lag_ms = max(0.0, now * 1000 - ts)
            if verdict != "apply":
                if verdict == "resync" and self.run and str(msg.get("run", "")) == self.run:
                    self.conn.gaps += 1
                return verdict
            self.seq = int(msg["seq"])
            self.conn.state = "live"
            kind = topic.split(".", 1)[0]
            data = msg.get("data") or {}
            typ = str(msg.get("type", ""))
            if kind == "bar":
                self._bar(data)
            elif kind == "features":
                self._features(data)
            elif kind == "signal":
                self._signal(data)
            elif kind == "order":
                self._order(typ, data)
            elif kind == "fill":
                self._fill(data)
            elif kind == "trade":
                self._trade(data)
            elif kind == "equity":
                self._equity(data)
            elif kind == "status":
                self.status.update(data)
                self.mode = str(data.get("mode", self.mode))
            elif kind == "command":
                self.commands.append(data)
            elif kind == "alert":
                self.alerts.append({"type": typ, **data})
            return verdict

    # -- appliers (lock held) ----------------------------------------------------------------------
    def _account(self, name: str) -> None:
        if name and name not in self.accounts:
            self.accounts.append(name)

    def _bar(self, d: dict[str, Any]) -> None:
        seq = int(d["seq"])
        if seq in self.bars_by_seq:
            return
        if self.bars_by_seq and seq < next(reversed(self.bars_by_seq)):
            return  # out of order: bars only move forward
        t_close = int(d.get("ts_event_ns", 0)) // 1_000_000
        if not self.timeframe:
            self.timeframe = str(d.get("timeframe", ""))
            self.tf_ms = timeframe_ms(self.timeframe)
        self.symbol = self.symbol or str(d.get("symbol", ""))
        t_open = t_close - self.tf_ms
        bar = Bar(seq, fmt_time(t_open), t_open, _f(d["open"]), _f(d["high"]), _f(d["low"]),
                  _f(d["close"]), _f(d["volume"]))
        self.bars_by_seq[seq] = bar
        while len(self.bars_by_seq) > self.max_bars:
            old, _ = self.bars_by_seq.popitem(last=False)
            self.features.pop(old, None)
        self.logs["bars"].append(bar)
        self.last_bar_wall = time.time()
        self.last_bar_complete = False
        self.changed.notify_all()
        self.last_x_end = fmt_time(t_open + self.tf_ms) if self.tf_ms else bar.x
        self.last_seq = seq
        for order in self.orders.values():  # working stops/targets start their run here
            if order["active"] and order.get("x0") is None:
                order["x0"] = bar.x

    def _end_run(self, order: dict[str, Any] | None) -> None:
        """Close an order's current run at the last bar (it moved, filled or went away)."""
        if order is None or order.get("x0") is None:
            return
        if math.isfinite(order["price"]) and self.last_x_end:
            self.logs["levels"].append(Levels(self.last_seq, order["x0"], self.last_x_end,
                                              order["account"], order["kind"], order["price"]))
        order["x0"] = None

    def _drop_order(self, oid: str) -> None:
        self._end_run(self.orders.pop(oid, None))

    def live_levels(self) -> list[Levels]:
        """The runs still going: each working stop/target from its start to the last bar."""
        with self.lock:
            return [Levels(self.last_seq, o["x0"], self.last_x_end, o["account"], o["kind"],
                           o["price"]) for o in self.orders.values()
                    if o["active"] and o.get("x0") is not None and math.isfinite(o["price"])]

    def _features(self, d: dict[str, Any]) -> None:
        seq = int(d.get("bar_seq", -1))
        vals = {k: _f(v) for k, v in (d.get("values") or {}).items()}
        self.features[seq] = vals
        self.logs["features"].append((seq, vals))

    def _signal(self, d: dict[str, Any]) -> None:
        aid = str(d.get("alarm_id", ""))
        if not aid or aid in self.signals:
            return
        self.signals[aid] = d
        while len(self.signals) > 2000:
            self.signals.popitem(last=False)
        self.logs["signals"].append(d)

    def _order(self, typ: str, d: dict[str, Any]) -> None:
        oid = str(d.get("order_id", ""))
        acct = str(d.get("account", ""))
        self._account(acct)
        if typ == "SubmitOrder":
            if d.get("reduce_only") and d.get("type") in ("stop", "limit"):
                self.orders[oid] = {"account": acct, "kind": "stop" if d["type"] == "stop"
                                    else "target", "price": _f(d.get("price")), "active": True}
            elif not d.get("reduce_only"):
                att = {}
                for key, kind, suffix in (("stop_loss", "stop", "-stop_loss"),
                                          ("take_profit", "target", "-take_profit")):
                    p = _f(d.get(key))
                    if math.isfinite(p):
                        att[oid + suffix] = {"account": acct, "kind": kind, "price": p,
                                             "active": False}
                if att:
                    self.pending[oid] = att
        elif typ == "ModifyOrder":
            if oid in self.orders:
                order = self.orders[oid]
                price = _f(d.get("price"))
                if price != order["price"]:
                    self._end_run(order)  # the moved level starts a new run at the next bar
                order["price"] = price
            else:  # a child whose parent we have not seen filled yet
                for att in self.pending.values():
                    if oid in att:
                        att[oid]["price"] = _f(d.get("price"))
        elif typ in ("CancelOrder", "OrderCanceled"):
            self._drop_order(oid)
            self.pending.pop(oid, None)

    def _fill(self, d: dict[str, Any]) -> None:
        oid = str(d.get("order_id", ""))
        acct = str(d.get("account", ""))
        self._account(acct)
        qty, price = _f(d.get("qty")), _f(d.get("price"))
        signed = qty if d.get("side") == "buy" else -qty
        pos = self.positions.setdefault(acct, {"qty": 0.0, "entry": math.nan})
        old = pos["qty"]
        new = old + signed
        if abs(new) < 1e-12:
            pos["qty"], pos["entry"] = 0.0, math.nan
        elif old == 0 or (old > 0) != (new > 0):
            pos["qty"], pos["entry"] = new, price
        elif abs(new) > abs(old):  # adding: average the entry
            pos["entry"] = (pos["entry"] * abs(old) + price * qty) / abs(new)
            pos["qty"] = new
        else:
            pos["qty"] = new
        self._drop_order(oid)
        if oid in self.pending:  # an entry filled: its attached stop/target start working
            for cid, child in self.pending.pop(oid).items():
                child["active"] = True
                self.orders[cid] = child
        if pos["qty"] == 0.0:  # flat: what protected the position is gone
            for cid in [k for k, o in self.orders.items() if o["account"] == acct]:
                self._drop_order(cid)
        bar = self.bars_by_seq.get(int(d.get("seq", -1)))
        entry = str(d.get("tag", "")).upper() in ("ENTRY", "MANUAL_ENTRY") or (
            abs(new) > abs(old) and str(d.get("tag", "")) == "")
        self.logs["fills"].append({**d, "x": bar.x if bar else None, "is_entry": entry})

    def _trade(self, d: dict[str, Any]) -> None:
        self._account(str(d.get("account", "")))
        self.trades.append(d)

    def _equity(self, d: dict[str, Any]) -> None:
        seq = int(d.get("bar_seq", -1))
        eq = {str(k): _f(v) for k, v in (d.get("equity") or {}).items()}
        for name, value in eq.items():
            self._account(name)
            series = self.equity.setdefault(name, [])
            series.append((seq, value))
            if len(series) > self.max_bars:
                del series[: len(series) - self.max_bars]
        bar = self.bars_by_seq.get(seq)
        self.logs["equity"].append((seq, bar.x if bar else None, eq))
        if seq == self.last_seq and not self.last_bar_complete:
            self.last_bar_complete = True  # a bar's messages end with its equity (WIRE.md)
            self.changed.notify_all()

    # -- reading (callbacks) ---------------------------------------------------------------------
    def wait_bars(self, since: str, timeout_s: float) -> str:
        """Block until the bars differ from ``since`` (a previous return value: snapshot
        generation and bars received) or ``timeout_s`` passed; return the current value."""
        def now() -> str:
            return f"{self.gen}:{self.logs['bars'].total}:{int(self.last_bar_complete)}"

        with self.changed:
            self.changed.wait_for(lambda: now() != since, timeout=timeout_s)
            return now()

    def last_bar_ready(self, grace_s: float = 0.15, now: float | None = None) -> bool:
        """Whether the last bar's messages are all here (its equity came), or it came more than
        ``grace_s`` ago (a publisher without equity messages): one update per bar, not one for
        the bar and another for its features."""
        now = time.time() if now is None else now
        with self.lock:
            return self.last_bar_complete or now - self.last_bar_wall > grace_s

    def cursor(self) -> dict[str, int]:
        """Where a full render leaves the browser: pass it to ``delta`` next time."""
        with self.lock:
            return {"gen": self.gen, **{k: self.logs[k].total for k in LOG_NAMES}}

    def view(self, lo: int | None = None, hi: int | None = None, max_candles: int = 0
             ) -> tuple[dict[str, Any], dict[str, int]]:
        """Everything the figures need for a full render, and the matching cursor.

        ``lo``/``hi``: only the bars with ``lo <= seq <= hi`` (``None``: no bound), with the
        features, markers and stop/target runs among them (the working ones only when the window
        reaches the last bar). ``max_candles``: more bars than that are drawn as candles of ``k``
        bars each (``view["k"]``; features sampled at each bucket's last bar): a zoomed-out view of
        10,000 bars stays a light figure. Markers keep their own bar's time.
        """
        with self.lock:
            bars = list(self.bars_by_seq.values())
            if lo is not None or hi is not None:
                lo_ = -math.inf if lo is None else lo
                hi_ = math.inf if hi is None else hi
                bars = [b for b in bars if lo_ <= b.seq <= hi_]
            keep = {b.seq for b in bars}
            first = bars[0].seq if bars else 0
            last = bars[-1].seq if bars else -1
            last_x = self.last_x_end if hi is None or not bars else bars[-1].x
            k = max(1, math.ceil(len(bars) / max_candles)) if max_candles else 1
            feats = [(s, v) for s, v in self.logs["features"].items if s in keep]
            if k > 1:
                tails = {bars[min(i + k, len(bars)) - 1].seq for i in range(0, len(bars), k)}
                feats = [(s, v) for s, v in feats if s in tails]
            out = {
                "bars": bars if k == 1 else _buckets(bars, k),
                "features": feats,
                "signals": [s for s in self.signals.values()
                            if first <= int(s.get("seq", -1)) <= last],
                "fills": [f for f in self.logs["fills"].items if f["x"] is not None
                          and first <= int(f.get("seq", -1)) <= last],
                "levels": [lv for lv in self.logs["levels"].items
                           if lv.seq >= first and lv.x <= last_x],
                "live_levels": self.live_levels() if hi is None else [],
                "equity": list(self.logs["equity"].items),
                "accounts": list(self.accounts),
                "x_of": {b.seq: b.x for b in bars},
                "k": k,
                "window": {"lo": first if lo is not None else None, "hi": hi, "k": k,
                           "n": len(bars)},
            }
            return out, self.cursor()

    def window(self, n_visible: int, x_range: list[Any] | None = None,
               slack: float = 0.5) -> dict[str, Any] | None:
        """The bars a browser should hold to show ``x_range`` (None: follow the last
        ``n_visible`` bars), with ``slack`` of the range's width on each side so that a short pan
        needs nothing new: ``{"lo", "hi" (None: up to the last bar, extended as bars arrive),
        "ranges": (x range, price range fitted to the bars inside x range)}``."""
        with self.lock:
            bars = list(self.bars_by_seq.values())
        if not bars:
            return None
        if x_range is None:
            k = min(len(bars), max(1, int(n_visible * (1 + slack))))
            return {"lo": bars[-k].seq, "hi": None, "ranges": self.visible_range(n_visible)}
        t0, t1 = (parse_x(v) for v in x_range[:2])
        if t0 is None or t1 is None:
            return None
        t0, t1 = min(t0, t1), max(t0, t1)
        span = max(t1 - t0, self.tf_ms or 1)
        ts = [b.t_ms for b in bars]
        i = bisect.bisect_left(ts, t0 - span * slack)
        j = bisect.bisect_right(ts, t1 + span * slack)
        i = min(i, len(bars) - 1)  # a range past the data: the nearest bar at least
        j = max(j, i + 1)
        inside = bars[bisect.bisect_left(ts, t0 - (self.tf_ms or 0)):bisect.bisect_right(ts, t1)]
        y = None
        if inside:
            lo_p, hi_p = min(b.low for b in inside), max(b.high for b in inside)
            pad = (hi_p - lo_p) * 0.05 or hi_p * 0.01 or 1.0
            y = [lo_p - pad, hi_p + pad]
        return {"lo": bars[i].seq, "hi": None if j >= len(bars) else bars[j - 1].seq,
                "ranges": ([x_range[0], x_range[1]], y)}

    def delta(self, cursor: dict[str, int] | None) -> tuple[dict[str, Any] | None, dict[str, int]]:
        """What arrived since ``cursor``: ``(None, cursor)`` when the browser must re-render
        (another snapshot, or it fell behind the bounded logs)."""
        with self.lock:
            if not cursor or cursor.get("gen") != self.gen:
                return None, cursor or {}
            out: dict[str, Any] = {}
            for k in LOG_NAMES:
                items, truncated = self.logs[k].since(int(cursor.get(k, 0)))
                if truncated:
                    return None, cursor
                out[k] = items
            out["x_of"] = {b.seq: b.x for b in out["bars"]}
            for seq, _ in out["features"]:
                b = self.bars_by_seq.get(seq)
                if b is not None:
                    out["x_of"][seq] = b.x
            for s in out["signals"]:
                b = self.bars_by_seq.get(int(s.get("seq", -1)))
                if b is not None:
                    out["x_of"][b.seq] = b.x
            out["accounts"] = list(self.accounts)
            out["live_levels"] = self.live_levels()
            return out, self.cursor()

    def visible_range(self, n: int) -> tuple[list[str], list[float]] | None:
        """x and y ranges showing the last ``n`` bars (y: their low..high plus 5 %)."""
        with self.lock:
            if not self.bars_by_seq:
                return None
            bars = list(islice(reversed(self.bars_by_seq.values()), max(1, n)))[::-1]
        lo = min(b.low for b in bars)
        hi = max(b.high for b in bars)
        pad = (hi - lo) * 0.05 or hi * 0.01 or 1.0
        half = self.tf_ms / 2 if self.tf_ms else 0
        x0 = fmt_time(bars[0].t_ms - half)
        x1 = fmt_time(bars[-1].t_ms + half + self.tf_ms * 2)
        return [x0, x1], [lo - pad, hi + pad]

    def table(self) -> list[dict[str, Any]]:
        """One row per strategy: equity, open PnL, trades, win rate, max drawdown."""
        with self.lock:
            last = next(reversed(self.bars_by_seq.values())).close if self.bars_by_seq else math.nan
            rows = []
            for acct in self.accounts:
                series = self.equity.get(acct, [])
                eq = series[-1][1] if series else math.nan
                peak, dd = -math.inf, 0.0
                for _, v in series:
                    peak = max(peak, v)
                    if peak > 0:
                        dd = max(dd, (peak - v) / peak)
                trades = [t for t in self.trades if t.get("account") == acct]
                wins = sum(1 for t in trades if _f(t.get("pnl")) > 0)
                pos = self.positions.get(acct, {"qty": 0.0, "entry": math.nan})
                open_pnl = pos["qty"] * (last - pos["entry"]) if pos["qty"] else 0.0
                rows.append({
                    "strategy": acct,
                    "equity": round(eq, 2) if math.isfinite(eq) else None,
                    "position": round(pos["qty"], 6),
                    "open_pnl": round(open_pnl, 2) if math.isfinite(open_pnl) else None,
                    "trades": len(trades),
                    "win_rate_pct": round(100 * wins / len(trades), 1) if trades else None,
                    "max_dd_pct": round(100 * dd, 2),
                })
            return rows

    def status_line(self, now: float | None = None) -> dict[str, Any]:
        """Mode, symbol, last bar, connection state and lag, engine alive, paused."""
        now = time.time() if now is None else now
        with self.lock:
            last = next(reversed(self.bars_by_seq.values())) if self.bars_by_seq else None
            since = now - self.conn.last_msg_wall if self.conn.last_msg_wall else math.inf
            return {
                "mode": self.status.get("mode", self.mode) or "?",
                "symbol": self.symbol or self.status.get("symbol", "?"),
                "last_bar": last.x if last else "-",
                "bars": len(self.bars_by_seq),
                "conn": self.conn.state,
                "lag_ms": self.conn.lag_ms,
                "since_s": since,
                "alive": bool(self.status.get("alive", False)) and since < 5.0,
                "paused": bool(self.status.get("paused", False)),
                "finished": bool(self.status.get("finished", False)),
                "run": self.run,
                "seq": self.seq,
                "snapshots": self.conn.snapshots,
                "gaps": self.conn.gaps,
            }

    def signal(self, alarm_id: str | None) -> dict[str, Any] | None:
        with self.lock:
            if alarm_id:
                return self.signals.get(alarm_id)
            return next(reversed(self.signals.values())) if self.signals else None

    def recent_bars(self, n: int) -> list[Bar]:
        with self.lock:
            return list(self.bars_by_seq.values())[-n:]

    def last_features(self) -> dict[str, float]:
        with self.lock:
            for seq in reversed(self.bars_by_seq):
                if seq in self.features:
                    return dict(self.features[seq])
            return {}


def parse_x(v: Any) -> float | None:
    """A chart x value (``"2024-01-05 12:30"``, Plotly's ``"2024-01-05 12:30:41.25"``, epoch
    ms) as ms UTC; None when it is not a time."""
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    try:
        text = str(v).strip().replace("T", " ")
        if "." in text:  # Plotly sends up to 4+ fractional digits
            head, frac = text.split(".", 1)
            text = head + "." + (frac + "000000")[:6]
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp() * 1000.0


def _buckets(bars: list[Bar], k: int) -> list[Bar]:
    """Candles of ``k`` bars each (open of the first, high/low of all, close of the last, summed
    volume), at the first bar's time."""
    out = []
    for i in range(0, len(bars), k):
        grp = bars[i:i + k]
        out.append(Bar(grp[-1].seq, grp[0].x, grp[0].t_ms, grp[0].open,
                       max(b.high for b in grp), min(b.low for b in grp), grp[-1].close,
                       sum(b.volume for b in grp)))
    return out


def _timeline(snap: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The snapshot's lists merged back into publish order (by event time; at one time the bar
    first, then its features and equity, then what strategies did), so that the working stops
    and targets are replayed bar by bar."""
    bar_ts = {int(b["seq"]): int(b.get("ts_event_ns", 0)) for b in snap.get("bars") or ()}
    items: list[tuple[int, int, int, str, dict[str, Any]]] = []
    n = 0
    rank = {"bar": 0, "features": 1, "equity": 2, "signal": 3, "order": 4, "fill": 4,
            "trade": 5}
    for key, kind in (("bars", "bar"), ("features", "features"), ("equity", "equity"),
                      ("signals", "signal"), ("orders", "order"), ("fills", "fill"),
                      ("trades", "trade")):
        for d in snap.get(key) or ():
            if kind in ("features", "equity"):
                ts = bar_ts.get(int(d.get("bar_seq", -1)), 0)
            else:
                ts = int((d.get("data", d) if kind == "order" else d).get("ts_event_ns", 0))
            items.append((ts, rank[kind], n, kind, d))
            n += 1
    items.sort(key=lambda t: t[:3])
    return [(kind, d) for _, _, _, kind, d in items]


def _order_type(d: dict[str, Any]) -> str:
    """The event class of an order dict in a snapshot (the bridge sends events' fields only)."""
    if "equity_frac" in d or "reduce_only" in d:
        return "SubmitOrder"
    if "side" in d and "type" in d:
        return "OrderAccepted"
    if "price" in d:
        return "ModifyOrder"
    return "OrderCanceled"


def find_columns(names: Iterable[str]) -> dict[str, str]:
    """Map the chart's roles to feature column names (the FeatureStore's ids are configurable:
    ``vp_poc`` or ``profile_poc``, ``stoch_chart_s9``, ``linreg_100_intercept``, ``cnn_p_buy``)."""
    names = list(names)
    out: dict[str, str] = {}
    rules = [
        ("poc", r"_poc$"), ("vah", r"_vah$"), ("val", r"_val$"),
        ("hvn_below", r"_hvn_below$"), ("hvn_above", r"_hvn_above$"),
        ("reg_mid", r"^linreg.*_intercept$"), ("reg_std", r"^linreg.*_std$"),
        ("s9", r"_s9$"), ("s14", r"_s14$"), ("s40", r"_s40$"), ("s60", r"_s60$"),
        ("p_buy", r"_p_buy$"), ("p_sell", r"_p_sell$"), ("p_hold", r"_p_hold$"),
    ]
    for role, pat in rules:
        for n in names:
            if re.search(pat, n):
                out[role] = n
                break
    if "reg_mid" not in out:
        for n in names:
            if n.endswith("_intercept"):
                out["reg_mid"] = n
                out.setdefault("reg_std", n[: -len("intercept")] + "std")
                break
    return out
