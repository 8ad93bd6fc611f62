"""The real candles the Apex tests trade on, as ``Bars`` and as a CSV file (one copy of the
fixture body the paper, live, multi-account and restart tests share)."""

from __future__ import annotations

from pathlib import Path

from adapters.synth_data import write_csv
from engine.bars import Bars

START = 30_000  # a stretch of the real data where the six strategies trade


def real_sample(real_bars: Bars, folder: Path, n_bars: int) -> tuple[Bars, Path]:
    """``n_bars`` real bars from ``START`` and their CSV, written in ``folder``."""
    bars = real_bars.slice(START, START + n_bars)
    path = folder / "BTCUSDT_15m_data.csv"
    write_csv(bars, path)
    return bars, path
