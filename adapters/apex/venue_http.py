"""The local Apex venue's HTTP side: one ``ThreadingHTTPServer`` speaking Apex's REST framing.

Requests are parsed here, faults injected, the HMAC checked and the route run under the venue's
lock (``adapters.apex.venue.LocalVenue``); every answer is ``{"data": ..., "timeCost": ...}`` or an
error in Apex's shape, written in one send with ``TCP_NODELAY``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from adapters.apex.venue_book import ApexReject

if TYPE_CHECKING:
    from adapters.apex.venue import LocalVenue, _Fault

logger = logging.getLogger("adapters.apex.venue")

PUBLIC = {("GET", p) for p in ("/api/v1/time", "/api/v3/time", "/api/v3/symbols",
                               "/api/v3/klines", "/api/v3/ticker", "/api/v3/depth")}


class VenueHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], venue: LocalVenue) -> None:
        self.venue = venue
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the exchange (requests.Session reuses it)
    server_version = "LocalApexVenue/1"
    server: VenueHTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in one write, and without Nagle: else the client's delayed
        # ACK costs ~40 ms a request on keep-alive connections
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, obj: Any, status: int = 200, raw: bytes | None = None,
              ctype: str = "application/json") -> None:
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n" + body)  # type: ignore[attr-defined]
        self.flush_headers()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read(self, method: str) -> tuple[str, dict[str, str], list[tuple[str, str]]]:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        form_pairs: list[tuple[str, str]] = []
        if method == "POST":
            n = int(self.headers.get("Content-Length") or 0)
            form_pairs = parse_qsl(self.rfile.read(n).decode(), keep_blank_values=True)
        return parts.path, query, form_pairs

    def _handle(self, method: str) -> None:
        venue = self.server.venue
        t0 = time.perf_counter()
        path, query, form_pairs = self._read(method)
        form = dict(form_pairs)
        fault = venue._take_fault(path)
        rec = {"method": method, "path": path, "raw_path": self.path, "query": query,
               "form": form, "fault": fault.kind if fault else None, "error": None}
        if venue.record_requests:
            with venue.lock:
                venue.requests.append(rec)
        if fault is not None and fault.kind != "drop_reply_after_accept":
            return self._fault(fault)
        try:
            with venue.lock:
                venue._select(self.headers.get("APEX-API-KEY"))  # the account that signed it
                try:
                    if (method, path) not in PUBLIC:
                        venue._check_hmac(self.headers, method, self.path, form_pairs)
                    data = venue.route(method, path, query, form)
                finally:
                    venue._select(None)
        except ApexReject as exc:
            rec["error"] = exc.key
            return self._send(exc.body(), status=exc.status)
        except Exception as exc:  # a bug here must not kill the server: answer like a 500
            logger.exception("local venue: %s %s failed", method, path)
            rec["error"] = "INTERNAL_ERROR"
            return self._send({"code": 500, "msg": f"internal error: {exc}",
                               "key": "INTERNAL_ERROR"}, status=500)
        if fault is not None:  # drop_reply_after_accept: handled, reply lost
            return self._drop()
        ms = (time.perf_counter() - t0) * 1000
        return self._send({"data": data, "timeCost": str(int(ms * 1000))})

    def _fault(self, f: _Fault) -> None:
        if f.kind == "timeout":
            time.sleep(f.delay)
            return self._drop()
        if f.kind == "http500":
            return self._send({"code": 500, "msg": "internal server error (injected)",
                               "key": "INTERNAL_ERROR"}, status=500)
        if f.kind == "rate_limit":
            return self._send({"code": 429, "msg": "too many requests (injected)",
                               "key": "RATE_LIMIT", "retryAfter": 1}, status=429)
        if f.kind == "html502":
            return self._send(None, status=502, ctype="text/html",
                              raw=b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        return self._send({"code": 3, "msg": "order rejected (injected)", "key": f.key})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
