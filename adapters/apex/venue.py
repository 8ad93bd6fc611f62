"""A local ApeX Omni venue: replays a candle file over ApeX Omni's v3 REST protocol.

``LocalVenue`` is a loopback HTTP server (``tradebot venue``, or in-process in tests) that the real
``apexomni`` client talks to as if it were the exchange. It serves one symbol, whose candles come
from a ``SYMBOL_TF_data.csv`` (``engine.datafile.load_bars``: the same validation as a backtest).

Routes (every answer is ``{"data": ..., "timeCost": ...}`` or an error in Apex's own shape
``{"code": N, "msg": "...", "key": "..."}``):

- public: ``GET /api/v1/time`` (and ``/api/v3/time``), ``/api/v3/symbols``, ``/api/v3/klines``,
  ``/api/v3/ticker``, ``/api/v3/depth``;
- private (REST HMAC checked like the exchange: key, passphrase, timestamp within 60 s of the
  wall clock, ``APEX-SIGNATURE``): ``GET /api/v3/account`` (positions inside),
  ``/api/v3/account-balance``, ``/api/v3/open-orders``, ``/api/v3/fills``,
  ``/api/v3/history-orders``, ``/api/v3/order``, ``/api/v3/order-by-client-order-id``,
  ``/api/v3/get-worst-price``; ``POST /api/v3/order`` (zk signatures of the order and of an
  attached TP/SL checked with zkLink's ``verify_musig`` against the account's key; a clientId
  used before is refused: ``ORDER_CLIENT_ID_DUPLICATE``), ``/api/v3/delete-order``,
  ``/api/v3/delete-client-order-id``, ``/api/v3/delete-open-orders``,
  ``/api/v3/set-initial-margin-rate``.

The virtual clock
-----------------
The clock starts at ``start`` (default: the file's first candle open; a start between candles
moves to the next candle open). Candles that closed by then are history. ``GET /api/v1/time``
answers the virtual time in ms.

- ``speed > 0``: virtual seconds per wall second (``900`` = one 15m candle per second). It stops
  at the close of the last candle.
- ``speed == 0`` (**lockstep**): the clock stands on candle boundaries; virtual time = the close
  of the newest closed candle (= the open of the forming one). The rule:

  1. A client **has seen** the newest closed candle when a ``GET /api/v3/klines`` answer (for
     the venue's symbol and interval) contained that candle.
  2. The clock then steps one candle at the start of the **next** ``GET /api/v1/time`` or
     ``GET /api/v3/klines`` request (whichever comes first), before answering it. Other requests
     (orders, account, ticker...) never move the clock.
  3. When no candle has closed yet (start at the first candle), rule 1 holds vacuously: the
     first time/klines request closes the first candle.

  So a feed that polls ``time`` then ``klines`` (or ``klines`` alone) gets exactly one new closed
  candle per poll, and everything a client does between two polls (orders placed on seeing
  candle N) happens at the close of N: a market order fills at the open of N+1, exactly like a
  backtest's ``market_fill: next_open``. ``LocalVenue.advance(n)`` steps the clock by hand.

Klines: ``start``/``end`` in seconds (candle open times, inclusive), ``limit`` at most 200
(larger is clamped; default 200). With ``start`` the first ``limit`` candles from ``start`` are
returned, else the last ``limit`` up to ``end`` (or now); oldest first. Values are strings
(``t`` = open time in ms, as a string like the real API). Like the real API, the **forming**
candle is the last element when it falls in the range (at the virtual time: its open, the
path-interpolated price so far, the volume so far); a feed must drop it (its ``t + interval`` is
after the server time). Longer intervals that are multiples of the file's are aggregated from
it (days from 00:00 UTC, weeks from Monday); only the file's own interval counts for rule 1.

Fault injection (tests): ``venue.inject(path, kind, count=1, delay=..., key=...)`` makes the next
``count`` requests to ``path`` (``"*"`` = any) fail:

- ``"timeout"``: wait ``delay`` seconds (default 2) then close the connection, without handling
  the request (make the client's timeout shorter);
- ``"http500"``: HTTP 500 with ``{"code": 500, "key": "INTERNAL_ERROR"}``, not handled;
- ``"rate_limit"``: HTTP 429 with ``{"code": 429, "key": "RATE_LIMIT", "retryAfter": 1}``;
- ``"html502"``: HTTP 502 with an HTML page (not JSON), not handled;
- ``"drop_reply_after_accept"``: handled (an order is accepted), then the connection is closed
  without a reply;
- ``"reject"``: ``{"code": 3, "key": key or "ORDER_REJECTED"}``, not handled;
- ``"partial"`` (path ignored): the next ``count`` resting orders (LIMIT, stop, take-profit) to
  execute fill in two parts: half their size where they are reached, the rest from the next
  candle on (``adapters.apex.venue_book``);
- ``"ws_drop"`` (path ignored; needs ``websocket=True``): a websocket drop, at once: every private
  websocket connection is cut, and the next ``count - 1`` logins are refused
  (``adapters.apex.venue_ws.VenueStream.drop``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from adapters.apex.client import ApexCredentials, credentials_from_env, zklink_sdk
from adapters.apex.venue_book import ApexReject, VenueBook, fmt, reject
from engine.bars import Bars
from engine.errors import ConfigError
from engine.fills import IntrabarPolicy

logger = logging.getLogger(__name__)

MAX_KLINES = 200
ACCOUNT_ID = "584232029208969327"
ETH_ADDRESS = "0x1111111111111111111111111111111111111111"
# Used when APEX_API_KEY is not set (the venue is local: these protect nothing).
TEST_CREDENTIALS = ApexCredentials("test-key", "test-secret", "test-pass", "ab" * 64)
INTERVALS = {60: "1", 300: "5", 900: "15", 1800: "30", 3600: "60", 7200: "120", 14400: "240",
             21600: "360", 43200: "720", 86400: "D", 604800: "W"}
FAULTS = ("timeout", "http500", "rate_limit", "html502", "drop_reply_after_accept", "reject",
          "ws_drop", "partial")
_MAX_U32, _MAX_U64 = 2**32 - 1, 2**64 - 1
_DECIMALS = 18  # USDT's decimals in the zk order encoding (the real value)
_SIG_HEX = set("0123456789abcdefABCDEF")
_WEEK_ORIGIN_MS = 4 * 86_400_000  # weekly candles open on Mondays (1970-01-05)


@dataclass
class VenueAccount:
    """One account the venue serves: its credentials, book and l2 key."""

    credentials: ApexCredentials
    book: VenueBook
    account_id: str
    pubkey: str | None = None
    fills_pushed: int = 0  # fills already pushed on the websocket


@dataclass
class _Fault:
    path: str
    kind: str
    count: int
    delay: float
    key: str


def _decimals(*cols: np.ndarray) -> int:
    """Fewest decimals (<= 8) that write every price of the file exactly."""
    x = np.concatenate(cols)
    for d in range(9):
        s = x * 10.0**d
        if np.all(np.abs(s - np.round(s)) < 1e-6 * np.maximum(1.0, np.abs(s)) * 1e-3 + 1e-7):
            return d
    return 8


def _interval_code(tf_s: int) -> str:
    if tf_s not in INTERVALS:
        raise ConfigError(
            f"timeframe of {tf_s} s has no ApeX Omni interval; replay a file of 1m, 5m, 15m, 30m, "
            "1h, 2h, 4h, 6h, 12h, 1d or 1w candles")
    return INTERVALS[tf_s]


def parse_time_ms(text: str) -> int:
    """``--start``: ISO time (UTC) or epoch ms/seconds -> epoch ms."""
    t = str(text).strip()
    if t.isdigit():
        v = int(t)
        return v if v > 10**11 else v * 1000
    import pandas as pd

    try:
        ts = pd.Timestamp(t)
    except ValueError as exc:
        raise ConfigError(f"start time {text!r} is not a time; write e.g. '2024-01-01 06:00' "
                          "(UTC) or epoch milliseconds") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


class LocalVenue:
    """The local venue. Use as a context manager (``with LocalVenue(bars) as v: v.url``) or
    ``start()`` / ``stop()``.

    Args:
        bars: the candles to replay (``engine.datafile.load_bars``).
        speed: virtual seconds per wall second; ``0`` = lockstep (module docstring).
        start: virtual start time (epoch ms, ISO string or ``None`` = first candle).
        host, port: where to listen (``127.0.0.1:0`` = a free port).
        symbol: the symbol to serve (default ``bars.symbol``, e.g. ``BTC-USDT``).
        credentials: the account's API key/secret/passphrase/zk seeds (default: ``APEX_*`` from
            the environment or ``.env``, else :data:`TEST_CREDENTIALS`).
        balance: starting USDT wallet balance.
        taker_fee, maker_fee: fee rates (fractions; the account reports them to the client).
        slippage: adverse slippage fraction on market and stop fills.
        policy: intrabar policy (``engine.fills.IntrabarPolicy``).
        accounts: more accounts to serve beside ``credentials``' (a live run with one account
            per strategy): each its own API key, zk seeds, id, wallet of ``balance``, position,
            orders and fills; a request is served for the account whose API key signed it.
            ``book`` / ``credentials`` are the first account's (outside a request).
    """

    def __init__(self, bars: Bars, *, speed: float = 0.0, start: int | str | None = None,
                 host: str = "127.0.0.1", port: int = 0, symbol: str | None = None,
                 credentials: ApexCredentials | None = None, balance: float = 10_000.0,
                 taker_fee: float = 0.0005, maker_fee: float = 0.0002, slippage: float = 0.0,
                 policy: IntrabarPolicy | str = IntrabarPolicy.STOP_FIRST,
                 tick_size: str | None = None, step_size: str = "0.001",
                 min_order_size: str | None = None, initial_margin_rate: float = 0.02,
                 record_requests: bool = True, websocket: bool = False,
                 ws_port: int = 0, accounts: Sequence[ApexCredentials] = ()) -> None:
        if len(bars.ts_open_ns) == 0:
            raise ConfigError("the venue needs at least one candle to replay")
        if speed < 0 or not math.isfinite(speed):
            raise ConfigError(f"speed {speed} must be 0 (lockstep) or a positive number")
        self.symbol = (symbol or bars.symbol).upper()
        if "-" not in self.symbol:
            from engine.datafile import engine_symbol

            self.symbol = engine_symbol(self.symbol)
        self.plain = self.symbol.replace("-", "")
        self.tf_ms = bars.tf_ns // 1_000_000
        self.interval = _interval_code(int(self.tf_ms // 1000))
        self.open_ms = (bars.ts_open_ns // 1_000_000).astype(np.int64)
        self.close_ms = self.open_ms + self.tf_ms
        self.o, self.h, self.lo, self.c, self.v = (np.asarray(a, dtype=np.float64) for a in
                                                   (bars.open, bars.high, bars.low, bars.close,
                                                    bars.volume))
        self.n = len(self.open_ms)
        self.speed = float(speed)
        start_ms = int(self.open_ms[0]) if start is None else (
            start if isinstance(start, int) else parse_time_ms(start))
        k0 = int(np.searchsorted(self.open_ms, start_ms, "left"))
        if k0 >= self.n:
            raise ConfigError(
                f"start {_iso(start_ms)} is after the file's last candle "
                f"({_iso(int(self.open_ms[-1]))}); choose an earlier --start")
        self.k0 = k0
        self.t0_ms = int(self.open_ms[k0])
        self.price_decimals = _decimals(self.o, self.h, self.lo, self.c)
        self.tick = tick_size or fmt(10.0 ** -self.price_decimals, self.price_decimals)
        self.step = step_size
        self.min_size = min_order_size or step_size
        self.imr = float(initial_margin_rate)
        self.credentials = credentials or credentials_from_env() or TEST_CREDENTIALS
        self.policy = IntrabarPolicy(policy)
        self.accounts: dict[str, VenueAccount] = {}  # by API key; the first is the default
        for i, cred in enumerate([self.credentials, *accounts]):
            if cred.key in self.accounts:
                raise ConfigError(f"two venue accounts share the API key {cred.key[:4]}...; give "
                                  "each account its own key")
            aid = str(int(ACCOUNT_ID) + i)
            book = VenueBook(self.symbol, self.open_ms, self.o, self.h, self.lo, self.c,
                             account_id=aid, balance=balance, taker_fee=taker_fee,
                             maker_fee=maker_fee, slippage=slippage, policy=self.policy,
                             imr=self.imr, price_decimals=self.price_decimals)
            book.step = float(self.step)
            # history needs no matching: the book starts at the first candle after it
            book.opened = book.closed = k0
            book.mark = float(self.c[k0 - 1]) if k0 else float(self.o[0])
            self.accounts[cred.key] = VenueAccount(cred, book, aid)
        self._default = next(iter(self.accounts.values()))
        self.book = self._default.book  # the account a request is served for (see _select)
        self._account_id = self._default.account_id
        self.lock = threading.RLock()
        self._n_closed = k0  # lockstep state
        self._advance_due = k0 == 0  # rule 3
        self._wall0: float | None = None
        self.requests: list[dict[str, Any]] = []
        self.record_requests = record_requests  # keep every request in .requests (tests)
        self._faults: list[_Fault] = []
        self._pubkey: str | None = None  # the selected account's l2 key
        self._host, self._port = host, port
        self._ws_wanted, self._ws_port = websocket, ws_port
        self.stream: Any = None  # VenueStream when websocket=True
        self.ws_url = ""
        self.httpd: Any = None  # venue_http.VenueHTTPServer while running
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LocalVenue:
        for acct in self.accounts.values():
            if not acct.credentials.zk_seeds:
                continue
            sdk = zklink_sdk()  # also imports apexomni once, before the first request
            try:
                seeds = bytes.fromhex(acct.credentials.zk_seeds.removeprefix("0x"))
                acct.pubkey = sdk.ZkLinkSigner().new_from_seed(seeds).public_key()
            except Exception as exc:
                raise ConfigError(
                    f"APEX_ZK_SEEDS is not a usable zk seed ({type(exc).__name__}): write it as "
                    "hex, at least 32 bytes (the Omni key from the web UI; any 64 hex bytes for "
                    "a local venue)") from None
        self._pubkey = self._default.pubkey
        from adapters.apex.venue_http import VenueHTTPServer

        self.httpd = VenueHTTPServer((self._host, self._port), self)
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        if self._ws_wanted:
            from adapters.apex.venue_ws import VenueStream

            self.stream = VenueStream(self, self._host, self._ws_port).start()
            self.ws_url = self.stream.url
        self._wall0 = time.monotonic()
        with self.lock:
            self._sync()
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="apex-venue")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream = None
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> LocalVenue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the clock -----------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The virtual time in ms."""
        if self.speed == 0.0:
            k = self._n_closed
            return int(self.close_ms[k - 1]) if k > 0 else self.t0_ms
        wall0 = self._wall0 if self._wall0 is not None else time.monotonic()
        t = self.t0_ms + int((time.monotonic() - wall0) * self.speed * 1000)
        return min(t, int(self.close_ms[-1]))

    def n_closed(self) -> int:
        """How many candles of the file have closed at the virtual time."""
        if self.speed == 0.0:
            return self._n_closed
        return int(np.searchsorted(self.close_ms, self.now_ms(), "right"))

    @property
    def finished(self) -> bool:
        """Every candle of the file has closed."""
        return self.n_closed() >= self.n

    def advance(self, n: int = 1) -> int:
        """Lockstep: close the next ``n`` candles now (whatever the clients saw); returns the
        number of closed candles."""
        with self.lock:
            self._n_closed = min(self.n, self._n_closed + n)
            self._advance_due = False
            self._sync()
            return self._n_closed

    def _poll(self) -> None:
        """A time/klines request arrived: rule 2 of lockstep."""
        if self.speed == 0.0 and self._advance_due and self._n_closed < self.n:
            self._n_closed += 1
            self._advance_due = False
        self._sync()

    def _select(self, api_key: str | None) -> None:
        """Serve the next request for the account of ``api_key`` (the default one when unknown:
        its HMAC check then fails); ``None``: back to the default. The lock is held."""
        acct = self.accounts.get(api_key or "", self._default)
        self.book, self.credentials = acct.book, acct.credentials
        self._pubkey, self._account_id = acct.pubkey, acct.account_id

    def _sync(self) -> None:
        """Run every account's book through every candle open/close up to the virtual time."""
        now = self.now_ms()
        for i, acct in enumerate(self.accounts.values()):
            b = acct.book
            b.now_ms = now
            while b.closed < self.n:
                k = b.closed
                if b.opened <= k:
                    if self.open_ms[k] <= now:
                        b.on_open(k)
                        if i == 0:
                            self._push_candle(k, closed=False)
                    else:
                        break
                if self.close_ms[k] <= now:
                    b.on_close(k)
                    if i == 0:
                        self._push_candle(k, closed=True)
                else:
                    break
            f = self._forming(now)
            if f is not None:
                b.set_mark(f[4])
        self._push_account()

    def _push_candle(self, k: int, closed: bool) -> None:
        if self.stream is None:
            return
        d = self.price_decimals
        o = float(self.o[k])
        h, lw, c, v = ((float(self.h[k]), float(self.lo[k]), float(self.c[k]), float(self.v[k]))
                       if closed else (o, o, o, 0.0))
        t = int(self.open_ms[k])
        now = self.now_ms()
        self.stream.publish(f"candle.{self.interval}.{self.plain}", {
            "topic": f"candle.{self.interval}.{self.plain}", "type": "snapshot", "ts": now,
            "data": [{"start": t, "end": t + self.tf_ms - 1, "interval": self.interval,
                      "open": fmt(o, d), "close": fmt(c, d), "high": fmt(h, d), "low": fmt(lw, d),
                      "volume": fmt(v, 8), "turnover": fmt(v * c, 8), "confirm": closed,
                      "timestamp": now}]})

    def _push_account(self) -> None:
        """Push each account's changes to the websocket clients logged in to it."""
        for acct in self.accounts.values():
            b = acct.book
            if self.stream is None:
                b.changed.clear()
                continue
            if not b.changed and acct.fills_pushed == len(b.fills):
                continue
            ids = list(dict.fromkeys(b.changed))
            b.changed.clear()
            fills = b.fills[acct.fills_pushed:]
            acct.fills_pushed = len(b.fills)
            from adapters.apex.venue_ws import ACCOUNT_TOPIC

            self.stream.publish(ACCOUNT_TOPIC, {
                "topic": ACCOUNT_TOPIC, "type": "delta", "contents": {
                    "positions": b.positions_view(),
                    "orders": [b.order_view(b.orders[i]) for i in ids], "fills": fills,
                    "contractWallets": b.wallets_view(), "spotWallets": [], "accounts": [],
                    "transfers": []}}, key=acct.credentials.key)

    def _forming(self, now: int) -> tuple[int, float, float, float, float, float] | None:
        """(index, open, high, low, close, volume) of the candle forming at ``now``, if any."""
        k = int(np.searchsorted(self.open_ms, now, "right")) - 1
        if k < 0 or k >= self.n or self.close_ms[k] <= now:
            return None
        frac = (now - int(self.open_ms[k])) / self.tf_ms
        o, h, lo, c = float(self.o[k]), float(self.h[k]), float(self.lo[k]), float(self.c[k])
        pts = (o, lo, h, c) if c >= o else (o, h, lo, c)  # the ohlc_path shape
        pos = frac * 3.0
        i = min(int(pos), 2)
        price = pts[i] + (pts[i + 1] - pts[i]) * (pos - i)
        seen = [*pts[: i + 1], price]
        d = self.price_decimals
        return (k, o, round(max(seen), d), round(min(seen), d), round(price, d),
                float(self.v[k]) * frac)

    def current_price(self) -> float:
        f = self._forming(self.now_ms())
        if f is not None:
            return f[4]
        k = self.n_closed()
        return float(self.c[k - 1]) if k > 0 else float(self.o[0])

    # -- faults --------------------------------------------------------------------------------
    def inject(self, path: str, kind: str, count: int = 1, *, delay: float = 2.0,
               key: str = "ORDER_REJECTED") -> None:
        """Make the next ``count`` requests to ``path`` (``"*"``: any) fail as ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"fault kind {kind!r} is not one of {', '.join(FAULTS)}")
        if kind == "ws_drop":
            if self.stream is None:
                raise ValueError("fault ws_drop needs the venue's websocket (websocket=True)")
            self.stream.drop(refuse=max(0, count - 1))
            return
        if kind == "partial":
            with self.lock:
                self.book.partial_next += count
            return
        with self.lock:
            self._faults.append(_Fault(path, kind, count, delay, key))

    def _take_fault(self, path: str) -> _Fault | None:
        with self.lock:
            for f in self._faults:
                if f.path in (path, "*") and f.count > 0:
                    f.count -= 1
                    if f.count == 0:
                        self._faults.remove(f)
                    return f
        return None

    # -- auth ----------------------------------------------------------------------------------
    def _check_hmac(self, headers: Mapping[str, str], method: str, raw_path: str,
                    form_pairs: list[tuple[str, str]]) -> None:
        cred = self.credentials
        if headers.get("APEX-API-KEY") != cred.key:
            raise ApexReject(20006, "apikey not exist or apikey error", "API_KEY_INVALID")
        if headers.get("APEX-PASSPHRASE") != cred.passphrase:
            raise ApexReject(20006, "passphrase error", "PASSPHRASE_INVALID")
        ts = headers.get("APEX-TIMESTAMP", "")
        if not ts.isdigit() or abs(int(ts) - time.time() * 1000) > 60_000:
            raise ApexReject(20006, "APEX-TIMESTAMP is not within 60 s of the server clock",
                             "TIMESTAMP_EXPIRED")
        body = "&".join(f"{k}={v}" for k, v in sorted(form_pairs))
        msg = ts + method + raw_path + body
        key = base64.standard_b64encode(cred.secret.encode())
        want = base64.standard_b64encode(hmac.new(key, msg.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want.decode(), headers.get("APEX-SIGNATURE", "")):
            raise ApexReject(20006, "apikey sign error", "SIGNATURE_INVALID")

    def _check_zk(self, form: Mapping[str, str], pair_id: int) -> None:
        if self._pubkey is None:
            raise ApexReject(20016, "the account has no l2 key (set APEX_ZK_SEEDS for the venue)",
                             "L2_SIGNATURE_INVALID")
        checks = [("", form.get("clientId", ""), form.get("size"), form.get("price"),
                   form.get("side"), form.get("signature"))]
        if form.get("isOpenTpslOrder") == "True":
            for kind, flag in (("sl", "isSetOpenSl"), ("tp", "isSetOpenTp")):
                if form.get(flag) == "True":
                    checks.append((kind, form.get(f"{kind}ClientOrderId", ""),
                                   form.get(f"{kind}Size"), form.get(f"{kind}Price"),
                                   form.get(f"{kind}Side"), form.get(f"{kind}Signature")))
        sdk = zklink_sdk()
        acct = int(self._account_id, 10) % _MAX_U32
        taker = int((Decimal(str(self.book.costs.taker_fee)) * 10000).to_integral_value("ROUND_UP"))
        maker = int((Decimal(str(self.book.costs.maker_fee)) * 10000).to_integral_value("ROUND_UP"))
        for kind, cid, size, price, side, sig in checks:
            what = f"{kind}Signature" if kind else "signature"
            if not sig or len(sig) != 130 or not sig.startswith("0x") or \
                    not set(sig[2:]) <= _SIG_HEX:
                raise ApexReject(20016, f"{what} is missing or malformed", "L2_SIGNATURE_INVALID")
            try:
                nonce_int = int(hashlib.sha256(cid.encode()).hexdigest(), 16)
                slot = (nonce_int % _MAX_U64) / _MAX_U32
                scale = Decimal(10) ** _DECIMALS
                p = (Decimal(str(price)) * scale).quantize(Decimal(0), rounding=ROUND_DOWN)
                s = (Decimal(str(size)) * scale).quantize(Decimal(0), rounding=ROUND_DOWN)
                builder = sdk.ContractBuilder(acct, 0, int(slot), nonce_int % _MAX_U32, pair_id,
                                              str(s), str(p), side == "BUY", taker, maker, False)
                ok = sdk.verify_musig(sdk.ZkLinkSignature(pub_key=self._pubkey, signature=sig),
                                      sdk.Contract(builder).get_bytes())
            except Exception:
                ok = False
            if not ok:
                raise ApexReject(20016, f"{what} does not match the order (l2 signature "
                                        "verification failed)", "L2_SIGNATURE_INVALID")

    # -- routes --------------------------------------------------------------------------------
    PAIR_ID = 50001

    def symbols(self) -> dict[str, Any]:
        base = self.symbol.split("-")[0]
        perp = {
            "symbol": self.symbol, "symbolDisplayName": self.plain, "crossSymbolName": self.plain,
            "baseTokenId": base, "settleAssetId": "USDT", "l2PairId": str(self.PAIR_ID),
            "tickSize": self.tick, "stepSize": self.step, "minOrderSize": self.min_size,
            "maxOrderSize": "1000000", "initialMarginRate": fmt(self.imr),
            "maintenanceMarginRate": fmt(self.imr / 2),
            "displayMaxLeverage": str(int(1 / self.imr)),
            "enableTrade": True, "enableDisplay": True, "enableOpenPosition": True,
            "status": "TRADING", "klineInterval": self.interval,
        }
        return {
            "contractConfig": {
                "assets": [{"tokenId": "141", "token": "USDT", "decimals": str(_DECIMALS),
                            "showStep": "0.01"}],
                "tokens": [], "global": {}, "perpetualContract": [perp],
                "prelaunchContract": [], "predictionContract": [], "stockContract": [],
            },
            "spotConfig": {"assets": [], "global": {"defaultChangePubKeyFeeTokenId": "141"},
                           "spot": [], "multiChain": {"chains": []}},
        }

    def _symbol_ok(self, raw: str | None) -> None:
        if raw is None or raw.replace("-", "").upper() != self.plain:
            raise ApexReject(2, f"symbol {raw!r} is not served: this local venue replays "
                                f"{self.symbol} (start it with --symbol {raw} to serve its file "
                                "under that name)", "SYMBOL_NOT_FOUND")

    def klines(self, q: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
        self._symbol_ok(q.get("symbol"))
        interval = q.get("interval", self.interval)
        iv_ms = self._interval_ms(interval)
        try:
            limit = min(int(q.get("limit", MAX_KLINES)), MAX_KLINES)
            start = int(q["start"]) * 1000 if q.get("start") not in (None, "") else None
            end = int(q["end"]) * 1000 if q.get("end") not in (None, "") else None
        except ValueError:
            raise ApexReject(2, "start, end and limit must be integers (start/end in seconds)",
                             "PARAM_INVALID") from None
        if limit < 1:
            raise ApexReject(2, "limit must be at least 1", "PARAM_INVALID")
        now = self.now_ms()
        closed = self.n_closed()
        forming = self._forming(now)
        last = closed + (1 if forming is not None and forming[0] == closed else 0)
        if iv_ms != self.tf_ms:
            return {self.plain: self._klines_of(interval, iv_ms, start, end, limit, last, forming)}
        lo = int(np.searchsorted(self.open_ms[:last], start, "left")) if start is not None else 0
        hi = int(np.searchsorted(self.open_ms[:last], end, "right")) if end is not None else last
        if start is not None:
            idx = range(lo, min(hi, lo + limit))
        else:
            idx = range(max(lo, hi - limit), hi)
        d = self.price_decimals
        out = []
        for k in idx:
            if forming is not None and k == forming[0]:
                _, o, h, lw, c, v = forming
            else:
                o, h, lw, c, v = self.o[k], self.h[k], self.lo[k], self.c[k], self.v[k]
            out.append({"s": self.plain, "i": self.interval, "t": str(int(self.open_ms[k])),
                        "o": fmt(o, d), "h": fmt(h, d), "l": fmt(lw, d), "c": fmt(c, d),
                        "v": fmt(v, 8), "tr": fmt(v * c, 8)})
        if self.speed == 0.0 and closed > 0 and (closed - 1) in idx:
            self._advance_due = True  # rule 1: the newest closed candle has been seen
        return {self.plain: out}

    def _interval_ms(self, interval: str) -> int:
        """Length of an Apex interval code in ms, when this venue can serve it: its own, or a
        multiple of it built from the replayed candles."""
        secs = {code: s for s, code in INTERVALS.items()}.get(interval)
        tf_s = self.tf_ms // 1000
        if secs is None or secs < tf_s or secs % tf_s:
            raise ApexReject(2, f"interval {interval!r} is not served: this local venue replays "
                                f"interval {self.interval} and builds multiples of it (up to 'W'; "
                                "not 'M')", "INTERVAL_NOT_SERVED")
        return secs * 1000

    def _klines_of(self, interval: str, iv_ms: int, start: int | None, end: int | None,
                   limit: int, last: int, forming: tuple[Any, ...] | None) -> list[dict[str, str]]:
        """Candles of a longer interval, aggregated from the replayed ones (weeks start on
        Monday, days at 00:00 UTC); the newest may be forming."""
        origin = _WEEK_ORIGIN_MS if interval == "W" else 0
        opens = self.open_ms[:last]
        if start is not None:
            first = -((origin - start) // iv_ms) * iv_ms + origin  # first group open >= start
            stop = first + limit * iv_ms
            if end is not None:
                stop = min(stop, ((end - origin) // iv_ms + 1) * iv_ms + origin)
            blo = int(np.searchsorted(opens, first, "left"))
        else:
            e = end if end is not None else (int(opens[-1]) if last else self.t0_ms)
            stop = ((e - origin) // iv_ms + 1) * iv_ms + origin
            blo = int(np.searchsorted(opens, stop - limit * iv_ms, "left"))
        bhi = int(np.searchsorted(opens, stop, "left"))
        if bhi <= blo:
            return []
        o, h, lw, c, v = (a[blo:bhi].copy() for a in (self.o, self.h, self.lo, self.c, self.v))
        if forming is not None and blo <= forming[0] < bhi:
            j = forming[0] - blo
            o[j], h[j], lw[j], c[j], v[j] = forming[1:]
        keys = (opens[blo:bhi] - origin) // iv_ms
        groups, starts = np.unique(keys, return_index=True)
        ends = np.append(starts[1:], len(keys)) - 1
        go, gc = o[starts], c[ends]
        gh, gl = np.maximum.reduceat(h, starts), np.minimum.reduceat(lw, starts)
        gv = np.add.reduceat(v, starts)
        d = self.price_decimals
        rows = [{"s": self.plain, "i": interval, "t": str(int(g * iv_ms + origin)),
                 "o": fmt(go[i], d), "h": fmt(gh[i], d), "l": fmt(gl[i], d), "c": fmt(gc[i], d),
                 "v": fmt(gv[i], 8), "tr": fmt(gv[i] * gc[i], 8)} for i, g in enumerate(groups)]
        return rows[:limit] if start is not None else rows[-limit:]

    def ticker(self, q: Mapping[str, str]) -> list[dict[str, Any]]:
        if q.get("symbol") is not None:
            self._symbol_ok(q.get("symbol"))
        p = fmt(self.current_price(), self.price_decimals)
        k = max(self.n_closed(), 1)
        day = max(0, k - int(86_400_000 // self.tf_ms))
        hi = fmt(float(self.h[day:k].max()), self.price_decimals)
        lw = fmt(float(self.lo[day:k].min()), self.price_decimals)
        vol = float(self.v[day:k].sum())
        prev = float(self.o[day])
        return [{"symbol": self.plain, "lastPrice": p, "markPrice": p, "indexPrice": p,
                 "oraclePrice": p, "price24hPcnt": fmt(self.current_price() / prev - 1.0, 6),
                 "highPrice24h": hi, "lowPrice24h": lw, "volume24h": fmt(vol),
                 "turnover24h": fmt(vol * self.current_price(), 4), "fundingRate": "0",
                 "predictedFundingRate": "0", "nextFundingTime": "", "openInterest": "0",
                 "tradeCount": str(k)}]

    def depth(self, q: Mapping[str, str]) -> dict[str, Any]:
        self._symbol_ok(q.get("symbol"))
        p, t = self.current_price(), float(self.tick)
        d = self.price_decimals
        return {"a": [[fmt(p + t * i, d), "1"] for i in range(1, 6)],
                "b": [[fmt(p - t * i, d), "1"] for i in range(1, 6)], "s": self.plain, "u": 1}

    def account(self) -> dict[str, Any]:
        b = self.book
        return {
            "id": self._account_id, "ethereumAddress": ETH_ADDRESS, "l2Key": self._pubkey or "",
            "spotAccount": {"zkAccountId": "123", "defaultSubAccountId": "0", "nonce": 0,
                            "subAccounts": []},
            "contractAccount": {"takerFeeRate": fmt(b.costs.taker_fee, 6),
                                "makerFeeRate": fmt(b.costs.maker_fee, 6),
                                "minInitialMarginRate": "0", "status": "NORMAL",
                                "unrealizePnlPriceType": "MARKET_PRICE"},
            "contractWallets": b.wallets_view(), "spotWallets": [],
            "positions": b.positions_view(),
        }

    def worst_price(self, q: Mapping[str, str]) -> dict[str, str]:
        self._symbol_ok(q.get("symbol"))
        p, t, d = self.current_price(), float(self.tick), self.price_decimals
        side = q.get("side", "BUY")
        worst = math.ceil(p * 1.001 / t) * t if side == "BUY" else math.floor(p * 0.999 / t) * t
        return {"worstPrice": fmt(worst, d), "bidOnePrice": fmt(p - t, d),
                "askOnePrice": fmt(p + t, d)}

    def create_order(self, form: Mapping[str, str]) -> dict[str, Any]:
        sym = form.get("symbol", "")
        if sym.replace("-", "").upper() != self.plain:
            raise reject(f"symbol {sym!r} is not served: this local venue replays {self.symbol}",
                         "ORDER_SYMBOL_INVALID")
        self._check_zk(form, self.PAIR_ID)
        now = self.now_ms()
        active = int(np.searchsorted(self.open_ms, now, "left"))
        o = self.book.place(dict(form), now_ms=now, active_candle=active,
                            min_size=float(self.min_size), step=float(self.step))
        view = self.book.order_view(o)
        view["status"] = "PENDING"  # like the exchange: the create answer is always PENDING
        return view

    def set_margin_rate(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Leverage: ``initialMarginRate`` (1 / leverage) for the symbol, at least the base one."""
        sym = form.get("symbol", "")
        if sym.replace("-", "").upper() != self.plain:
            raise ApexReject(2, f"symbol {sym!r} is not served: this local venue replays "
                                f"{self.symbol}", "SYMBOL_NOT_FOUND")
        try:
            rate = float(form.get("initialMarginRate", ""))
        except ValueError:
            rate = math.nan
        if not self.imr <= rate <= 1.0:
            raise ApexReject(2, f"initialMarginRate {form.get('initialMarginRate')!r} must be "
                                f"between {fmt(self.imr)} (max leverage) and 1", "PARAM_INVALID")
        self.book.imr = rate
        return {}

    def fills(self, q: Mapping[str, str]) -> dict[str, Any]:
        rows = _filtered(list(reversed(self.book.fills)), q)  # newest first
        return {"orders": _page(rows, q), "totalSize": len(rows)}

    def history_orders(self, q: Mapping[str, str]) -> dict[str, Any]:
        rows = [self.book.order_view(o) for o in reversed(list(self.book.orders.values()))]
        rows = _filtered(rows, q)
        return {"orders": _page(rows, q), "totalSize": len(rows)}

    def get_order(self, q: Mapping[str, str], by_client: bool) -> dict[str, Any]:
        oid = q.get("id", "")
        o = (self.book.by_client if by_client else self.book.orders).get(oid)
        if o is None:
            raise reject(f"order {oid} not found", "ORDER_NOT_FOUND")
        return self.book.order_view(o)

    def route(self, method: str, path: str, q: Mapping[str, str],
              form: Mapping[str, str]) -> Any:
        """The answer's ``data`` for one request (the lock is held). Raises ``ApexReject``."""
        if (method, path) in (("GET", "/api/v1/time"), ("GET", "/api/v3/time"),
                              ("GET", "/api/v3/klines")):
            self._poll()
        else:
            self._sync()
        b = self.book
        table: dict[tuple[str, str], Any] = {
            ("GET", "/api/v1/time"): lambda: {"time": self.now_ms()},
            ("GET", "/api/v3/time"): lambda: {"time": self.now_ms()},
            ("GET", "/api/v3/symbols"): self.symbols,
            ("GET", "/api/v3/klines"): lambda: self.klines(q),
            ("GET", "/api/v3/ticker"): lambda: self.ticker(q),
            ("GET", "/api/v3/depth"): lambda: self.depth(q),
            ("GET", "/api/v3/account"): self.account,
            ("GET", "/api/v3/account-balance"): b.balance_view,
            ("GET", "/api/v3/open-orders"): b.open_orders,
            ("GET", "/api/v3/fills"): lambda: self.fills(q),
            ("GET", "/api/v3/history-orders"): lambda: self.history_orders(q),
            ("GET", "/api/v3/order"): lambda: self.get_order(q, by_client=False),
            ("GET", "/api/v3/order-by-client-order-id"): lambda: self.get_order(q, True),
            ("GET", "/api/v3/get-worst-price"): lambda: self.worst_price(q),
            ("POST", "/api/v3/order"): lambda: self.create_order(form),
            ("POST", "/api/v3/delete-order"): lambda: b.cancel(form.get("id", "")),
            ("POST", "/api/v3/delete-client-order-id"):
                lambda: b.cancel(form.get("id", ""), by_client=True),
            ("POST", "/api/v3/delete-open-orders"): lambda: b.cancel_all() or {},
            ("POST", "/api/v3/set-initial-margin-rate"): lambda: self.set_margin_rate(form),
        }
        fn = table.get((method, path))
        if fn is None:
            raise ApexReject(404, f"no route {method} {path} on the local Apex venue",
                             "NOT_FOUND", status=404)
        try:
            return fn()
        finally:
            self._push_account()


