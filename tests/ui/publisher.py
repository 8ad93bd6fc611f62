"""A WIRE.md engine end for the UI tests and benchmark: real ZeroMQ PUB + ROUTER sockets.

It plays recorded real-engine messages (``engine_source.engine_messages``) at a given bar rate,
keeps the history a snapshot needs, answers ``snapshot``, ``ping``, ``pause`` and ``resume``
(recorded in ``commands``; trading commands are refused as in backtest mode) and sends a
``status`` heartbeat. One thread owns both sockets. The payloads are encoded with msgpack as the
bridge does (``{"v", "seq", "run", "type", "ts", "data"}``), never pickle.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec
import zmq

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


class WirePublisher(threading.Thread):
    def __init__(self, messages: list[tuple[str, str, dict[str, Any]]], *, run: str = "run-1",
                 rate_bars: float = 20.0, start_bars: int = 300, pub: str = "tcp://127.0.0.1:0",
                 cmd: str = "tcp://127.0.0.1:0", symbol: str = "BTC-USDT",
                 mode: str = "backtest") -> None:
        super().__init__(name=f"wire-publisher-{run}", daemon=True)
        self.messages = messages
        self.run_id = run
        self.rate_bars = rate_bars
        self.start_bars = start_bars
        self.symbol = symbol
        self.mode = mode
        self.seq = 0
        self.paused = False
        self.commands: list[dict[str, Any]] = []
        self.sent_bars: list[tuple[int, float]] = []  # (bar seq, publish wall time)
        self.hist: dict[str, list[Any]] = {k: [] for k in ("bars", "features", "signals",
                                                           "orders", "fills", "trades",
                                                           "equity")}
        self.stop_evt = threading.Event()
        self.hold = threading.Event()  # set: stop playing bars (heartbeats go on)
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        _bind(self.pub, pub)
        _bind(self.router, cmd)
        self.pub_addr = self.pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.cmd_addr = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.pos = 0
        self.bars_played = 0
        self.ready = threading.Event()

    # -- the wire --------------------------------------------------------------------------------
    def send(self, topic: str, typ: str, data: dict[str, Any]) -> None:
        self.seq += 1
        payload = {"v": 1, "seq": self.seq, "run": self.run_id, "type": typ,
                   "ts": int(time.time() * 1000), "data": data}
        self.pub.send_multipart([topic.encode(), _enc.encode(payload)])

    def _record(self, topic: str, typ: str, data: dict[str, Any]) -> None:
        kind = topic.split(".", 1)[0]
        key = {"bar": "bars", "features": "features", "signal": "signals", "order": "orders",
               "fill": "fills", "trade": "trades", "equity": "equity"}.get(kind)
        if key is not None:
            self.hist[key].append({"type": typ, "data": data} if key == "orders" else data)

    def _play_one_bar(self, publish: bool) -> bool:
        """Send messages up to and including the next bar's features and equity."""
        seen_bar = False
        while self.pos < len(self.messages):
            topic, typ, data = self.messages[self.pos]
            if seen_bar and not topic.startswith(("features.", "equity.")):
                break
            self.pos += 1
            self._record(topic, typ, data)
            if publish:
                self.send(topic, typ, data)
            else:
                self.seq += 1
            if topic.startswith("bar."):
                seen_bar = True
                self.bars_played += 1
                self.sent_bars.append((int(data["seq"]), time.time()))
        return seen_bar

    def snapshot(self, n: int) -> dict[str, Any]:
        bars = self.hist["bars"][-n:]
        first = bars[0]["seq"] if bars else 0
        last_ms = bars[-1]["ts_event_ns"] // 1_000_000 if bars else 0
        return {
            "run": self.run_id, "mode": self.mode, "symbol": self.symbol, "timeframe": "15m",
            "bars": bars,
            "features": [f for f in self.hist["features"] if f["bar_seq"] >= first],
            "signals": [s for s in self.hist["signals"] if s["seq"] >= first],
            "orders": self.hist["orders"][-500:],
            "fills": [f for f in self.hist["fills"] if f["seq"] >= first],
            "trades": self.hist["trades"][-500:],
            "equity": [e for e in self.hist["equity"] if e["bar_seq"] >= first],
            "status": self.status(last_ms), "setups": {},
        }

    def status(self, last_ms: int | None = None) -> dict[str, Any]:
        return {"mode": self.mode, "symbol": self.symbol, "paused": self.paused, "alive": True,
                "last_bar_ms": last_ms}

    def _answer(self) -> None:
        while True:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            ident, body = frames[0], frames[-1]
            req = _dec.decode(body)
            op = req.get("op")
            rep: dict[str, Any] = {"id": req.get("id"), "ok": True, "error": None, "result": None}
            if op == "snapshot":
                rep["seq"] = self.seq
                rep["snapshot"] = self.snapshot(int(req.get("bars", 2000)))
            elif op == "ping":
                rep["result"] = "pong"
            elif op in ("pause", "resume"):
                self.paused = op == "pause"
                self.commands.append(req)
                rep["result"] = {"paused": self.paused}
                self.send(f"command.{self.symbol}", "command", {"op": op, "id": req.get("id")})
            elif op in ("close", "flatten", "buy", "sell"):
                self.commands.append(req)
                rep.update(ok=False, error=f"{op} refused: the engine runs a backtest")
            else:
                rep.update(ok=False, error=f"unknown op {op!r}")
            self.router.send_multipart([ident, b"", _enc.encode(rep)])

    def run(self) -> None:
        for _ in range(self.start_bars):  # what happened before anyone listened
            if not self._play_one_bar(publish=False):
                break
        self.ready.set()
        period = 1.0 / self.rate_bars if self.rate_bars > 0 else 3600.0
        next_bar = time.monotonic() + period
        next_beat = 0.0
        try:
            while not self.stop_evt.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    self.send(f"status.{self.symbol}", "status", self.status())
                    next_beat = now + 0.5
                if now >= next_bar:
                    if not self.hold.is_set():
                        self._play_one_bar(publish=True)
                    next_bar += period
                    if next_bar < now:
                        next_bar = now + period
                wait = max(0.0, min(next_bar, next_beat) - time.monotonic())
                if self.router.poll(int(wait * 1000) + 1):
                    self._answer()
        finally:
            self.pub.close(0)
            self.router.close(0)
            self.ctx.term()

    def stop(self) -> None:
        self.stop_evt.set()
        self.join(3)


def _bind(sock: zmq.Socket, addr: str) -> None:
    for _ in range(50):  # a restarted engine may find its old port still closing
        try:
            sock.bind(addr)
            return
        except zmq.ZMQError:
            time.sleep(0.05)
    sock.bind(addr)
