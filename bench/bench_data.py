"""Loading the real BTC/USDT 15m file (69,122 bars): cold, first cached, warm; best of 3 each.

- ``parse_validate_s``: ``load_bars(use_cache=False)``: read, parse, validate every row.
- ``cold_cache_s``: the first load with an empty cache (the above plus writing the ``.npy``).
- ``warm_s``: a cache hit (read and hash the file's bytes, then load the ``.npy``).
- ``pandas_read_csv_s``: the reference, a bare ``pd.read_csv`` with datetime parsing and no
  validation at all, to show what validation costs on top.
- ``feed_iter_s``: yielding every ``BarClosed`` from ``CsvFeed``.

Run alone: ``python bench/bench_data.py``. The cache goes to a temporary directory, never to
``~/.cache``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from adapters.csv_feed import CsvFeed
from bench.common import REAL_DATA, best_of
from engine.datafile import load_bars


def run(repeat: int = 3) -> dict[str, object]:
    """Time the loads of the real file; returns seconds (best of ``repeat``) and ratios."""
    if not REAL_DATA.is_file():
        raise SystemExit(f"benchmarks need the real data at {REAL_DATA}")
    old = os.environ.get("TRADEBOT_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="tradebot-bench-") as tmp:
        try:
            os.environ["TRADEBOT_CACHE_DIR"] = tmp
            bars = load_bars(REAL_DATA, use_cache=False)
            t_parse, _ = best_of(lambda: load_bars(REAL_DATA, use_cache=False), repeat)
            t_cold = float("inf")
            for i in range(repeat):  # a fresh, empty cache directory each time
                os.environ["TRADEBOT_CACHE_DIR"] = str(Path(tmp) / f"cold{i}")
                t, _ = best_of(lambda: load_bars(REAL_DATA), 1)
                t_cold = min(t_cold, t)
            t_warm, _ = best_of(lambda: load_bars(REAL_DATA), repeat)  # last cold run's cache
        finally:
            if old is None:
                os.environ.pop("TRADEBOT_CACHE_DIR", None)
            else:
                os.environ["TRADEBOT_CACHE_DIR"] = old
    t_pandas, _ = best_of(lambda: pd.read_csv(REAL_DATA, parse_dates=["timestamp"]), repeat)
    feed = CsvFeed.from_bars(bars)
    t_iter, _ = best_of(lambda: sum(1 for _ in feed), repeat)
    return {
        "rows": len(bars),
        "file_mb": REAL_DATA.stat().st_size / 1e6,
        "parse_validate_s": t_parse,
        "cold_cache_s": t_cold,
        "warm_s": t_warm,
        "warm_speedup": t_cold / t_warm,
        "pandas_read_csv_s": t_pandas,
        "feed_iter_s": t_iter,
        "feed_us_per_bar": 1e6 * t_iter / len(feed),
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:24s} {value:.4g}" if isinstance(value, float) else f"{key:24s} {value}")
