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
    """Repeat ``bars`` to ``n`` bars: the data forward, then played backwards, then forward...

    A backward copy reverses time (each bar's open and close swap, high and low stay), so it
    starts at the forward copy's last close and ends at its first open: no price jump at the
    seams and prices stay in the real data's range (rescaling each copy to the previous
    close instead compounds BTC's 3x rise into absurd prices after a few copies, where a
    peer's integer unit sizing stops matching ours). Time keeps running on the bar grid.
    """
    reps = -(-n // len(bars))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("open", "high", "low", "close",
                                                          "volume")}
    for r in range(reps):
        if r % 2 == 0:
            parts = (bars.open, bars.high, bars.low, bars.close, bars.volume)
        else:
            parts = (bars.close[::-1], bars.high[::-1], bars.low[::-1], bars.open[::-1],
                     bars.volume[::-1])
        for k, a in zip(("open", "high", "low", "close", "volume"), parts, strict=True):
            cols[k].append(a)
    ts = bars.ts_open_ns[0] + np.arange(reps * len(bars), dtype=np.int64) * bars.tf_ns
    return Bars.from_columns(
        bars.symbol, bars.timeframe, bars.tf_ns, ts[:n],
        *(np.ascontiguousarray(np.concatenate(cols[k])[:n])
          for k in ("open", "high", "low", "close", "volume")),
    )


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    best = float("inf")
    out: object = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
