"""A loopback ApeX Omni market-data server whose clock and candles a test controls.

It answers what the real ``apexomni`` client sends for market data (``/api/v1/time``,
``/api/v3/time``, ``/api/v3/klines`` with ``start``/``end`` in seconds and at most 200 candles,
values as strings, ``t`` a string of ms) with the venue's shapes, and lets a test do what the
local venue does not: set the server time by hand, publish a forming candle, send duplicate or
revised candles, drop candles for good, answer errors in Apex's shape, or go down.
The full local venue (``tradebot venue``) is what the parity and end-to-end tests use.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class MarketState:
    tf_ms: int = 900_000
    now_ms: int = 0
    candles: dict[int, tuple[float, float, float, float, float]] = field(default_factory=dict)
    forming: bool = True  # also send the candle that has not closed yet (as the real venue does)
    duplicate: bool = False  # send every candle twice
    revised: dict[int, tuple[float, float, float, float, float]] = field(default_factory=dict)
    missing: set[int] = field(default_factory=set)  # open times the venue never has
    down: bool = False  # answer 503 with an HTML body (apexomni: FailedRequestError)
    error: dict[str, Any] | None = None  # answer this Apex error body to klines
    no_v1_time: bool = False  # only /api/v3/time (as Omni documents it)
    fail_next: list[str] = field(default_factory=list)  # klines: "503", "429", "slow" (2 s), ...
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, t_ms: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        self.candles[t_ms] = (o, h, lo, c, v)

    def klines(self, q: dict[str, str]) -> dict[str, Any]:
        symbol = q.get("symbol", "BTCUSDT")
        limit = int(q.get("limit", 200))
        if limit > 200:
            return {"code": 10001, "msg": "limit must be <= 200", "key": "PARAM_INVALID"}
        start = int(q["start"]) * 1000 if "start" in q else None
        end = int(q["end"]) * 1000 if "end" in q else None
        rows = []
        for t in sorted(self.candles):
            if t in self.missing or t > self.now_ms:
                continue
            if t + self.tf_ms > self.now_ms and not self.forming:
                continue
            if (start is not None and t < start) or (end is not None and t > end):
                continue
            o, h, lo, c, v = self.revised.get(t, self.candles[t])
            row = {"s": symbol, "i": q.get("interval", "15"), "t": str(t), "o": repr(o),
                   "h": repr(h), "l": repr(lo), "c": repr(c), "v": repr(v),
                   "tr": repr(c * v)}
            rows.append(row)
            if self.duplicate:
                rows.append(dict(row))
        if start is None:  # the newest `limit`
            rows = rows[-limit:]
        return {"data": {symbol: rows[:limit * (2 if self.duplicate else 1)]}, "timeCost": "1"}


class MarketFake:
    """Context manager: ``with MarketFake() as m: m.url, m.state``."""

    def __init__(self, state: MarketState | None = None) -> None:
        self.state = state or MarketState()
        st = self.state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, body: bytes, status: int = 200, ctype: str = "application/json"
                      ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = dict(parse_qsl(parts.query))
                with st.lock:
                    st.requests.append((parts.path, q))
                    if st.down:
                        return self._send(b"<html>503 Service Unavailable</html>", 503,
                                          "text/html")
                    if parts.path == "/api/v3/time" or (parts.path == "/api/v1/time"
                                                        and not st.no_v1_time):
                        body: Any = {"data": {"time": st.now_ms}}
                    elif parts.path == "/api/v3/klines" and st.fail_next:
                        what = st.fail_next.pop(0)
                        if what == "503":
                            return self._send(b"<html>503 Service Unavailable</html>", 503,
                                              "text/html")
                        if what == "slow":
                            time.sleep(2.0)
                            body = st.klines(q)
                        else:
                            body = {"code": 429, "msg": "too many requests", "key": "RATE_LIMIT",
                                    "detail": {"retryAfter": "0.01"}}
                    elif parts.path == "/api/v3/klines":
                        body = st.error if st.error is not None else st.klines(q)
                    else:
                        body = {"code": 404, "msg": f"no route GET {parts.path}",
                                "key": "NOT_FOUND"}
                self._send(json.dumps(body).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> MarketFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def klines_requests(self) -> list[dict[str, str]]:
        return [q for p, q in self.state.requests if p == "/api/v3/klines"]
