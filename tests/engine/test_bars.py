"""BarStore: windows end at the revealed bar, are read-only, and survive growth."""

from __future__ import annotations

import numpy as np
import pytest

from engine.bars import Bars, BarStore, LookaheadError
from engine.errors import DataError

TF = 900 * 10**9


def _bars(n: int) -> Bars:
    c = 100 + np.arange(n, dtype=float)
    ts = np.arange(n, dtype=np.int64) * TF
    return Bars.from_columns("BTC-USDT", "15m", TF, ts, c, c + 1, c - 1, c, np.ones(n))


def test_replay_windows_stop_at_the_revealed_bar_and_are_read_only():
    s = BarStore.preloaded(_bars(50))
    with pytest.raises(LookaheadError):
        s.window(0, 1)  # nothing revealed yet
    for _ in range(10):
        s.reveal_next()
    w = s.window(9, 4)
    assert w.start_seq == 6 and list(w.close) == [106, 107, 108, 109]
    assert w.ts_open_ns[0] == 6 * TF and len(w) == 4
    with pytest.raises(ValueError):
        w.high[0] = 0.0  # views cannot write into the store
    with pytest.raises(LookaheadError, match="up to seq 10"):
        s.window(10, 2)
    assert s.window(2, 10).start_seq == 0  # shorter at the start
    assert s.raw_column("close").shape[0] == 50 and s.column("close").shape[0] == 10


def test_live_append_grows_and_windows_stay_correct_and_read_only():
    s = BarStore("BTC-USDT", "15m", TF, capacity=16)
    b = _bars(100)
    for i in range(100):
        s.append(int(b.ts_open_ns[i]), b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
    assert s.capacity >= 100 and s.count == 100
    w = s.window(99, 30)
    np.testing.assert_array_equal(w.close, b.close[70:])
    np.testing.assert_array_equal(w.low, b.low[70:])
    assert not w.close.flags.writeable
    with pytest.raises(DataError, match="not after the previous bar"):
        s.append(int(b.ts_open_ns[50]), 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(DataError, match="no preloaded bar"):
        s.reveal_next()
