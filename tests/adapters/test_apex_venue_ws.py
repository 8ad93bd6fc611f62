"""The local Apex venue's websocket side with the real apexomni ``WebSocket`` client.

Needs apexomni (fails in CI without it, skips elsewhere). apexomni's connect waits about 1 s per
socket, so this file takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import time

import pytest

from tests.adapters.test_apex_venue import T0_MS, make_bars, order_kw
from tests.conftest import need


@pytest.fixture(autouse=True, scope="module")
def _needs_apexomni():
    need(importlib.util.find_spec("apexomni") is not None,
         "apexomni is not installed (make venv installs it with --no-deps)")


def _until(pred, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_candles_and_account_are_pushed_to_the_real_websocket_client():
    from adapters.apex.client import ApexClient, load_apexomni
    from adapters.apex.venue import LocalVenue

    load_apexomni()
    from apexomni.websocket_api import WebSocket

    with LocalVenue(make_bars(20), start=T0_MS + 5 * 900_000, websocket=True) as v:
        cred = v.credentials
        candles, account = queue.Queue(), queue.Queue()
        ws = WebSocket(endpoint=v.ws_url, api_key_credentials=cred.api_key_credentials())
        try:
            ws.klines_stream(candles.put, "BTCUSDT", 15)
            ws.account_info_stream_v3(account.put)
            assert _until(lambda: any(c.authed and "ws_zk_accounts_v3" in c.topics
                                      for c in v.stream._conns))
            assert _until(lambda: any("candle.15.BTCUSDT" in c.topics for c in v.stream._conns))
            time.sleep(0.3)  # apexomni registers its callback after sending the subscription
            v.advance()  # candle 5 closes, candle 6 opens
            closed = candles.get(timeout=10)["data"][0]
            assert (closed["start"], closed["confirm"]) == (T0_MS + 5 * 900_000, True)
            opened = candles.get(timeout=10)["data"][0]
            assert (opened["start"], opened["confirm"]) == (T0_MS + 6 * 900_000, False)
            c = ApexClient(v.url, cred)
            c.create_order(**order_kw("ws-1", price="45000.0"))
            pushes = [account.get(timeout=10)]
            while not any(pu["contents"]["fills"] for pu in pushes):
                pushes.append(account.get(timeout=10))
            contents = pushes[-1]["contents"]
            assert contents["fills"][0]["clientId"] == "ws-1"
            assert contents["positions"][0]["side"] == "LONG"
            assert any(o["clientId"] == "ws-1" and o["status"] == "FILLED"
                       for pu in pushes for o in pu["contents"]["orders"])
        finally:
            ws.ws_public.exit()
            ws.ws_private.exit()
        paths = {r["path"].split("?")[0] for r in v.stream.received}
        assert paths == {"/realtime_public", "/realtime_private"}


def test_bad_login_is_refused_and_gets_no_account_pushes():
    from websockets.sync.client import connect

    from adapters.apex.venue import LocalVenue

    with LocalVenue(make_bars(5), websocket=True) as v:
        with connect(v.ws_url + "/realtime_private?v=2&timestamp=1") as ws:
            req = {"type": "login", "topics": ["ws_zk_accounts_v3"], "httpMethod": "GET",
                   "requestPath": "/ws/accounts", "apiKey": "test-key", "passphrase": "test-pass",
                   "timestamp": 1, "signature": "bm90IGEgc2lnbmF0dXJl"}
            ws.send(json.dumps({"op": "login", "args": [json.dumps(req)]}))
            reply = json.loads(ws.recv(timeout=5))
            assert reply["success"] is False and "signature" in reply["ret_msg"]
        assert not any(c.authed for c in v.stream._conns)
        with connect(v.ws_url + "/realtime_public?v=2") as ws:
            ws.send(json.dumps({"op": "ping", "args": ["7"]}))
            assert json.loads(ws.recv(timeout=5)) == {"op": "pong", "args": ["7"]}
