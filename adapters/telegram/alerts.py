"""Engine event -> alert text (plain text: no Markdown to escape), and the alert chart.

Every builder returns ``(kind, key, text)``: ``kind`` is the alert kind of the config
(``telegram.mute`` / ``telegram.routes``: signal, fill, stop, trade, alert, command, summary),
``key`` the deduplication key in the outbox (a signal's alarm id, a fill's order id, ...).
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from typing import Any

from adapters.telegram.state import EngineState, fmt_price

KINDS = ("signal", "fill", "stop", "trade", "alert", "command", "summary")
Alert = tuple[str, str, str]


def _ts(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def signal_text(sig: dict[str, Any], setup: dict[str, Any] | None, symbol: str,
                timeframe: str) -> str:
    side = "LONG" if sig["side"] == "long" else "SHORT"
    lines = [f"🔔 {side} signal {symbol} {timeframe}",
             f"alarm: {sig['alarm_id']} ({sig['rule']})",
             f"price: {fmt_price(sig['entry_price'])}   stop: {fmt_price(sig['stop_price'])}"
             f"   ATR: {fmt_price(sig['atr'])}",
             f"bar: {_ts(sig['ts_event_ns'] // 1_000_000)}"]
    conf = sig.get("confidence")
    if isinstance(conf, float) and math.isfinite(conf):
        lines.append(f"confidence: {conf:.0%}")
    strategies = (setup or {}).get("strategies") or {}
    if strategies:
        lines.append("")
        lines.append("setups:")
        for name, s in strategies.items():
            tg = ", ".join(fmt_price(t) for t in s["targets"]) or "-"
            rr = ", ".join(f"{r:.2f}" for r in s["rr"] if r is not None) or "-"
            lines.append(f"  {name}: entry {fmt_price(s['entry'])} stop {fmt_price(s['stop'])}"
                         f" targets {tg} R:R {rr}")
    prof = (setup or {}).get("profile")
    if prof:
        lines.append(f"value area {fmt_price(prof['val'])} - {fmt_price(prof['vah'])}, "
                     f"POC {fmt_price(prof['poc'])}")
    lines.append("")
    lines.append(f"/buy {sig['alarm_id']}" if sig["side"] == "long"
                 else f"/sell {sig['alarm_id']}")
    return "\n".join(lines)


# OrderCanceled reasons that are alerts (the others are the engine's own cancels: a stop no longer
# needed once the position closed, a replaced stop, ...): engine/risk.py, adapters/apex/broker.py
REFUSALS = ("risk:", "not placed:", "halted:", "canceled by the venue:",
            "cancel refused by the venue:")


def event_alert(kind: str, msg: dict[str, Any]) -> Alert | None:
    """The alert of one wire message (``None``: not alert-worthy). Signals: ``signal_text``."""
    d, t = msg["data"], msg.get("type", "")
    if kind == "fill":
        tag = f" ({d['tag']})" if d.get("tag") else ""
        return ("fill", f"fill-{d['order_id']}-{d['seq']}",
                f"✅ Filled {d['account']}: {d['side']} {d['qty']:.6g} @ "
                f"{fmt_price(d['price'])}{tag}, fee {d['fee']:.2f}")
    if kind == "order" and t == "OrderCanceled" and d.get("reason", "").startswith("confirm:") \
            and " skipped" not in d["reason"]:
        # alert-first (engine/confirm.py): an entry held for a tap was dropped (a skip is
        # answered in the chat already)
        return ("signal", f"confirm-{d['order_id']}",
                f"✖️ Not entered {d['account']}: {d['reason'][len('confirm:'):].strip()}")
    if kind == "order" and t == "OrderCanceled" and d.get("reason", "").startswith(REFUSALS):
        # an order the engine wanted and did not get: a risk limit, the venue unreachable after
        # its retries, entries halted by reconciliation, or the venue canceling it
        return ("alert", f"refused-{d['account']}-{d['order_id']}",
                f"⛔ Order {d['order_id']} of {d['account']} not working: {d['reason']}")
    if kind == "order" and t == "ModifyOrder":
        why = f" ({d['reason']})" if d.get("reason") else ""
        return ("stop", f"mod-{d['order_id']}-{d['price']!r}",
                f"↕️ Stop moved {d['account']}: {fmt_price(d['price'])}{why}")
    if kind == "trade":
        notional = d["entry_price"] * d["qty"]
        pct = d["pnl"] / notional * 100 if notional else 0.0
        icon = "💰" if d["pnl"] >= 0 else "🔻"
        return ("trade", f"trade-{d['account']}-{d['entry_seq']}-{d['exit_seq']}",
                f"{icon} Trade closed {d['account']}: {d['side']} "
                f"{fmt_price(d['entry_price'])} -> {fmt_price(d['exit_price'])} "
                f"({d['exit_reason']})\nPnL {d['pnl']:+,.2f} ({pct:+.2f}%), fees "
                f"{d['fees']:.2f}")
    if kind == "alert":
        if t == "HandlerFailed":
            text = f"⚠️ Handler {d['handler']} failed and is disabled: {d['error']}"
        else:
            text = f"⚠️ {t}: " + ", ".join(f"{k}={v}" for k, v in d.items()
                                          if not k.startswith("ts_"))
        return ("alert", f"alert-{msg['run']}-{msg['seq']}", text)
    if kind == "command":
        verdict = "applied" if d["ok"] else f"refused: {d['error']}"
        return ("command", f"cmd-{d['request_id']}", f"⚙️ {d['op']} {verdict}")
    return None


def summary_text(state: EngineState, day_start_ms: int) -> str:
    total, n, per = state.pnl_since(day_start_ms)
    lines = [f"📊 Daily summary {state.symbol} ({_ts(day_start_ms)[:10]})",
             f"trades closed: {n}, PnL {total:+,.2f}"]
    for name, v in sorted(per.items()):
        lines.append(f"  {name}: {v:+,.2f}")
    if state.equity:
        lines.append("equity: " + ", ".join(f"{k} {v:,.2f}" for k, v in state.equity.items()))
    return "\n".join(lines)


def chart_caption(sig: dict[str, Any]) -> str:
    """The caption of a signal's chart (sent after the signal's text)."""
    return (f"📈 {sig['side'].upper()} {sig['alarm_id']}\n"
            f"entry {fmt_price(sig['entry_price'])} stop {fmt_price(sig['stop_price'])}")


def chart_png(bars: list[dict[str, Any]], sig: dict[str, Any],
              setup: dict[str, Any] | None = None) -> bytes:
    """Candles, the value area and POC at the signal, the signal's entry, stop and targets."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    bars = [b for b in bars if b["seq"] <= sig["seq"]]
    fig = Figure(figsize=(8, 4.5), dpi=80)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.92, bottom=0.08)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(bars)))
    if bars:
        colors = ["#26a69a" if b["close"] >= b["open"] else "#ef5350" for b in bars]
        ax.vlines(xs, [b["low"] for b in bars], [b["high"] for b in bars], colors=colors,
                  linewidth=0.8)
        lo = [min(b["open"], b["close"]) for b in bars]
        height = [max(abs(b["close"] - b["open"]), 1e-9) for b in bars]
        # bodies as thick lines (one LineCollection; bar() makes a patch per candle: slow)
        body_pt = max(1.0, 0.7 * 500 / max(len(bars) + 3, 10))
        ax.vlines(xs, lo, [a + h for a, h in zip(lo, height, strict=True)], colors=colors,
                  linewidth=body_pt)
    prof = (setup or {}).get("profile")
    if prof:
        ax.axhspan(prof["val"], prof["vah"], color="#5c6bc0", alpha=0.12, label="value area")
        ax.axhline(prof["poc"], color="#5c6bc0", linewidth=1.2, label="POC")
    x = xs[-1] if xs else 0
    long = sig["side"] == "long"
    ax.scatter([x], [sig["entry_price"]], marker="^" if long else "v", s=120,
               color="#1b5e20" if long else "#b71c1c", zorder=5,
               label=f"{sig['side']} {sig['alarm_id']}")
    ax.axhline(sig["stop_price"], color="#b71c1c", linestyle="--", linewidth=0.9, label="stop")
    for t in sig.get("targets") or []:
        ax.axhline(t, color="#1b5e20", linestyle=":", linewidth=0.9)
    ax.set_title(f"{sig['symbol']} {sig['timeframe']}  {sig['side'].upper()} "
                 f"{fmt_price(sig['entry_price'])}")
    ax.set_xlim(-1, max(x + 2, 10))
    ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def chart_worker_init(parent: int) -> None:
    """In the chart process: exit when the bot that started it is gone (a bot killed outright
    cannot shut its pool down, and an orphan would hold the run's terminal and pipes), and run
    at a lower CPU priority."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    # below the bot and the engine: a chart can wait, a text alert or a bar should not
    os.nice(10)


def warm_up() -> None:
    """Draw a throw-away chart (imports, fonts): the first real alert is not late."""
    bars = [{"seq": i, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5} for i in range(3)]
    chart_png(bars, {"seq": 2, "side": "long", "entry_price": 1.5, "stop_price": 1.0,
                     "targets": [2.0], "alarm_id": "warm-up", "symbol": "X", "timeframe": "1m"})
