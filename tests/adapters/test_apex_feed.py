"""The ApeX Omni feed (adapters/apex/feed.py) with the real apexomni client on loopback: against
the local venue (warm-up, pagination, lockstep, back-fill after missed polls and an outage, error
classes) and against a market-data fake whose clock and candles the test sets by hand (forming
candles, server-time closing, duplicates, revisions, gaps)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from adapters.apex.feed import ApexFeed, KlineClient, resolve_venue
from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.datafile import load_bars
from engine.errors import (
    ConfigError,
    DataError,
    TransientVenueError,
    VenueError,
    VenueUnreachable,
)
from tests.adapters.kline_fake import MarketFake

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
TF = 900_000
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


@pytest.fixture(scope="module")
def bars() -> Bars:
    return load_bars(SYNTH, symbol="BTC-USDT", use_cache=False).slice(0, 700)


def _open_ms(b: Bars, i: int) -> int:
    return int(b.ts_open_ns[i]) // 1_000_000


def _fast(url: str, **kw: object) -> ApexFeed:
    kw.setdefault("poll_interval_s", 0.005)
    kw.setdefault("max_wait_s", 0.02)
    return ApexFeed(url, "BTC-USDT", "15m", **kw)  # type: ignore[arg-type]


def _bars_only(feed: ApexFeed) -> list:
    return [b for b in feed if b is not None]


def test_warmup_is_paginated_by_200_and_equals_the_file(bars: Bars) -> None:
    start = _open_ms(bars, 600)
    with LocalVenue(bars, speed=0, start=start) as v:
        feed = _fast(v.url, max_bars=3)
        hist = feed.fetch_warmup(450)
        got = _bars_only(feed)
        kl = [r["query"] for r in v.requests if r["path"] == "/api/v3/klines"]
    assert hist is not None and len(hist) == 450
    # history: the 450 candles before the newest closed one at start (599); live starts at 599
    assert np.array_equal(hist.ts_open_ns, bars.ts_open_ns[149:599])
    assert np.array_equal(hist.close, bars.close[149:599])
    assert np.array_equal(hist.volume, bars.volume[149:599])
    warm = kl[:3]
    assert all(int(q["limit"]) <= 200 for q in kl)
    assert [int(q["start"]) * 1000 for q in warm] == [_open_ms(bars, i) for i in (149, 349, 549)]
    assert [g.seq for g in got] == [450, 451, 452]
    assert [g.ts_event_ns for g in got] == bars.ts_close_ns[599:602].tolist()


def test_lockstep_delivers_every_candle_once_in_order(bars: Bars) -> None:
    b = bars.slice(0, 120)
    with LocalVenue(b, speed=0) as v:
        feed = _fast(v.url, max_bars=len(b))
        assert feed.fetch_warmup(0) is None
        got = _bars_only(feed)
    assert [g.seq for g in got] == list(range(len(b)))
    assert np.array_equal([g.ts_event_ns for g in got], b.ts_close_ns)
    for name in ("open", "high", "low", "close", "volume"):
        assert np.array_equal([getattr(g, name) for g in got], getattr(b, name)), name
    assert feed.stats.duplicates == feed.stats.revised == feed.stats.gaps == 0


def test_missed_polls_and_an_outage_are_back_filled_in_order(bars: Bars) -> None:
    b = bars.slice(0, 60)
    with LocalVenue(b, speed=0, start=_open_ms(b, 10)) as v:
        feed = _fast(v.url, retry_backoff_s=0.01)
        feed.fetch_warmup(5)
        it = iter(feed)
        first = next(x for x in it if x is not None)  # candle 9, the newest closed at start
        v.advance(4)  # four candles close while the engine is busy: missed polls
        v.inject("*", "html502", count=3)  # then the venue is down for three requests
        rest = []
        for x in it:
            if x is not None:
                rest.append(x)
            if len(rest) == 8:
                break
    assert first.ts_event_ns == b.ts_close_ns[9]
    assert [x.ts_event_ns for x in rest] == b.ts_close_ns[10:18].tolist()
    assert [x.seq for x in rest] == list(range(6, 14))
    assert feed.stats.errors == 3
    assert feed.stats.backfilled >= 3  # the missed candles came in one poll


def _market(n: int, now_ms: int, **kw: object) -> MarketFake:
    m = MarketFake()
    for i in range(n):
        p = 100.0 + i
        m.state.add(T0 + i * TF, p, p + 2, p - 1, p + 1, 10.0 + i)
    m.state.now_ms = now_ms
    for k, v in kw.items():
        setattr(m.state, k, v)
    return m


def test_closing_follows_the_venue_clock_not_the_local_one() -> None:
    # the venue's clock says 2025 while this machine says otherwise; candle 5 is forming (sent
    # by the venue, as the real one does) and must not be delivered until the venue's time
    # reaches its close, to the millisecond
    with _market(10, T0 + 5 * TF + 1) as m:
        feed = _fast(m.url)
        feed.fetch_warmup(3)
        it = iter(feed)
        got = [next(x for x in it if x is not None)]
        assert got[0].ts_event_ns == (T0 + 5 * TF) * 1_000_000  # candle 4 closed, 5 forming
        m.state.now_ms = T0 + 6 * TF - 1  # 1 ms before candle 5 closes
        polls = feed.stats.polls
        t = threading.Timer(0.2, lambda: setattr(m.state, "now_ms", T0 + 6 * TF))
        t.start()
        t0 = time.monotonic()
        got.append(next(x for x in it if x is not None))
        waited = time.monotonic() - t0
    assert got[1].ts_event_ns == (T0 + 6 * TF) * 1_000_000
    assert got[1].close == 106.0  # the closed candle's values, not a forming snapshot
    assert waited >= 0.15  # it waited for the venue's clock
    assert feed.stats.polls > polls + 1  # and asked it more than once meanwhile
    # every klines answer carried the forming candle; none was delivered early
    assert feed.stats.delivered == 2


def test_duplicates_are_ignored_and_revisions_logged(caplog: pytest.LogCaptureFixture) -> None:
    with _market(30, T0 + 10 * TF + 5, duplicate=True, forming=True) as m:
        feed = _fast(m.url, max_bars=4)
        feed.fetch_warmup(5)
        it = iter(feed)
        first = next(x for x in it if x is not None)  # candle 9
        # the venue revises candle 9 after it was delivered, and time moves on three candles
        m.state.revised[T0 + 9 * TF] = (109.0, 200.0, 108.0, 150.0, 99.0)
        m.state.now_ms = T0 + 13 * TF
        with caplog.at_level(logging.WARNING, logger="adapters.apex.feed"):
            rest = [x for x in it if x is not None]
    assert first.close == 110.0
    assert [x.ts_event_ns for x in rest] == [(T0 + k * TF) * 1_000_000 for k in (11, 12, 13)]
    assert [x.seq for x in rest] == [6, 7, 8]
    assert feed.stats.duplicates >= 3  # every candle came twice; each delivered once
    assert feed.stats.revised == 1
    assert feed.stats.revisions[0][2][4] == 150.0
    assert any("revised the candle" in r.message for r in caplog.records)


@pytest.mark.parametrize("policy", ["fail", "keep", "fill"])
def test_a_gap_the_venue_cannot_fill_follows_the_gaps_policy(policy: str) -> None:
    missing = {T0 + 12 * TF, T0 + 13 * TF}
    with _market(30, T0 + 11 * TF, missing=missing, forming=False) as m:
        feed = _fast(m.url, gaps=policy, max_bars=4 if policy != "fill" else 6)
        feed.fetch_warmup(3)
        it = iter(feed)
        first = next(x for x in it if x is not None)  # candle 10
        m.state.now_ms = T0 + 16 * TF  # 11, (12, 13 never), 14, 15 closed
        if policy == "fail":
            with pytest.raises(DataError, match=r"no candles from 2025-01-01 03:00:00 to "
                               r"2025-01-01 03:15:00 \(2 missing\).*data.gaps"):
                list(it)
            return
        rest = [x for x in it if x is not None]
    assert first.close == 111.0
    opens = [x.ts_event_ns // 1_000_000 - TF for x in rest]
    seqs = [x.seq for x in rest]
    assert seqs == list(range(4, 4 + len(rest)))
    if policy == "keep":
        assert opens == [T0 + k * TF for k in (11, 14, 15)]
    else:
        assert opens == [T0 + k * TF for k in (11, 12, 13, 14, 15)]
        flat = rest[1:3]
        assert all(x.open == x.high == x.low == x.close == rest[0].close for x in flat)
        assert all(x.volume == 0.0 for x in flat)
        assert feed.stats.filled == 2


def test_venue_errors_become_engine_error_classes(bars: Bars) -> None:
    with LocalVenue(bars.slice(0, 50), speed=0, start=_open_ms(bars, 20)) as v:
        kl = KlineClient(v.url, "BTC-USDT", "15m", timeout_s=0.5)
        a, z = _open_ms(bars, 0), _open_ms(bars, 5)
        v.inject("/api/v3/klines", "rate_limit")
        with pytest.raises(TransientVenueError) as exc:
            kl.klines(a, z)
        assert exc.value.retry_after == 1
        v.inject("/api/v3/klines", "http500")
        with pytest.raises(TransientVenueError, match="INTERNAL_ERROR"):
            kl.klines(a, z)
        v.inject("/api/v3/klines", "html502")
        with pytest.raises(TransientVenueError, match="JSON"):
            kl.klines(a, z)
        v.inject("/api/v3/klines", "timeout", delay=1.0)
        with pytest.raises(TransientVenueError, match=r"timed out|connection"):
            kl.klines(a, z)
        assert len(kl.klines(a, z)) == 6  # and then it answers again
    with _market(5, T0, error={"code": 10001, "msg": "symbol not found",
                              "key": "SYMBOL_INVALID"}) as m:
        with pytest.raises(VenueError, match="SYMBOL_INVALID") as exc2:
            KlineClient(m.url, "BTC-USDT", "15m").klines(T0, T0 + TF)
        assert not isinstance(exc2.value, TransientVenueError)


def test_server_time_falls_back_to_v3() -> None:
    with _market(5, T0 + 3 * TF, no_v1_time=True) as m:
        assert KlineClient(m.url, "BTC-USDT", "15m").server_time_ms() == T0 + 3 * TF


def test_unreachable_or_wrong_url_names_the_url() -> None:
    with pytest.raises(VenueUnreachable, match=r"127\.0\.0\.1:9"):
        _fast("http://127.0.0.1:9").fetch_warmup(0)
    # something answers, but not like ApeX (an HTML error page)
    with _market(5, T0, down=True) as m:
        with pytest.raises(VenueUnreachable, match=m.url.replace(".", r"\.")):
            _fast(m.url).fetch_warmup(0)


def test_venue_names_and_config_errors() -> None:
    assert resolve_venue("main") == "https://omni.apex.exchange"
    assert resolve_venue("test") == "https://qa.omni.apex.exchange"
    assert resolve_venue("http://127.0.0.1:8888/") == "http://127.0.0.1:8888"
    with pytest.raises(ConfigError, match="--venue"):
        resolve_venue(None)
    with pytest.raises(ConfigError, match="neither main, test"):
        resolve_venue("omni.apex.exchange")
    with pytest.raises(ConfigError, match="no ApeX Omni candles"):
        ApexFeed("main", "BTC-USDT", "3m")


def test_request_stop_ends_a_wait_at_once() -> None:
    with _market(10, T0 + 5 * TF + 1) as m:
        feed = _fast(m.url, max_wait_s=30.0)
        feed.fetch_warmup(0)
        it = iter(feed)
        next(x for x in it if x is not None)
        threading.Timer(0.2, feed.stop).start()
        t0 = time.monotonic()
        assert [x for x in it if x is not None] == []
        assert time.monotonic() - t0 < 5.0


def test_a_fast_venue_clock_is_followed(bars: Bars) -> None:
    # `tradebot venue --speed 900`: a 15m candle per wall second; the feed measures the venue's
    # clock speed and sleeps until each close by it: every candle arrives closed, before the
    # next one closes, without polling in a busy loop
    with LocalVenue(bars, speed=900, start=_open_ms(bars, 300)) as v:
        feed = ApexFeed(v.url, "BTC-USDT", "15m", max_bars=4)
        feed.fetch_warmup(10)
        lags = []
        for x in feed:
            if x is not None:
                lags.append(v.now_ms() - x.ts_event_ns // 1_000_000)
    assert len(lags) == 4
    # closed, and about when it closed (the bound leaves a second of slack for a busy machine)
    assert all(0 <= lag < 2 * TF for lag in lags[1:]), lags
    assert feed.stats.polls < 40
    assert 500 < feed._rate < 2000  # measured: about 900 venue seconds per second


def test_a_ctrl_c_inside_a_klines_request_stops_the_feed_cleanly(bars: Bars) -> None:
    # Ctrl-C (the run's SIGINT handler calls request_stop) while the feed is inside a klines
    # request: the request is abandoned and the iteration ends; it once surfaced as the venue
    # error "klines ...: apexomni raised FeedStopped" (the client maps every Exception)
    import signal

    with LocalVenue(bars.slice(0, 50), speed=0, start=_open_ms(bars, 20)) as v:
        feed = _fast(v.url, timeout_s=10.0)
        feed.fetch_warmup(0)
        it = iter(feed)
        next(x for x in it if x is not None)
        v.inject("/api/v3/klines", "timeout", delay=5.0)  # the next request hangs 5 s
        old = signal.signal(signal.SIGALRM, lambda *_: feed.request_stop())
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            t0 = time.monotonic()
            rest = [x for x in it if x is not None]  # raises if FeedStopped escaped as an error
            took = time.monotonic() - t0
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        assert took < 3.0, took  # ended at the signal, not after the 5 s hang
        assert len(rest) <= 1  # at most the bar already delivered before the hang
