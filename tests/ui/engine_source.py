"""A real engine's events for the UI tests and the UI benchmark, as WIRE.md messages.

Runs the real engine (``build_engine``, the default config's six strategies and shared signals)
over a slice of the real candles with an all-events sink on its bus, and turns what it published
into the wire's ``(topic, type, data)`` triples in publish order: ``bar`` then that bar's
``features`` and ``equity``, with the ``signal``, ``order``, ``fill`` and ``trade`` events where the
bus carried them. ``WirePublisher`` (tests/ui/publisher.py) then plays them over real ZeroMQ
sockets at any speed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec

from engine.bootstrap import build_engine
from engine.config import load_config
from engine.events import (
    BarClosed,
    CancelOrder,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    SignalRaised,
    SubmitOrder,
    TradeClosed,
)

ROOT = Path(__file__).resolve().parents[2]
_KIND = {SignalRaised: "signal", SubmitOrder: "order", CancelOrder: "order", ModifyOrder: "order",
         OrderCanceled: "order", OrderFilled: "fill", TradeClosed: "trade"}


def engine_messages(data: Path, start: str, end: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Wire messages of a real backtest over ``data`` from ``start`` to ``end`` (bar open times)."""
    cfg = load_config(ROOT / "configs" / "default.yaml",
                      {"data": {"file": str(data), "start": start, "end": end},
                       "execution": {"workers": 0}})
    eng = build_engine(cfg)
    out: list[tuple[str, str, dict[str, Any]]] = []
    names = eng.features.names()
    sym = eng.store.symbol

    def sink(ev: Any) -> None:
        kind = _KIND.get(type(ev))
        if kind is not None:
            out.append((f"{kind}.{sym}", type(ev).__name__, msgspec.to_builtins(ev)))
        if isinstance(ev, BarClosed):
            out.append((f"bar.{sym}", "BarClosed", msgspec.to_builtins(ev)))
            vals = {n: eng.features.value(n, ev.seq) for n in names}
            out.append((f"features.{sym}", "features",
                        {"bar_seq": ev.seq, "values": {k: v for k, v in vals.items()
                                                       if not math.isnan(v)}}))
            out.append((f"equity.{sym}", "equity",
                        {"bar_seq": ev.seq, "equity": {a: acc.equity_at(ev.close)
                                                       for a, acc in eng.accounts.items()}}))

    eng.bus.subscribe_all(sink, name="ui-test-sink")
    eng.run()
    return out


class BridgedEngine:
    """The real engine with the real ZeroMQ bridge (adapters/zmq_bridge.py), replaying real
    candles at ``speed`` bars per second in a thread, then held open (snapshots answered) until
    ``stop()``: what ``tradebot replay RUN_DIR --hold`` runs, in-process."""

    def __init__(self, data: Path, start: str, end: str, *, pub: str, commands: str,
                 speed: float) -> None:
        import threading

        cfg = load_config(ROOT / "configs" / "default.yaml", {
            "data": {"file": str(data), "start": start, "end": end},
            "execution": {"workers": 0},
            "publish": {"enabled": True, "pub": pub, "commands": commands, "speed": speed}})
        self.engine = build_engine(cfg)
        self.bridge = self.engine.sinks[0]
        self.done = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bridged-engine", daemon=True)

    def _run(self) -> None:
        import time

        try:
            self.engine.run()
            self.done.set()
            while not self._stop.is_set():
                self.bridge.idle()
                time.sleep(0.1)
        finally:
            self.engine.close()

    def start(self) -> BridgedEngine:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Finish the replay flat out (no pacing), then close the bridge."""
        self._stop.set()
        self.bridge.set_speed(0)  # as fast as possible; wakes a paced wait at once
        self.thread.join(60)
