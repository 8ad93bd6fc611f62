"""Shared helpers for the benchmarks: the real data, tiled to N bars without price jumps."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.bars import Bars

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "BTCUSDT_15m_data.csv"


def real_bars() -> Bars:
    from engine.datafile import load_bars

    if not REAL_DATA.is_file():
        raise SystemExit(f"benchmarks need the real data at {REAL_DATA}")
    return load_bars(REAL_DATA)


def tiled(bars: Bars, n: int) -> Bars:
    """Repeat ``bars`` to ``n`` bars. Each copy is rescaled so it starts at the previous copy's
    last close (no price jump at the seams) and time keeps running on the bar grid."""
    reps = -(-n // len(bars))
    cols = {k: [] for k in ("open", "high", "low", "close", "volume")}
    scale = 1.0
    for _ in range(reps):
        for k in ("open", "high", "low", "close"):
            cols[k].append(getattr(bars, k) * scale)
        cols["volume"].append(bars.volume)
        scale = cols["close"][-1][-1] / bars.open[0]
    ts = bars.ts_open_ns[0] + np.arange(reps * len(bars), dtype=np.int64) * bars.tf_ns
    return Bars.from_columns(
        bars.symbol, bars.timeframe, bars.tf_ns, ts[:n],
        *(np.concatenate(cols[k])[:n] for k in ("open", "high", "low", "close", "volume")),
    )


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    best = float("inf")
    out: object = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
