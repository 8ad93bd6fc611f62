"""One Apex account's private websocket (``ws_zk_accounts_v3``) for the Apex broker.

The real ``apexomni`` websocket client (``apexomni.websocket_api.WebSocket`` and its private
manager) logs in with the account's API key and receives every change of the account (orders,
fills, positions). Its threads only put the pushes in a queue: the broker drains the queue on the
engine thread (at a bar close, after the bar, and on its clock timer when the feed waits), so
engine events are still published on the engine thread only.

**Drops.** apexomni's own reconnect (``restart_on_error``) is turned off: it reconnects from its
socket thread without backoff and does not say that pushes were missed. Here a supervisor thread
watches the connection; when it is lost (or a login is refused) it reconnects with capped
exponential backoff (``backoff_s`` doubling up to ``backoff_cap_s``), and each new session is
announced in the queue (:data:`UP`). A session after a lost one means pushes may have been
missed: the broker back-fills from the fills endpoint, which stays the authority (every fill has
the venue's id, so a fill seen on both is booked once).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.apex.client import ApexCredentials

logger = logging.getLogger(__name__)

ACCOUNT_TOPIC = "ws_zk_accounts_v3"
UP = "up"  # queue marker: a session logged in (payload: its number, 1 = the first)
DOWN = "down"  # queue marker: the session was lost (payload: the reason)

# Mirrors of apexomni.constants.APEX_OMNI_WS_MAIN / _TEST (choosing a URL imports nothing).
WS_NETWORKS = {"main": "wss://quote.omni.apex.exchange",
               "test": "wss://qa-quote.omni.apex.exchange"}


def ws_endpoint(url: str) -> str:
    """``main`` / ``test`` or a ``ws(s)://`` URL -> the websocket endpoint (no path).

    Raises:
        ConfigError: not a websocket URL.
    """
    from engine.errors import ConfigError

    u = WS_NETWORKS.get(url, url).rstrip("/")
    if not u.startswith(("ws://", "wss://")):
        raise ConfigError(f"data.websocket {url!r} is not a websocket URL; use main, test, "
                          f"{WS_NETWORKS['main']} or a local venue's ws://127.0.0.1:PORT "
                          "(`tradebot venue --ws-port N` prints it)")
    return u


class AccountStream:
    """The account pushes of one Apex account, queued for the engine thread.

    Args:
        endpoint: ``main``, ``test`` or a ``ws(s)://host:port`` (a local venue's ``ws_url``).
        credentials: the account's API key, secret and passphrase (never logged).
        backoff_s, backoff_cap_s: reconnect waits: ``backoff_s`` doubling up to the cap.
        name: for log lines (the account's name).
    """

    def __init__(self, endpoint: str, credentials: ApexCredentials, *, backoff_s: float = 0.25,
                 backoff_cap_s: float = 4.0, name: str = "") -> None:
        self.endpoint = ws_endpoint(endpoint)
        self._creds = credentials
        self.backoff_s, self.backoff_cap_s = backoff_s, backoff_cap_s
        self.name = name
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.sessions = 0  # logins that succeeded
        self.drops = 0  # sessions lost
        self.waits: list[float] = []  # every backoff wait (diagnostics, tests)
        self._ws: Any = None
        self._authed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> AccountStream:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"apex-account-ws-{self.name}")
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until a session is logged in (or ``timeout``); True when it is."""
        return self._authed.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._authed.is_set() and self._connected()

    def stop(self) -> None:
        self._stop.set()
        self._close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    # -- the supervisor ------------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            reason = self._session()
            if self._stop.is_set():
                break
            if reason is None:  # a session that logged in and then ended
                attempt = 0
                self.drops += 1
                reason = "connection lost"
            self.queue.put((DOWN, reason))
            wait = min(self.backoff_cap_s, self.backoff_s * 2**attempt)
            attempt += 1
            self.waits.append(wait)
            logger.warning("%s: account websocket %s: %s; reconnecting in %.2f s", self.name,
                           self.endpoint, reason, wait)
            self._stop.wait(wait)

    def _session(self) -> str | None:
        """Connect, log in, and wait until the connection ends. None when it had logged in,
        else why it failed."""
        self._authed.clear()
        try:
            self._open()
        except Exception as exc:  # websocket-client raises its own; the reason is logged
            self._close()
            return f"cannot connect ({type(exc).__name__}: {exc})"
        deadline = time.monotonic() + 10.0
        while not self._stop.is_set() and self._connected():
            if not self._authed.is_set() and time.monotonic() > deadline:
                self._close()
                return "no login reply within 10 s"
            self._stop.wait(0.02)
        self._close()
        return None if self._authed.is_set() else "login refused"

    def _open(self) -> None:
        from adapters.apex.client import load_apexomni

        load_apexomni()
        from apexomni._websocket_stream import PRIVATE_WSS, _ApexWebSocketManager
        from apexomni.websocket_api import WebSocket

        kw = {"endpoint": self.endpoint,
              "api_key_credentials": self._creds.api_key_credentials(),
              "restart_on_error": False}
        ws = WebSocket(**kw)
        # the private manager as WebSocket._ws_private_subscribe makes it, with the login reply
        # seen first (apexomni keeps it to itself)
        mgr = _ApexWebSocketManager(**kw)
        inner = mgr.callback
        mgr.callback = lambda msg: self._on_raw(msg, inner)
        ws.ws_private = mgr
        self._ws = ws
        mgr._connect(self.endpoint + PRIVATE_WSS)
        ws.account_info_stream_v3(self._on_push)

    def _connected(self) -> bool:
        mgr = getattr(self._ws, "ws_private", None)
        app = getattr(mgr, "ws", None)
        sock = getattr(app, "sock", None)
        thread = getattr(mgr, "wst", None)
        return bool(sock is not None and sock.connected and thread is not None
                    and thread.is_alive())

    def _close(self) -> None:
        mgr = getattr(self._ws, "ws_private", None)
        app = getattr(mgr, "ws", None)
        if app is not None:
            with contextlib.suppress(Exception):
                app.keep_running = False
                app.close()
        self._ws = None

    # -- messages (socket thread) --------------------------------------------------------------
    def _on_raw(self, msg: Any, inner: Callable[[Any], None]) -> None:
        if isinstance(msg, dict) and (msg.get("request") or {}).get("op") == "login":
            if msg.get("success") in (True, "true"):
                # queued before it is counted: whoever sees the count finds the marker queued
                self.queue.put((UP, self.sessions + 1))
                self.sessions += 1
                self._authed.set()
            else:
                logger.warning("%s: account websocket login refused: %s", self.name,
                               str(msg.get("ret_msg", ""))[:200])
        inner(msg)

    def _on_push(self, msg: Any) -> None:
        if isinstance(msg, dict) and msg.get("topic") == ACCOUNT_TOPIC:
            self.queue.put((ACCOUNT_TOPIC, msg.get("contents") or {}))

    def drain(self) -> list[tuple[str, Any]]:
        """Everything queued so far, oldest first (engine thread)."""
        out: list[tuple[str, Any]] = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out
