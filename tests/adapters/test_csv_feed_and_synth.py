from __future__ import annotations

import numpy as np

from adapters.csv_feed import CsvFeed
from adapters.synth_data import generate, stylised_facts, write_csv
from engine.config import DataConfig
from engine.datafile import load_bars
from engine.ports import BarFeed


def test_feed_yields_close_time_events(real_data_path):
    feed = CsvFeed(real_data_path)
    assert isinstance(feed, BarFeed)
    bars = feed.history()
    it = iter(feed)
    first, second = next(it), next(it)
    assert first.seq == 0 and second.seq == 1
    assert first.ts_event_ns == int(bars.ts_open_ns[0]) + 15 * 60 * 10**9  # close time
    assert first.ts_event_ns == int(bars.ts_open_ns[1])
    assert (first.open, first.close, first.symbol) == (28465.36, 28500.0, "BTC-USDT")


def test_start_end_cut(real_data_path):
    feed = CsvFeed.from_config(DataConfig(file=real_data_path, start="2024-01-01 00:00:00",
                                          end="2024-01-01 23:45:00"))
    assert len(feed) == 96


def test_synth_is_deterministic_and_valid(tmp_path):
    a, b = tmp_path / "A-B_15m_data.csv", tmp_path / "C-D_15m_data.csv"
    write_csv(generate(3000, seed=3), str(a))
    write_csv(generate(3000, seed=3), str(b))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != _bytes(tmp_path, seed=4)
    bars = load_bars(a)  # our own validator accepts it
    assert len(bars) == 3000 and np.all(bars.high >= np.maximum(bars.open, bars.close))


def _bytes(tmp_path, seed):
    p = tmp_path / "E-F_15m_data.csv"
    write_csv(generate(3000, seed=seed), str(p))
    return p.read_bytes()


def test_synth_reproduces_the_stylised_facts_of_real_data(real_bars):
    real, syn = stylised_facts(real_bars), stylised_facts(generate(20_000))
    assert syn["ret_kurtosis"] > 6  # fat tails (real: ~50)
    assert all(syn[f"abs_ret_acf{k}"] > 0.05 for k in (1, 5, 10))  # volatility clustering
    assert syn["corr_logvol_logrange"] > 0.5  # volume rises with range
    assert np.corrcoef(real["volume_profile"], syn["volume_profile"])[0, 1] > 0.8
    assert 0.5 < syn["ret_std"] / real["ret_std"] < 2