def _filtered(rows: list[dict[str, Any]], q: Mapping[str, str]) -> list[dict[str, Any]]:
    """``symbol``, ``side``, ``beginTimeInclusive`` / ``endTimeExclusive`` (ms, on
    ``createdAt``: virtual time) filters of the fills and history-orders queries."""
    try:
        begin = int(q.get("beginTimeInclusive") or 0)
        end = int(q.get("endTimeExclusive") or 0) or None
    except ValueError:
        raise ApexReject(2, "beginTimeInclusive and endTimeExclusive must be epoch ms",
                         "PARAM_INVALID") from None
    sym = (q.get("symbol") or "").replace("-", "").upper()
    side = (q.get("side") or "").upper()
    return [r for r in rows
            if (not sym or r["symbol"].replace("-", "") == sym)
            and (not side or r["side"] == side)
            and int(r["createdAt"]) >= begin and (end is None or int(r["createdAt"]) < end)]


def _page(rows: list[dict[str, Any]], q: Mapping[str, str]) -> list[dict[str, Any]]:
    try:
        limit = int(q.get("limit", 100))
        page = int(q.get("page", 0))
    except ValueError:
        raise ApexReject(2, "limit and page must be integers", "PARAM_INVALID") from None
    return rows[page * limit: (page + 1) * limit]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
