"""Indicator throughput vs TA-Lib on the real data tiled to 1M bars (best of 3, warm caches).

Ours: stochastic(14,3,3) + Wilder ATR(14) + rolling regression(100) (slope, intercept, R²,
residual std all at once). TA-Lib: STOCH + ATR + LINEARREG_SLOPE. Also the per-bar incremental
update cost as the live handlers call it (one numba call per bar from Python).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_of, real_bars, tiled  # noqa: E402
from indicators.kernels.atr import WILDER, AtrState, atr_nb, atr_update_nb  # noqa: E402
from indicators.kernels.linreg import LinregState, linreg_nb, linreg_update_nb  # noqa: E402
from indicators.kernels.stoch import StochState, stoch_nb, stoch_update_nb  # noqa: E402


def run(n_bars: int = 1_000_000) -> dict[str, object]:
    import talib

    b = tiled(real_bars(), n_bars)
    h, lo, c = b.high, b.low, b.close
    n = len(c)
    o1, o2, o3, o4 = (np.empty(n) for _ in range(4))

    def ours_stoch() -> None:
        stoch_nb(h, lo, c, 14, 3, 3, True, o1, o2)

    def ours_atr() -> None:
        atr_nb(h, lo, c, 14, WILDER, o1)

    def ours_linreg() -> None:
        linreg_nb(c, 100, o1, o2, o3, o4)

    for f in (ours_stoch, ours_atr, ours_linreg):
        f()  # compile / load cache
    t_stoch, _ = best_of(ours_stoch)
    t_atr, _ = best_of(ours_atr)
    t_lr, _ = best_of(ours_linreg)
    ta_stoch, _ = best_of(lambda: talib.STOCH(h, lo, c, 14, 3, 0, 3, 0))
    ta_atr, _ = best_of(lambda: talib.ATR(h, lo, c, 14))
    ta_lr, _ = best_of(lambda: talib.LINEARREG_SLOPE(c, 100))
    ours = t_stoch + t_atr + t_lr
    theirs = ta_stoch + ta_atr + ta_lr

    m = 200_000  # per-bar incremental path, as the live handlers call it
    s, a, r = StochState(14, 3, 3), AtrState(14), LinregState(100)
    hl, ll, cl = h[:m].tolist(), lo[:m].tolist(), c[:m].tolist()
    t0 = time.perf_counter()
    for i in range(m):
        stoch_update_nb(s.hi_idx, s.hi_vals, s.hi_meta, s.lo_idx, s.lo_vals, s.lo_meta, s.k_buf,
                        s.k_meta, s.d_buf, s.d_meta, hl[i], ll[i], cl[i], 14, 3, 3, True)
        atr_update_nb(a.f, a.buf, a.meta, hl[i], ll[i], cl[i], 14, WILDER)
        linreg_update_nb(r.buf, r.f, cl[i], 100)
    per_bar_us = (time.perf_counter() - t0) / m * 1e6
    return {
        "bars": n,
        "ours_stoch_ms": 1e3 * t_stoch,
        "ours_atr_ms": 1e3 * t_atr,
        "ours_linreg_all4_ms": 1e3 * t_lr,
        "ours_total_ms": 1e3 * ours,
        "talib_stoch_ms": 1e3 * ta_stoch,
        "talib_atr_ms": 1e3 * ta_atr,
        "talib_linreg_slope_ms": 1e3 * ta_lr,
        "talib_total_ms": 1e3 * theirs,
        "talib_over_ours": theirs / ours,
        "target_met(ours<=talib)": ours <= theirs,
        "incremental_3_updates_us_per_bar": per_bar_us,
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:40s} {v}")
