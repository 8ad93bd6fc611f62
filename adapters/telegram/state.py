"""The front end's own view of the engine: a wire snapshot, then the events after it.

Everything ``/balance``, ``/trades``, ``/alarms``, ``/pnl`` and ``/status`` answer comes from here
(no request per command), so the bot answers even while the engine is busy. ``/positions`` asks
the bridge for a fresh snapshot (positions with their working stops are the bridge's state).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

KEEP = 500


class EngineState:
    def __init__(self, bars: int = 300) -> None:
        self.run: str | None = None
        self.mode = self.symbol = self.timeframe = "?"
        self.status: dict[str, Any] = {}
        self.status_at = 0.0  # time.monotonic() of the last status / any message
        self.bars: deque[dict[str, Any]] = deque(maxlen=bars)
        self.signals: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.fills: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.trades: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.equity: dict[str, float] = {}
        self.initial: dict[str, float] = {}
        self.positions: dict[str, Any] = {}
        self.features: dict[str, float] = {}
        self.messages = 0
        self.resyncs = 0

    def apply_snapshot(self, snap: dict[str, Any]) -> None:
        self.run = snap.get("run")
        self.mode = snap.get("mode", "?")
        self.symbol = snap.get("symbol", "?")
        self.timeframe = snap.get("timeframe", "?")
        self.status = dict(snap.get("status") or {})
        self.status_at = time.monotonic()
        self.bars.clear()
        self.bars.extend(snap.get("bars") or [])
        for name, dq in (("signals", self.signals), ("fills", self.fills),
                         ("trades", self.trades)):
            dq.clear()
            dq.extend(snap.get(name) or [])
        eq = snap.get("equity") or []
        if eq:
            self.equity = dict(eq[-1]["equity"])
            if not self.initial:
                self.initial = dict(eq[0]["equity"])
        self.positions = dict(snap.get("positions") or {})
        feats = snap.get("features") or []
        if feats:
            self.features = dict(feats[-1].get("values") or {})

    def apply(self, kind: str, msg: dict[str, Any]) -> None:
        """One wire message (already in sequence)."""
        self.messages += 1
        data = msg.get("data")
        self.status_at = time.monotonic()
        if kind == "status":
            self.status = dict(data)
            self.mode = data.get("mode", self.mode)
            self.symbol = data.get("symbol", self.symbol)
            self.timeframe = data.get("timeframe", self.timeframe)
        elif kind == "bar":
            self.bars.append(data)
            self.status["bar_seq"] = data["seq"]
            self.status["last_bar_ts"] = data["ts_event_ns"] // 1_000_000
        elif kind == "features":
            self.features = dict(data.get("values") or {})
        elif kind == "signal":
            self.signals.append(data)
        elif kind == "fill":
            self.fills.append(data)
        elif kind == "trade":
            self.trades.append(data)
        elif kind == "equity":
            self.equity = dict(data["equity"])
            if not self.initial:
                self.initial = dict(data["equity"])
        elif kind == "command" and data.get("ok") and data.get("op") in ("pause", "resume"):
            self.status["paused"] = data["op"] == "pause"

    # -- queries -----------------------------------------------------------------------------
    def alive(self, stale_s: float = 5.0) -> bool:
        return (bool(self.status.get("alive"))
                and time.monotonic() - self.status_at < stale_s)

    def last_bar_ms(self) -> int:
        return int(self.status.get("last_bar_ts") or 0)

    def alarm(self, alarm_id: str | None = None, side: str | None = None) -> dict | None:
        for s in reversed(self.signals):
            if alarm_id is not None and s["alarm_id"] != alarm_id:
                continue
            if side is not None and s["side"] != side:
                continue
            return s
        return None

    def pnl_since(self, since_ms: int) -> tuple[float, int, dict[str, float]]:
        total, n, per = 0.0, 0, {}
        for t in self.trades:
            if t["exit_ts_ns"] // 1_000_000 >= since_ms:
                total += t["pnl"]
                n += 1
                per[t["account"]] = per.get(t["account"], 0.0) + t["pnl"]
        return total, n, per

    def strategies(self) -> list[str]:
        return list(self.equity)


def fmt_price(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:,.2f}"
