"""Loading the real 69k-row CSV: cold (parse + validate) and warm (binary cache), best of 3."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REAL_DATA, best_of  # noqa: E402
from engine.datafile import load_bars  # noqa: E402


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRADEBOT_CACHE_DIR"] = tmp
        cold, bars = best_of(lambda: load_bars(REAL_DATA, use_cache=False))
        load_bars(REAL_DATA)
        warm, _ = best_of(lambda: load_bars(REAL_DATA))
    return {"rows": len(bars), "cold_load_ms": 1e3 * cold, "warm_load_ms": 1e3 * warm}


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:30s} {v}")
