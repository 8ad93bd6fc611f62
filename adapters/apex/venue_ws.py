"""The local Apex venue's websocket side, as ``apexomni.websocket_api.WebSocket`` uses it.

- ``<ws_url>/realtime_public?v=2&timestamp=ms``: a subscription
  ``{"op": "subscribe", "args": ["candle.15.BTCUSDT"]}`` is acknowledged; every candle the
  replay opens (``confirm: false``) and closes (``confirm: true``) is then pushed as
  ``{"topic": "candle.15.BTCUSDT", "type": "snapshot", "ts", "data": [{"start", "end",
  "interval", "open", "close", "high", "low", "volume", "turnover", "confirm", "timestamp"}]}``.
  Nothing is pushed on subscribe (apexomni registers its callback only after sending the
  subscription, so an instant push would be lost).
- ``<ws_url>/realtime_private?v=2&timestamp=ms``: ``{"op": "login", "args": [json]}`` with the
  HMAC ``b64(HMAC(b64(secret), timestamp + "GET" + "/ws/accounts"))`` and the account's key and
  passphrase (a bad login is answered ``success: false`` and the socket closed); after it, every
  change of that account (the venue may serve several, by API key) is pushed as
  ``{"topic": "ws_zk_accounts_v3", "contents": {"positions", "orders" (the orders changed),
  "fills" (the new ones), "contractWallets", "spotWallets"}}``.
- ``{"op": "ping"}`` is answered with a pong.
- A websocket drop (fault ``ws_drop``, :meth:`VenueStream.drop`): every private connection is
  cut at once (the TCP connection aborted, no close frame), and the next ``refuse`` logins are
  answered ``success: false`` and closed, so a client must reconnect, with backoff, more than
  once. Account changes made meanwhile are pushed to nobody.

The websocket never moves the lockstep clock: only REST polls do (see ``adapters.apex.venue``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.apex.venue import LocalVenue

logger = logging.getLogger(__name__)

ACCOUNT_TOPIC = "ws_zk_accounts_v3"
PRIVATE_TOPICS = {"ws_zk_accounts_v3", "ws_accounts_v2", "ws_accounts_v1", "ws_notify_v1"}


@dataclass(eq=False)
class _Conn:
    ws: Any
    private: bool
    topics: set[str] = field(default_factory=set)
    authed: bool = False
    key: str = ""  # the API key it logged in with: it gets that account's pushes only


class VenueStream:
    """Websocket server of a :class:`~adapters.apex.venue.LocalVenue` (its own thread and port)."""

    def __init__(self, venue: LocalVenue, host: str = "127.0.0.1", port: int = 0) -> None:
        self.venue = venue
        self.host, self.port = host, port
        self.url = ""
        self.received: list[dict[str, Any]] = []  # (path, message) of every client frame
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._queue: asyncio.Queue[tuple[str, str, str]] | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._refuse_logins = 0
        self.drops = 0  # private connections cut by drop()
        self.logins = 0  # successful logins

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> VenueStream:
        self._thread = threading.Thread(target=self._run, daemon=True, name="apex-venue-ws")
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        self._queue = asyncio.Queue()
        pump = asyncio.get_running_loop().create_task(self._pump())
        async with serve(self._handler, self.host, self.port) as server:
            host, port = server.sockets[0].getsockname()[:2]
            self.url = f"ws://{host}:{port}"
            self._ready.set()
            await self._stop.wait()
        pump.cancel()

    # -- clients -------------------------------------------------------------------------------
    async def _handler(self, ws: Any) -> None:
        path = ws.request.path
        conn = _Conn(ws, private=path.startswith("/realtime_private"))
        self._conns.add(conn)
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                self.received.append({"path": path, "msg": msg})
                if not isinstance(msg, dict):
                    continue
                await self._on_message(conn, msg)
        except Exception as exc:  # a closed socket ends the conversation, nothing else
            logger.debug("venue websocket %s: %s", path, exc)
        finally:
            self._conns.discard(conn)

    async def _on_message(self, conn: _Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        args = msg.get("args") or []
        if op == "ping":
            await conn.ws.send(json.dumps({"op": "pong", "args": args}))
        elif op == "subscribe":
            topics = [a for a in args if isinstance(a, str)]
            conn.topics.update(t for t in topics if t not in PRIVATE_TOPICS or conn.authed)
            await conn.ws.send(json.dumps({"success": True, "ret_msg": "", "conn_id": str(id(conn)),
                                           "request": {"op": "subscribe", "args": topics}}))
        elif op == "unsubscribe":
            conn.topics.difference_update(args)
        elif op == "login":
            problem = self._login_problem(conn, args)
            reply = {"success": problem is None, "ret_msg": problem or "",
                     "request": {"op": "login", "args": args}}
            await conn.ws.send(json.dumps(reply))
            if problem is not None:
                await conn.ws.close()

    def _login_problem(self, conn: _Conn, args: list[Any]) -> str | None:
        if not conn.private:
            return "login is only accepted on /realtime_private"
        if self._refuse_logins > 0:
            self._refuse_logins -= 1
            return "login refused: the service is restarting (injected websocket drop)"
        try:
            req = json.loads(args[0])
        except (IndexError, TypeError, ValueError):
            return "login args must hold one JSON object"
        acct = self.venue.accounts.get(str(req.get("apiKey", "")))
        if acct is None:
            return "login failed: apikey or passphrase error"
        cred = acct.credentials
        ts = str(req.get("timestamp", ""))
        msg = ts + str(req.get("httpMethod", "GET")) + str(req.get("requestPath", ""))
        key = base64.standard_b64encode(cred.secret.encode())
        want = base64.standard_b64encode(hmac.new(key, msg.encode(), hashlib.sha256).digest())
        if req.get("apiKey") != cred.key or req.get("passphrase") != cred.passphrase:
            return "login failed: apikey or passphrase error"
        if req.get("requestPath") != "/ws/accounts" or not hmac.compare_digest(
                want.decode(), str(req.get("signature", ""))):
            return "login failed: signature error"
        conn.authed = True
        conn.key = cred.key
        self.logins += 1
        conn.topics.update(t for t in req.get("topics") or [] if isinstance(t, str))
        return None

    # -- faults --------------------------------------------------------------------------------
    def drop(self, refuse: int = 0) -> int:
        """Cut every private connection now (no close frame) and refuse the next ``refuse``
        logins; returns how many connections were cut (waits until they are)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the venue's websocket is not running")
        self._refuse_logins = refuse

        async def cut() -> int:
            n = 0
            for c in list(self._conns):
                if c.private:
                    c.authed = False
                    c.topics.clear()
                    c.ws.transport.abort()
                    n += 1
            return n

        n = asyncio.run_coroutine_threadsafe(cut(), loop).result(5)
        self.drops += n
        return n

    # -- pushes (called from any thread, e.g. under the venue's lock) --------------------------
    def publish(self, topic: str, message: dict[str, Any], key: str = "") -> None:
        """Send ``message`` to every client subscribed to ``topic`` (a private one: logged in
        with API key ``key``); does not wait."""
        loop = self._loop
        if loop is None or loop.is_closed() or not any(topic in c.topics for c in self._conns):
            return
        queue = self._queue
        if queue is None:
            return
        text = json.dumps(message)
        with contextlib.suppress(RuntimeError):  # stopping
            loop.call_soon_threadsafe(queue.put_nowait, (topic, text, key))

    async def _pump(self) -> None:
        """One sender, so that every client gets the pushes in the order they were made."""
        assert self._queue is not None
        while True:
            topic, text, key = await self._queue.get()
            private = topic in PRIVATE_TOPICS
            for c in list(self._conns):
                if topic in c.topics and (not private or (c.private and c.authed
                                                          and c.key == key)):
                    with contextlib.suppress(Exception):  # a client gone meanwhile
                        await c.ws.send(text)
