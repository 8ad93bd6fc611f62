"""adapters.csv_feed: a BarFeed whose events carry the bar's close time."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from adapters.csv_feed import CsvFeed
from engine.config import DataConfig
from engine.errors import DataError
from engine.events import BarClosed
from engine.ports import BarFeed
from engine.registry import FEEDS, Registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEMO = FIXTURES / "DEMO-USDT_15m_data.csv"
MIN15 = 15 * 60 * 10**9


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "cache"))


def test_events_carry_close_time_seq_and_the_bar():
    feed = CsvFeed(DEMO)
    assert isinstance(feed, BarFeed)
    assert (feed.symbol, feed.timeframe, len(feed)) == ("DEMO-USDT", "15m", 6)
    bars = feed.history()
    events = list(feed)
    assert [e.seq for e in events] == list(range(6))
    assert all(isinstance(e, BarClosed) for e in events)
    for i, e in enumerate(events):
        assert e.ts_event_ns == int(bars.ts_open_ns[i]) + MIN15  # close = open + timeframe
        assert e.ts_init_ns == e.ts_event_ns  # simulated clock: created at the close
        assert (e.open, e.high, e.low, e.close, e.volume) == (
            bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        assert (e.symbol, e.timeframe) == ("DEMO-USDT", "15m")
    assert events[0].ts_event_ns == int(bars.ts_open_ns[1])  # a bar closes when the next opens
    assert (events[0].open, events[0].close) == (42000.0, 42010.5)


def test_iteration_can_be_repeated():
    feed = CsvFeed(DEMO)
    assert [e.close for e in feed] == [e.close for e in feed]


def test_from_bars_slices_and_options():
    whole = CsvFeed(DEMO).history()
    feed = CsvFeed.from_bars(whole.slice(2, 5))
    events = list(feed)
    assert [e.seq for e in events] == [0, 1, 2]  # seq indexes this feed's own bars
    assert events[0].ts_event_ns == int(whole.ts_open_ns[2]) + MIN15
    renamed = CsvFeed(DEMO, symbol="ETHUSDT", use_cache=False)
    assert renamed.symbol == "ETH-USDT" and next(iter(renamed)).symbol == "ETH-USDT"


def test_gap_policy_is_passed_through():
    gappy = FIXTURES / "GAPPY-USDT_15m_data.csv"
    with pytest.raises(DataError, match="1 gap, 2 missing bars"):
        CsvFeed(gappy)
    assert len(CsvFeed(gappy, gaps="keep")) == 4
    filled = list(CsvFeed(gappy, gaps="fill"))
    assert len(filled) == 6 and filled[2].volume == 0 and filled[2].close == 42090.0
    assert all(b.ts_event_ns - a.ts_event_ns == MIN15 for a, b in itertools.pairwise(filled))


def test_from_config_cuts_start_and_end():
    feed = CsvFeed.from_config(DataConfig(file=DEMO, start="2024-01-01 00:15:00",
                                          end="2024-01-01 00:45:00"))
    assert [e.open for e in feed] == [42010.5, 42090.0, 41960.0]
    with pytest.raises(DataError, match="no bars between"):
        CsvFeed.from_config(DataConfig(file=DEMO, start="2025-01-01 00:00:00"))
    with pytest.raises(DataError, match=r"data\.start/data\.end"):
        CsvFeed.from_config(DataConfig(file=DEMO, start="someday"))


def test_registered_as_the_csv_feed():
    assert Registry.installed(FEEDS).load("csv") is CsvFeed


def test_real_file_first_event(real_data_path):
    first = next(iter(CsvFeed(real_data_path)))
    assert (first.symbol, first.seq, first.open, first.close) == ("BTC-USDT", 0, 28465.36, 28500.0)
    assert first.ts_event_ns == 1_680_307_200 * 10**9 + MIN15  # 2023-04-01 00:15 UTC
