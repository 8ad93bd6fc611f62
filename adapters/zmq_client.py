"""Clients of the ZeroMQ bridge's ROUTER (snapshots and commands): the UI, the Telegram front end.

``request(addr, op, **args)`` sends one wire-v1 request (``engine/wire.py``) on a fresh DEALER
and waits for the reply with the same id: safe from any thread (no socket is shared), and a lost
reply never wedges anything (the "lazy pirate": the socket is closed on timeout). It never
raises for the engine's answers or a timeout: it returns the reply map, and on a timeout
``{"id", "ok": False, "error": "timeout: ...", "timeout": True}``. ``arequest`` is the same for
asyncio programs (python-telegram-bot handlers). ``CurveKeys`` carries the keys a client needs
when the bridge binds a non-loopback address with CURVE.

    >>> from adapters.zmq_client import request
    >>> request("tcp://127.0.0.1:5556", "pause")            # doctest: +SKIP
    {'id': 'pause-...', 'ok': True, 'error': None, 'result': {'paused': True, ...}, ...}
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

import zmq
import zmq.asyncio

from engine import wire


class CurveKeys(NamedTuple):
    """A client's CURVE keys: its own pair and the server's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_files(cls, client_secret_file: str | Path, server_public_file: str | Path
                   ) -> CurveKeys:
        """From ``zmq.auth.create_certificates`` files: ``client.key_secret``, ``server.key``."""
        import zmq.auth

        pub, sec = zmq.auth.load_certificate(str(client_secret_file))
        server_pub, _ = zmq.auth.load_certificate(str(server_public_file))
        if sec is None:
            raise ValueError(f"{client_secret_file} holds no secret key (use NAME.key_secret)")
        return cls(pub, sec, server_pub)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


def _dealer(ctx: zmq.Context, addr: str, curve: CurveKeys | None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if curve is not None:
        curve.apply(sock)
    sock.connect(addr)
    return sock


def _timeout(rid: str, addr: str, op: str, timeout_s: float) -> dict[str, Any]:
    return {"id": rid, "ok": False, "timeout": True, "result": None,
            "error": f"timeout: no reply to {op!r} from {addr} within {timeout_s:g} s (is the "
                     "engine running with publish enabled, and are the CURVE keys right?)"}


def request(addr: str = wire.DEFAULT_COMMANDS, op: str = "ping", *,
            timeout_s: float = wire.DEFAULT_TIMEOUT_S, curve: CurveKeys | None = None,
            ctx: zmq.Context | None = None, id: str | None = None,
            **args: Any) -> dict[str, Any]:
    """One request/reply with the bridge (see the module doc)."""
    req = wire.request(op, id, **args)
    sock = _dealer(ctx or zmq.Context.instance(), addr, curve)
    try:
        sock.send_multipart([b"", wire.encode(req)])
        deadline = timeout_s * 1000
        while sock.poll(deadline):
            rep = wire.decode(sock.recv_multipart()[-1])
            if rep.get("id") == req["id"]:
                return rep
        return _timeout(req["id"], addr, op, timeout_s)
    finally:
        sock.close(0)


async def arequest(addr: str = wire.DEFAULT_COMMANDS, op: str = "ping", *,
                   timeout_s: float = wire.DEFAULT_TIMEOUT_S, curve: CurveKeys | None = None,
                   id: str | None = None, **args: Any) -> dict[str, Any]:
    """``request`` for asyncio code (a fresh ``zmq.asyncio`` DEALER per call)."""
    req = wire.request(op, id, **args)
    sock = _dealer(zmq.asyncio.Context.instance(), addr, curve)
    try:
        await sock.send_multipart([b"", wire.encode(req)])
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            left = end - loop.time()
            if left <= 0:
                return _timeout(req["id"], addr, op, timeout_s)
            try:
                frames = await asyncio.wait_for(sock.recv_multipart(), left)
            except TimeoutError:
                return _timeout(req["id"], addr, op, timeout_s)
            rep = wire.decode(frames[-1])
            if rep.get("id") == req["id"]:
                return rep
    finally:
        sock.close(0)


class CommandClient:
    """The bridge's ops as methods, for one address (thread-safe: a socket per call)."""

    def __init__(self, addr: str = wire.DEFAULT_COMMANDS, *,
                 timeout_s: float = wire.DEFAULT_TIMEOUT_S, curve: CurveKeys | None = None
                 ) -> None:
        self.addr, self.timeout_s, self.curve = addr, timeout_s, curve

    def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        return request(self.addr, op, timeout_s=self.timeout_s, curve=self.curve, **args)

    def ping(self) -> dict[str, Any]:
        return self("ping")

    def snapshot(self, bars: int | None = None) -> dict[str, Any]:
        return self("snapshot", **({"bars": bars} if bars else {}))

    def setup(self, alarm_id: str | None = None) -> dict[str, Any]:
        return self("setup", **({"alarm_id": alarm_id} if alarm_id else {}))

    def pause(self, reason: str = "") -> dict[str, Any]:
        return self("pause", **({"reason": reason} if reason else {}))

    def resume(self, reason: str = "") -> dict[str, Any]:
        return self("resume", **({"reason": reason} if reason else {}))

    def close(self, strategy: str) -> dict[str, Any]:
        return self("close", strategy=strategy)

    def flatten(self) -> dict[str, Any]:
        return self("flatten")

    def buy(self, strategy: str, **args: Any) -> dict[str, Any]:
        """``alarm_id=...`` (take that alarm's setup) or ``price=``, ``stop=``, ``target=``."""
        return self("buy", strategy=strategy, **args)

    def sell(self, strategy: str, **args: Any) -> dict[str, Any]:
        return self("sell", strategy=strategy, **args)
