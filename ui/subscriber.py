"""The one thread per UI process that owns the SUB socket (WIRE.md).

Order of work, the ZeroMQ guide's "clone" pattern: connect the SUB first, then ask for a snapshot
over the command channel, apply it, drop PUB messages with ``seq <= snapshot seq``, and ask again
on a gap, on another run id (the engine restarted) or after the publisher went quiet. ZeroMQ
reconnects the SUB by itself when the engine comes back; the snapshot request recreates its
DEALER after every timeout (lazy pirate). Callbacks never touch a socket: they read ``UiState``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import zmq

from engine import wire
from ui.state import UiState

log = logging.getLogger(__name__)


def decode(payload: bytes) -> dict[str, Any]:
    """One wire payload as a dict (``engine.wire.decode``: msgpack map, wire version checked).

    Raises:
        ValueError: not wire v1 (``engine.wire.WireError``).
    """
    return wire.decode(payload)


def request(addr: str, req: dict[str, Any], timeout_s: float = 2.0,
            ctx: zmq.Context | None = None) -> dict[str, Any]:
    """Send one request to the engine's ROUTER and wait for the reply with the same id.

    A fresh DEALER per call (cheap on loopback, never shared between threads). A timeout or a
    reply that cannot be decoded comes back as ``{"ok": False, "error": ...}``, never raises.
    """
    ctx = ctx or zmq.Context.instance()
    req = {"id": wire.new_id("ui"), **req}
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(addr)
        sock.send_multipart([b"", wire.encode(req)])
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000)):
                return {"id": req["id"], "ok": False,
                        "error": f"no reply from {addr} within {timeout_s:g} s "
                                 "(is the engine running with --publish?)"}
            frames = sock.recv_multipart()
            try:
                rep = decode(frames[-1])
            except ValueError as exc:
                return {"id": req["id"], "ok": False, "error": f"undecodable reply: {exc}"}
            if rep.get("id") == req["id"]:
                return rep
    finally:
        sock.close(0)


class Subscriber(threading.Thread):
    """Feeds ``state`` from the engine's PUB socket ``connect`` and ROUTER ``commands``."""

    def __init__(self, state: UiState, connect: str, commands: str, *, bars: int = 2000,
                 quiet_s: float = 3.0, timeout_s: float = 2.0) -> None:
        super().__init__(name="ui-subscriber", daemon=True)
        self.state = state
        self.connect_addr = connect
        self.commands_addr = commands
        self.bars = bars
        self.quiet_s = quiet_s  # no message for this long: the engine is gone or restarting
        self.timeout_s = timeout_s
        self.stop_evt = threading.Event()
        self.ctx = zmq.Context()
        self.received = 0

    def stop(self, join: float = 2.0) -> None:
        self.stop_evt.set()
        self.join(join)

    def snapshot(self) -> bool:
        rep = request(self.commands_addr, {"op": "snapshot", "bars": self.bars},
                      self.timeout_s, self.ctx)
        if not rep.get("ok"):
            with self.state.lock:
                self.state.conn.state = "disconnected"
                self.state.conn.error = str(rep.get("error") or "snapshot refused")
            return False
        self.state.apply_snapshot(rep)
        return True

    def run(self) -> None:
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 100_000)
        sub.setsockopt(zmq.RECONNECT_IVL, 100)
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.connect_addr)  # SUB first, then the snapshot: nothing falls between
        need_snapshot = True
        next_try = 0.0
        try:
            while not self.stop_evt.is_set():
                now = time.monotonic()
                if need_snapshot and now >= next_try:
                    if self.snapshot():
                        need_snapshot = False
                    else:
                        next_try = time.monotonic() + 0.5
                if not sub.poll(100):
                    if self._quiet() and not need_snapshot:
                        need_snapshot = True  # silent too long: resync once it talks again
                        with self.state.lock:
                            self.state.conn.state = "stale"
                            self.state.conn.reconnects += 1
                    continue
                for _ in range(1000):  # drain what is there, then check the clock again
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.received += 1
                    if len(frames) < 2:
                        continue
                    try:
                        msg = decode(frames[1])
                    except ValueError as exc:
                        log.warning("dropping an undecodable message: %s", exc)
                        continue
                    topic = frames[0].decode("utf-8", "replace")
                    if need_snapshot:
                        with self.state.lock:  # something is talking: note it, keep the seq
                            self.state.conn.last_msg_wall = time.time()
                        continue
                    if self.state.apply_message(topic, msg) == "resync":
                        need_snapshot = True
                        next_try = 0.0
                        break
        except zmq.ContextTerminated:
            pass
        finally:
            sub.close(0)
            self.ctx.term()

    def _quiet(self) -> bool:
        with self.state.lock:
            last = self.state.conn.last_msg_wall
        return bool(last) and time.time() - last > self.quiet_s
