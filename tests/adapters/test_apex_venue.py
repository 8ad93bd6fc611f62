"""The local Apex venue with the real apexomni client on loopback, and adapters.apex.client's
error mapping.

Needs apexomni (installed --no-deps by `make venv`): fails in CI, skips elsewhere, without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from engine.bars import Bars
from engine.errors import (
    DuplicateClientId,
    OrderRejected,
    TransientVenueError,
    VenueError,
    VenueStateUnknown,
    VenueUnreachable,
)
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tests" / "fixtures" / "DEMO-USDT_15m_data.csv"
MIN15_NS = 15 * 60 * 10**9
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


@pytest.fixture(autouse=True, scope="module")
def _needs_apexomni():
    need(importlib.util.find_spec("apexomni") is not None,
         "apexomni is not installed (make venv installs it with --no-deps)")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "cache"))
    for k in ("APEX_API_KEY", "APEX_API_SECRET", "APEX_API_PASSPHRASE", "APEX_ZK_SEEDS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)  # no project .env


def make_bars(n: int, symbol: str = "BTC-USDT", seed: int = 7) -> Bars:
    """``n`` 15m candles from 2024-01-01, prices on a 0.1 grid."""
    rng = np.random.default_rng(seed)
    close = np.round(40_000 + np.cumsum(rng.normal(0, 30, n)), 1)
    open_ = np.concatenate([[40_000.0], close[:-1]])
    high = np.round(np.maximum(open_, close) + rng.uniform(1, 40, n), 1)
    low = np.round(np.minimum(open_, close) - rng.uniform(1, 40, n), 1)
    ts = np.arange(n, dtype=np.int64) * MIN15_NS + T0_MS * 1_000_000
    return Bars.from_columns(symbol, "15m", MIN15_NS, ts, open_, high, low, close,
                             rng.uniform(1, 10, n))


def bars_of(rows: list[tuple[float, float, float, float]], symbol: str = "BTC-USDT") -> Bars:
    """Hand-made candles (open, high, low, close) from 2024-01-01 00:00."""
    a = np.array(rows, dtype=np.float64)
    ts = np.arange(len(rows), dtype=np.int64) * MIN15_NS + T0_MS * 1_000_000
    return Bars.from_columns(symbol, "15m", MIN15_NS, ts, a[:, 0], a[:, 1], a[:, 2], a[:, 3],
                             np.ones(len(rows)))


@pytest.fixture(scope="module")
def venue_mod():
    from adapters.apex import venue

    return venue


def client_for(venue, **kw):
    from adapters.apex.client import ApexClient

    return ApexClient(venue.url, kw.pop("credentials", venue.credentials), **kw)


def order_kw(client_id: str, side: str = "BUY", size: str = "0.010", price: str = "41000.0",
             **extra):
    return {"symbol": "BTC-USDT", "side": side, "type": "MARKET", "size": size, "price": price,
            "timeInForce": "IMMEDIATE_OR_CANCEL", "clientId": client_id, **extra}


# -- dependency, signing, authentication ---------------------------------------------------------


def test_client_signs_an_order_that_the_venue_verifies_and_accepts(venue_mod):
    from adapters.apex.client import MAIN_NET, TEST_NET, load_apexomni

    load_apexomni()  # the sympy shim first: a bare `import apexomni` fails with sympy >= 1.13
    from apexomni.constants import APEX_OMNI_HTTP_MAIN, APEX_OMNI_HTTP_TEST

    assert (MAIN_NET, TEST_NET) == (APEX_OMNI_HTTP_MAIN, APEX_OMNI_HTTP_TEST)
    with venue_mod.LocalVenue(make_bars(10)) as v:
        c = client_for(v)
        c.server_time_ms()  # closes the first candle (lockstep rule 3)
        order = c.create_order(**order_kw("c-1", price="45000.0"))
        assert order["status"] == "PENDING" and order["clientId"] == "c-1"
        posted = next(r for r in v.requests if r["method"] == "POST")
        assert posted["error"] is None
        sig = posted["form"]["signature"]
        assert sig.startswith("0x") and len(sig) == 130
        # the venue checked the HMAC on every private request (a failure would be recorded)
        assert {r["path"] for r in v.requests} >= {"/api/v3/account", "/api/v3/symbols",
                                                   "/api/v3/order"}
        assert all(r["error"] is None for r in v.requests)


def test_wrong_secret_is_refused_in_apex_shape(venue_mod):
    from adapters.apex.client import ApexCredentials, private_client

    with venue_mod.LocalVenue(make_bars(5)) as v:
        bad = ApexCredentials("test-key", "wrong-secret", "test-pass", "ab" * 64)
        raw = private_client(v.url, bad, timeout=5).get_account_balance_v3()
        assert raw == {"code": 20006, "msg": "apikey sign error", "key": "SIGNATURE_INVALID"}
        with pytest.raises(VenueError, match="APEX_API_SECRET") as ei:
            client_for(v, credentials=bad).balance()
        assert type(ei.value) is VenueError
        # a wrong key or passphrase is refused too
        other = ApexCredentials("other-key", "test-secret", "test-pass", "ab" * 64)
        assert private_client(v.url, other).open_orders_v3()["key"] == "API_KEY_INVALID"


def test_tampered_or_foreign_zk_signature_is_refused(venue_mod):
    from adapters.apex.client import ApexCredentials

    with venue_mod.LocalVenue(make_bars(5)) as v:
        c = client_for(v)
        c.create_order(**order_kw("z-1", price="45000.0"))
        form = dict(next(r for r in v.requests if r["method"] == "POST")["form"])
        form["clientId"] = "z-2"  # new nonce: the old signature no longer matches
        raw = c.private._post(endpoint="/api/v3/order", data=form)
        assert raw["key"] == "L2_SIGNATURE_INVALID" and raw["code"] == 20016
        form["clientId"], form["size"] = "z-1", "0.020"
        assert c.private._post(endpoint="/api/v3/order", data=form)["key"] == \
            "L2_SIGNATURE_INVALID"
        # right API key, wrong zk seeds (another account's key)
        other = ApexCredentials("test-key", "test-secret", "test-pass", "cd" * 64)
        with pytest.raises(VenueError, match="APEX_ZK_SEEDS"):
            client_for(v, credentials=other).create_order(**order_kw("z-3", price="45000.0"))
        assert len(v.book.orders) == 1
        # no seeds at all: the client cannot sign
        unsigned = ApexCredentials("test-key", "test-secret", "test-pass", "")
        with pytest.raises(VenueError, match="APEX_ZK_SEEDS"):
            client_for(v, credentials=unsigned).create_order(**order_kw("z-4", price="45000.0"))


# -- market data ---------------------------------------------------------------------------------


def test_klines_pagination_strings_and_the_forming_candle(venue_mod):
    bars = make_bars(500)
    start = T0_MS + 450 * 15 * 60_000  # 450 candles of history
    with venue_mod.LocalVenue(bars, start=start) as v:
        c = client_for(v)
        assert v.n_closed() == 450 and c.server_time_ms() == start
        page = c.public.klines_v3(symbol="BTC-USDT", interval="15", start=T0_MS // 1000,
                                  limit=500)["data"]["BTCUSDT"]
        assert len(page) == 200  # limit clamped to 200
        assert all(isinstance(x, str) for row in page for x in row.values())
        assert int(page[0]["t"]) == T0_MS and int(page[-1]["t"]) == T0_MS + 199 * 900_000
        assert float(page[5]["o"]) == bars.open[5] and float(page[5]["c"]) == bars.close[5]
        got = []
        nxt = T0_MS // 1000
        while True:
            rows = c.klines("BTC-USDT", "15", start_s=nxt, limit=200)
            got += rows
            if len(rows) < 200:
                break
            nxt = int(rows[-1]["t"]) // 1000 + 900
        ts = [int(r["t"]) for r in got]
        assert ts == [T0_MS + i * 900_000 for i in range(451)]  # 450 closed + the forming one
        forming = got[-1]
        assert int(forming["t"]) + 900_000 > v.now_ms() == start  # not closed: drop it
        assert forming["o"] == forming["c"] == forming["h"] == forming["l"] and forming["v"] == "0"
        # end bounds the range (inclusive), no start = the last `limit` up to end
        tail = c.klines("BTC-USDT", "15", end_s=(T0_MS + 99 * 900_000) // 1000, limit=10)
        assert [int(r["t"]) for r in tail] == [T0_MS + i * 900_000 for i in range(90, 100)]
        # an interval it cannot build, or another symbol: Apex-shaped error
        assert c.public.klines_v3(symbol="BTCUSDT", interval="1")["key"] == "INTERVAL_NOT_SERVED"
        with pytest.raises(VenueError, match=r"ETH-?USDT"):
            c.klines("ETH-USDT", "15")


def test_longer_intervals_are_built_from_the_replayed_candles(venue_mod):
    bars = make_bars(200)
    with venue_mod.LocalVenue(bars, start=T0_MS + 10 * 900_000) as v:  # 02:30 on day 1
        c = client_for(v)
        rows = c.klines("BTC-USDT", "60", start_s=T0_MS // 1000)
        assert [int(r["t"]) for r in rows] == [T0_MS, T0_MS + 3_600_000, T0_MS + 7_200_000]
        h0 = rows[0]
        assert (float(h0["o"]), float(h0["c"])) == (bars.open[0], bars.close[3])
        assert float(h0["h"]) == bars.high[:4].max() and float(h0["l"]) == bars.low[:4].min()
        assert float(h0["v"]) == pytest.approx(bars.volume[:4].sum(), rel=1e-9)
        forming = rows[-1]  # 02:00-03:00: two closed 15m candles and the forming one's open
        assert float(forming["c"]) == bars.open[10]
        assert float(forming["v"]) == pytest.approx(bars.volume[8:10].sum(), rel=1e-9)
        assert v.n_closed() == 10
        c.klines("BTC-USDT", "60")  # only the replayed interval moves the lockstep clock
        assert c.server_time_ms() == T0_MS + 10 * 900_000
        v.advance(150)
        days = c.klines("BTC-USDT", "D")
        assert [int(r["t"]) for r in days] == [T0_MS, T0_MS + 86_400_000]
        assert float(days[0]["h"]) == bars.high[:96].max()
        # 160 candles closed (40 h): the last two 4h candles are 36-40 h and the forming one
        assert [int(r["t"]) for r in c.klines("BTC-USDT", "240", limit=2)] == \
            [T0_MS + 144 * 900_000, T0_MS + 160 * 900_000]
        weeks = c.klines("BTC-USDT", "W")  # 2024-01-01 is a Monday
        assert [int(r["t"]) for r in weeks] == [T0_MS]
        assert c.public.klines_v3(symbol="BTCUSDT", interval="5")["key"] == "INTERVAL_NOT_SERVED"
        assert c.public.klines_v3(symbol="BTCUSDT", interval="M")["key"] == "INTERVAL_NOT_SERVED"


def test_lockstep_steps_one_candle_per_poll_after_the_newest_was_seen(venue_mod):
    with venue_mod.LocalVenue(make_bars(20), start=T0_MS + 5 * 900_000) as v:
        c = client_for(v)
        # rule 1: only a klines answer holding the newest closed candle counts as seen
        assert c.server_time_ms() == T0_MS + 5 * 900_000 and v.n_closed() == 5
        c.klines("BTC-USDT", "15", start_s=T0_MS // 1000, limit=2)  # old history only
        assert c.server_time_ms() == T0_MS + 5 * 900_000 and v.n_closed() == 5
        rows = c.klines("BTC-USDT", "15", start_s=T0_MS // 1000, limit=200)
        assert int(rows[-2]["t"]) == T0_MS + 4 * 900_000  # newest closed, then the forming one
        # orders, account, ticker do not move the clock
        c.ticker("BTC-USDT")
        c.balance()
        assert v.n_closed() == 5
        # rule 2: the next time or klines request steps exactly one candle first
        assert c.server_time_ms() == T0_MS + 6 * 900_000
        assert c.server_time_ms() == T0_MS + 6 * 900_000  # not seen yet: no further step
        rows = c.klines("BTC-USDT", "15", start_s=(T0_MS + 5 * 900_000) // 1000)
        assert [int(r["t"]) for r in rows] == [T0_MS + 5 * 900_000, T0_MS + 6 * 900_000]
        rows = c.klines("BTC-USDT", "15", start_s=(T0_MS + 5 * 900_000) // 1000)  # steps
        assert len(rows) == 3 and v.n_closed() == 7
        assert v.advance(100) == 20 and v.finished
        assert c.server_time_ms() == T0_MS + 20 * 900_000
        assert int(c.klines("BTC-USDT", "15")[-1]["t"]) == T0_MS + 19 * 900_000  # none forming


def test_speed_runs_the_clock_on_the_wall_clock(venue_mod):
    with venue_mod.LocalVenue(make_bars(40), speed=900 * 100) as v:  # 100 candles a second
        c = client_for(v)
        t1 = c.server_time_ms()
        time.sleep(0.1)
        t2 = c.server_time_ms()
        # at least 0.1 s x 90,000 virtual s/s passed (more on a loaded machine)
        assert t2 - t1 >= 0.1 * 900 * 100 * 1000
        time.sleep(0.5)
        assert c.server_time_ms() == T0_MS + 40 * 900_000  # stops at the last close
        assert v.finished


def test_ticker_and_symbols(venue_mod):
    bars = make_bars(10)
    with venue_mod.LocalVenue(bars, start=T0_MS + 3 * 900_000) as v:
        c = client_for(v)
        t = c.ticker("BTC-USDT")
        assert t["symbol"] == "BTCUSDT" and float(t["lastPrice"]) == bars.open[3]
        perp = c.symbols()["contractConfig"]["perpetualContract"][0]
        assert perp["symbol"] == "BTC-USDT" and perp["tickSize"] == "0.1"


# -- orders ----------------------------------------------------------------------------------


def test_market_order_fills_at_the_next_open_and_attached_stop_fills_on_the_path(venue_mod):
    rows = [(100.0, 101.0, 99.0, 100.0), (100.5, 102.0, 98.0, 101.0),
            (101.0, 103.0, 100.0, 102.0), (102.0, 102.5, 101.5, 102.0)]
    with venue_mod.LocalVenue(bars_of(rows), start=T0_MS + 900_000, tick_size="0.1") as v:
        c = client_for(v)
        assert c.klines("BTC-USDT", "15")[-2]["t"] == str(T0_MS)  # seen candle 0
        c.create_order(**order_kw(
            "m-1", size="1.000", price="101.0", isOpenTpslOrder=True,
            isSetOpenSl=True, slSide="SELL", slSize="1.000", slTriggerPrice="98.5",
            slPrice="90.0", isSetOpenTp=True, tpSide="SELL", tpSize="1.000",
            tpTriggerPrice="101.5", tpPrice="110.0", triggerPriceType="MARKET"))
        fills = c.fills()["orders"]
        assert [(f["side"], f["price"], f["liquidity"]) for f in fills] == \
            [("BUY", "100.5", "TAKER")]  # candle 1's open: the next open after candle 0
        assert float(fills[0]["fee"]) == pytest.approx(100.5 * 0.0005)
        pos = c.account()["positions"][0]
        assert (pos["side"], pos["size"], pos["entryPrice"]) == ("LONG", "1", "100.5")
        assert sorted(o["type"] for o in c.open_orders()) == ["STOP_MARKET",
                                                              "TAKE_PROFIT_MARKET"]
        c.server_time_ms()  # candle 1 closes: high 102 and low 98 both reach a child
        fills = c.fills()["orders"]
        # stop_first (the default policy): a long sees the low first, so the stop fills
        assert [(f["orderType"], f["price"]) for f in fills[:1]] == [("STOP_MARKET", "98.5")]
        assert fills[0]["ambiguous"] and not fills[0]["gap"]  # the target was in range too
        assert c.account()["positions"] == [] and c.open_orders() == []
        bal = c.balance()
        expect = 10_000 + (98.5 - 100.5) - 100.5 * 0.0005 - 98.5 * 0.0005
        assert float(bal["totalEquityValue"]) == pytest.approx(expect, abs=1e-6)


def test_target_first_policy_fills_the_take_profit(venue_mod):
    rows = [(100.0, 101.0, 99.0, 100.0), (100.5, 102.0, 98.0, 101.0), (101.0, 101.0, 101.0, 101.0)]
    with venue_mod.LocalVenue(bars_of(rows), start=T0_MS + 900_000, tick_size="0.1",
                              policy="target_first") as v:
        c = client_for(v)
        c.create_order(**order_kw(
            "t-1", size="1.000", price="101.0", isOpenTpslOrder=True,
            isSetOpenSl=True, slSide="SELL", slSize="1.000", slTriggerPrice="98.5",
            slPrice="90.0", isSetOpenTp=True, tpSide="SELL", tpSize="1.000",
            tpTriggerPrice="101.5", tpPrice="110.0", triggerPriceType="MARKET"))
        v.advance()
        f = c.fills()["orders"][0]
        assert (f["orderType"], f["price"], f["liquidity"]) == ("TAKE_PROFIT_MARKET", "101.5",
                                                                "MAKER")


def test_limit_stop_reduce_only_delete_and_delete_all(venue_mod):
    rows = [(100.0, 101.0, 99.0, 100.0)] * 2 + [(100.0, 100.5, 96.0, 97.0)] + \
        [(97.0, 97.5, 96.5, 97.0)] * 3
    with venue_mod.LocalVenue(bars_of(rows), start=T0_MS + 900_000, tick_size="0.1") as v:
        c = client_for(v)
        lim = c.create_order(symbol="BTC-USDT", side="BUY", type="LIMIT", size="1.000",
                             price="97.0", clientId="l-1")
        far = c.create_order(symbol="BTC-USDT", side="BUY", type="LIMIT", size="1.000",
                             price="50.0", clientId="l-2")
        assert {o["status"] for o in c.open_orders()} == {"OPEN"}
        with pytest.raises(OrderRejected, match="reduce"):  # no position to reduce yet
            c.create_order(symbol="BTC-USDT", side="SELL", type="STOP_MARKET", size="1.000",
                           price="90.0", triggerPrice="95.0", reduceOnly=True,
                           isPositionTpsl=True, clientId="s-0")
        assert c.delete_order(far["id"]) == far["id"]
        with pytest.raises(OrderRejected, match="CANCELED"):
            c.delete_order(far["id"])
        v.advance()  # candle 1: 99 > 97, no fill
        assert c.fills()["totalSize"] == 0
        v.advance()  # candle 2 reaches 96: the limit fills at its price
        f = c.fills()["orders"][0]
        assert (f["orderId"], f["price"], f["liquidity"]) == (lim["id"], "97", "MAKER")
        stop = c.create_order(symbol="BTC-USDT", side="SELL", type="STOP_MARKET", size="1.000",
                              price="90.0", triggerPrice="95.0", reduceOnly=True,
                              isPositionTpsl=True, clientId="s-1")
        assert c.order_by_client_id("s-1")["status"] == "UNTRIGGERED"
        c.delete_open_orders("BTC-USDT")
        assert c.open_orders() == []
        assert c.private.get_order_v3(id=stop["id"])["data"]["status"] == "CANCELED"
        # a reduce-only market close fills at the next open, capped at the position
        c.create_order(**order_kw("r-1", side="SELL", size="5.000", price="90.0",
                                  reduceOnly=True))
        assert c.account()["positions"] == []
        assert c.fills()["orders"][0]["size"] == "1"
        hist = c.history_orders()
        assert hist["totalSize"] == 4
        # filters: side, and the virtual time of the fill (the limit filled at candle 2's open)
        assert c.fills(side="BUY")["totalSize"] == 1
        assert c.fills(symbol="BTC-USDT", beginTimeInclusive=T0_MS + 3 * 900_000)["totalSize"] == 1
        assert c.fills(endTimeExclusive=T0_MS + 3 * 900_000)["orders"][0]["orderId"] == lim["id"]
        assert c.history_orders(side="SELL", limit=1, page=1)["totalSize"] == 2


def test_leverage_changes_the_margin_an_order_needs(venue_mod):
    with venue_mod.LocalVenue(make_bars(5), balance=500.0) as v:  # prices near 40,000
        c = client_for(v)
        # 0.2 BTC ~ 8,000 USDT: margin 160 at the default 50x, 800 at 10x
        c.call("leverage", c.private.set_initial_margin_rate_v3, symbol="BTC-USDT",
               initialMarginRate="0.1")
        with pytest.raises(OrderRejected, match="insufficient balance"):
            c.create_order(**order_kw("lv-1", size="0.200", price="45000.0"))
        c.call("leverage", c.private.set_initial_margin_rate_v3, symbol="BTC-USDT",
               initialMarginRate="0.02")
        c.create_order(**order_kw("lv-2", size="0.200", price="45000.0"))
        assert c.account()["positions"][0]["customInitialMarginRate"] == "0.02"
        with pytest.raises(VenueError, match="initialMarginRate"):
            c.call("leverage", c.private.set_initial_margin_rate_v3, symbol="BTC-USDT",
                   initialMarginRate="0.001")


def test_duplicate_client_id_is_refused(venue_mod):
    with venue_mod.LocalVenue(make_bars(5)) as v:
        c = client_for(v)
        c.create_order(**order_kw("dup-1", price="45000.0"))
        with pytest.raises(DuplicateClientId, match="dup-1"):
            c.create_order(**order_kw("dup-1", price="45000.0"))
        assert len(v.book.orders) == 1


def test_order_errors_are_order_rejected(venue_mod):
    with venue_mod.LocalVenue(make_bars(5), balance=100.0) as v:
        c = client_for(v)
        with pytest.raises(OrderRejected, match="insufficient balance"):
            c.create_order(**order_kw("b-1", size="1.000", price="45000.0"))
        with pytest.raises(OrderRejected, match="stepSize"):
            c.create_order(**order_kw("b-2", size="0.0105", price="45000.0"))
        with pytest.raises(OrderRejected, match="tickSize"):  # the client's own check
            c.create_order(**order_kw("b-3", price="45000.05"))


# -- faults and error mapping ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "path", "expected", "accepted"), [
    ("timeout", "/api/v3/klines", TransientVenueError, None),
    ("timeout", "/api/v3/order", VenueStateUnknown, 0),
    ("http500", "/api/v3/account-balance", TransientVenueError, None),
    ("rate_limit", "/api/v3/klines", TransientVenueError, None),
    ("html502", "/api/v3/open-orders", TransientVenueError, None),
    ("html502", "/api/v3/order", VenueStateUnknown, 0),
    ("drop_reply_after_accept", "/api/v3/order", VenueStateUnknown, 1),
    ("reject", "/api/v3/order", OrderRejected, 0),
])
def test_injected_faults_map_to_engine_errors(venue_mod, kind, path, expected, accepted):
    with venue_mod.LocalVenue(make_bars(5)) as v:
        c = client_for(v, timeout=10)
        c.account()  # caches the account and symbols for signing
        c.symbols()
        c.private.configs_v3()
        if kind == "timeout":  # short only for the faulty call (a loaded CI machine is slow)
            c.set_timeout(0.5)
        v.inject(path, kind, delay=1.5)
        with pytest.raises(expected) as ei:
            if path == "/api/v3/order":
                c.create_order(**order_kw("f-1", price="45000.0"))
            elif path == "/api/v3/klines":
                c.klines("BTC-USDT", "15")
            elif path == "/api/v3/account-balance":
                c.balance()
            else:
                c.open_orders()
        assert type(ei.value) is expected
        c.set_timeout(10)
        if kind == "rate_limit":
            assert ei.value.retry_after == 1.0
        if accepted is not None:
            assert len(v.book.orders) == accepted
        # one-shot: the next request works
        assert float(c.balance()["totalEquityValue"]) > 9_999  # (minus a fill's fee)


def test_check_maps_apex_error_shapes():
    from adapters.apex.client import check

    assert check({"data": {"x": 1}, "timeCost": "5"}, "a") == {"x": 1}
    cases = [({"code": 3, "msg": "m", "key": "ORDER_PRICE_MUST_GREETER_ZERO"}, OrderRejected),
             ({"code": 429, "msg": "m", "key": "RATE_LIMIT"}, TransientVenueError),
             ({"code": 503, "msg": "busy"}, TransientVenueError),
             ({"code": 20006, "msg": "apikey sign error"}, VenueError),
             ({"code": 3, "msg": "m", "key": "ORDER_CLIENT_ID_DUPLICATE"}, DuplicateClientId),
             ({"code": 99, "msg": "what"}, VenueError)]
    for resp, cls in cases:
        with pytest.raises(VenueError) as ei:
            check(resp, "do it")
        assert type(ei.value) is cls and str(ei.value).startswith("do it: ")


def test_unreachable_venue_names_the_url():
    from adapters.apex.client import ApexClient

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(VenueUnreachable, match=f"127.0.0.1:{port}.*refused") as ei:
        ApexClient(url, timeout=2).server_time_ms()
    assert "base URL" in str(ei.value)
    with pytest.raises(VenueUnreachable, match=r"not-a-host\.invalid"):
        ApexClient("http://not-a-host.invalid:1", timeout=2).klines("BTC-USDT", "15")
    with pytest.raises(VenueUnreachable, match="not an http"):
        ApexClient("127.0.0.1:8888")


def test_credentials_from_env_and_dotenv(tmp_path):
    from adapters.apex.client import credentials_from_env

    assert credentials_from_env({}, dotenv=None) is None
    (tmp_path / ".env").write_text("APEX_API_KEY=k\nAPEX_API_SECRET='s'\nAPEX_API_PASSPHRASE=p\n")
    creds = credentials_from_env({"APEX_ZK_SEEDS": "ab" * 64}, dotenv=tmp_path / ".env")
    assert (creds.key, creds.secret, creds.passphrase, creds.zk_seeds) == ("k", "s", "p", "ab" * 64)
    assert "s" not in repr(creds).replace("ApexCredentials", "").replace("key", "")
    with pytest.raises(VenueError, match="APEX_API_PASSPHRASE"):
        credentials_from_env({"APEX_API_KEY": "k", "APEX_API_SECRET": "s"}, dotenv=None)


def test_import_is_light():
    code = "import sys, adapters.apex.client, adapters.apex.venue_cli; " \
           "print('apexomni' in sys.modules, 'web3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# -- the command line ----------------------------------------------------------------------


def _tradebot() -> list[str]:
    return [sys.executable, "-m", "engine.cli"]


def test_cli_help():
    out = subprocess.run([*_tradebot(), "venue", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--speed" in out.stdout and "lockstep" in out.stdout


def test_cli_serves_a_file_until_terminated(tmp_path):
    env = {**os.environ, "TRADEBOT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([*_tradebot(), "venue", "--data", str(DEMO), "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("local Apex venue at http://127.0.0.1:"), \
            line + proc.stderr.read() if proc.poll() is not None else line
        url = line.split()[-1]
        assert "6 candles" in proc.stdout.readline()
        got = requests.get(url + "/api/v1/time", timeout=5).json()
        assert got["data"]["time"] == T0_MS + 900_000  # lockstep: the first candle closed
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0  # SIGTERM stops it like Ctrl-C
    assert "venue stopped at 2024-01-01 00:15:00 UTC, 1 candles closed" in proc.stderr.read()


def test_cli_bad_file_is_a_clean_error(tmp_path):
    out = subprocess.run([*_tradebot(), "venue", "--data", str(tmp_path / "NOPE_15m_data.csv")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr


def test_speed_mode_market_order_waits_for_the_next_open(venue_mod):
    rows = [(100.0, 101.0, 99.0, 100.0), (100.5, 101.0, 99.5, 100.0), (102.0, 103.0, 101.0, 102.5)]
    # 30 virtual s per wall second: the clock stays inside candle 0 for 30 s of the test
    with venue_mod.LocalVenue(bars_of(rows), speed=30, tick_size="0.1") as v:
        c = client_for(v)
        k = c.klines("BTC-USDT", "15")
        assert len(k) == 1 and int(k[0]["t"]) == T0_MS  # only the forming candle
        c.create_order(**order_kw("sp-1", size="1.000", price="101.0"))
        assert c.fills()["totalSize"] == 0 and len(c.open_orders()) == 1  # waits for 00:15
        v.speed, v.t0_ms = 0.0, T0_MS  # freeze, then step by hand (lockstep) for the check
        v.advance()
        assert c.fills()["orders"][0]["price"] == "100.5"  # candle 1's open


def test_pip_check_lists_only_apexomnis_pins():
    """docs/apex.md: with apexomni installed --no-deps, `pip check` names only its own pins."""
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    lines = [ln for ln in out.stdout.splitlines()
             if ln.strip() and ln.strip() != "No broken requirements found."]
    pinned = {"dateparser", "ecdsa", "eth-account", "mpmath", "setuptools", "sympy", "web3"}
    named = set()
    for ln in lines:
        assert ln.startswith("apexomni 3.4.2 "), f"unexpected pip check line: {ln}"
        m = re.match(r"apexomni 3\.4\.2 (?:requires|has requirement) ([A-Za-z0-9_.-]+)", ln)
        assert m, ln
        named.add(m.group(1))
    assert named <= pinned, named - pinned


@pytest.mark.real_data
def test_real_data_replay_pages_and_round_trip(venue_mod, real_bars):
    with venue_mod.LocalVenue(real_bars, start="2025-01-01 00:00") as v:
        k0 = v.k0
        assert k0 > 1000 and v.tick == "0.01"  # real BTC prices have two decimals
        c = client_for(v)
        end_s = int(v.open_ms[k0 - 1]) // 1000
        rows = c.klines("BTC-USDT", "15", start_s=end_s - 199 * 900, end_s=end_s)
        got = np.array([[float(r[x]) for x in "ohlcv"] for r in rows])
        want = np.column_stack([a[k0 - 200:k0] for a in (real_bars.open, real_bars.high,
                                                          real_bars.low, real_bars.close,
                                                          real_bars.volume)])
        np.testing.assert_array_equal(got[:, :4], want[:, :4])  # prices are written exactly
        np.testing.assert_allclose(got[:, 4], want[:, 4], rtol=1e-8)  # volume: 8 decimals
        c.create_order(**order_kw("rd-1", size="0.010", price="200000.0"))
        v.advance(3)
        c.create_order(**order_kw("rd-2", side="SELL", size="0.010", price="1000.0",
                                  reduceOnly=True))
        o = real_bars.open
        pnl = (o[k0 + 3] - o[k0]) * 0.01
        fees = (o[k0] + o[k0 + 3]) * 0.01 * 0.0005
        bal = c.balance()
        assert float(bal["realizedPnl"]) == pytest.approx(pnl, abs=1e-6)
        assert float(bal["totalEquityValue"]) == pytest.approx(10_000 + pnl - fees, abs=1e-5)


def test_bad_zk_seeds_are_a_clean_error(venue_mod):
    from adapters.apex.client import ApexCredentials
    from engine.errors import ConfigError

    for seeds in ("not-hex", "ab" * 8):
        v = venue_mod.LocalVenue(make_bars(5),
                                 credentials=ApexCredentials("k", "s", "p", seeds))
        with pytest.raises(ConfigError, match="APEX_ZK_SEEDS"):
            v.start()
        assert v.httpd is None


def test_start_after_the_last_candle_is_refused(venue_mod):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="after the file's last candle"):
        venue_mod.LocalVenue(make_bars(5), start="2030-01-01")
    with pytest.raises(ConfigError, match="not a time"):
        venue_mod.LocalVenue(make_bars(5), start="yesterday-ish")
    v = venue_mod.LocalVenue(make_bars(5), start=str(T0_MS + 2 * 900_000))  # epoch ms
    assert v.k0 == 2 and v.now_ms() == T0_MS + 2 * 900_000
