"""A loopback fake of the Telegram Bot API for the real python-telegram-bot 22 client.

Modelled on ``../shared/notes/clients_code/ptb/fake_tg.py``, extended with: multipart bodies
(``sendPhoto``: the photo's bytes are kept), ``answerCallbackQuery``, ``editMessageText``,
callback-query updates (a tap on an inline button), injected 429 answers with ``retry_after``,
and a real outage (``down()`` closes the listening socket: connections are refused; ``up()``
listens again on the same port).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER = {"id": 123456, "is_bot": True, "first_name": "TradeBot", "username": "trade_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}


def _multipart(ctype: str, body: bytes) -> dict[str, Any]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    out: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename() is not None:
            out[name] = data
        else:
            out[name] = data.decode()
    return out


class FakeTelegram:
    def __init__(self, token: str = "123456:FAKE-abcdefghijklmnopqrstuvwxyz012345") -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (method, params) of send*/edit*
        self.fail_429: dict[str, list[int]] = {}  # method -> retry_after of the next answers
        self._updates: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._msg_ids = itertools.count(1000)
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.up()
        self.url = f"http://127.0.0.1:{self.port}"

    # -- test side ---------------------------------------------------------------------------
    def up(self) -> None:
        self.is_down = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def down(self) -> None:
        """Connections refused; a kept-alive connection is dropped without an answer."""
        assert self.httpd is not None
        self.is_down = True
        with self._cond:
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
        self.httpd = None

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._ids), **update}
        with self._cond:
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def push_text(self, text: str, chat_id: int = 42) -> dict[str, Any]:
        msg = {"message_id": next(self._msg_ids), "date": int(time.time()),
               "chat": {"id": chat_id, "type": "private", "first_name": "Alice"},
               "from": {"id": chat_id, "is_bot": False, "first_name": "Alice"}, "text": text}
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0,
                                "length": len(text.split()[0])}]
        return self.push({"message": msg})

    def push_tap(self, data: str, message_id: int, chat_id: int = 42) -> dict[str, Any]:
        """A tap on an inline button of the bot's message ``message_id``."""
        msg = {"message_id": message_id, "date": int(time.time()),
               "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER, "text": "prompt"}
        return self.push({"callback_query": {
            "id": str(next(self._ids)), "chat_instance": "ci", "data": data, "message": msg,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Alice"}}})

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    def wait(self, pred, what: str, timeout: float = 8.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = pred()
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{what}: not seen in {timeout} s; calls {self.methods()[-20:]}")

    def wait_sent(self, n: int, method: str | None = None, timeout: float = 8.0
                  ) -> list[dict[str, Any]]:
        def hits() -> list[dict[str, Any]]:
            h = [p for m, p in list(self.sent) if method is None or m == method]
            return h if len(h) >= n else []
        return self.wait(hits, f"{n}x {method or 'send'}", timeout)

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [p.get("text") or p.get("caption") or "" for m, p in list(self.sent)
                if m != "editMessageReplyMarkup"
                and (chat_id is None or str(p.get("chat_id")) == str(chat_id))]

    # -- server side -------------------------------------------------------------------------
    def _answer(self, method: str, p: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("deleteWebhook", "setMyCommands", "answerCallbackQuery", "setWebhook"):
            return True
        if method == "getUpdates":
            offset = int(p.get("offset") or 0)
            wait = min(float(p.get("timeout") or 0), 0.5)
            with self._cond:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if not self._updates and wait:
                    self._cond.wait(wait)
                return list(self._updates)
        if method == "editMessageReplyMarkup":
            self.sent.append((method, p))
            return True
        if method.startswith("send") or method == "editMessageText":
            chat_id = p.get("chat_id") or 42
            mid = int(p["message_id"]) if p.get("message_id") else next(self._msg_ids)
            self.sent.append((method, {**p, "_message_id": mid}))
            out = {"message_id": mid, "date": int(time.time()),
                   "chat": {"id": int(chat_id), "type": "private"}, "from": BOT_USER}
            if "text" in p:
                out["text"] = p["text"]
            if method == "sendPhoto":
                out["photo"] = [{"file_id": "f1", "file_unique_id": "u1", "width": 720,
                                 "height": 405}]
            return out
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # the headers and the body of an answer are two writes: with Nagle's algorithm the
            # body waits for the client's delayed ACK of the headers, 40 ms on every request
            # (Telegram's servers have no such stall; it was most of the bench's latency)
            disable_nagle_algorithm = True

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if fake.is_down:  # a kept-alive connection during an outage: drop it
                    self.close_connection = True
                    return
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("application/json"):
                    params = json.loads(body or b"{}")
                elif ctype.startswith("multipart/form-data"):
                    params = _multipart(ctype, body)
                else:
                    params = dict(parse_qsl(body.decode()))
                prefix = f"/bot{fake.token}/"
                if not self.path.startswith(prefix):
                    return self._send({"ok": False, "error_code": 401,
                                       "description": "Unauthorized"}, 401)
                method = self.path[len(prefix):]
                fake.calls.append((method, params))
                queued = fake.fail_429.get(method)
                if queued:
                    ra = queued.pop(0)
                    return self._send({"ok": False, "error_code": 429,
                                       "description": f"Too Many Requests: retry after {ra}",
                                       "parameters": {"retry_after": ra}}, 429)
                result = fake._answer(method, params)
                if result is None:
                    return self._send({"ok": False, "error_code": 404,
                                       "description": "Not Found"}, 404)
                self._send({"ok": True, "result": result})

            do_GET = do_POST

            def _send(self, obj: Any, status: int = 200) -> None:
                raw = json.dumps(obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return H

    def close(self) -> None:
        if self.httpd is not None:
            self.down()
