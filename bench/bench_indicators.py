"""Indicator kernels against TA-Lib on the real BTC/USDT 15m data tiled to 1M bars.

Like for like, the target set: stochastic(14, 3, 3) + Wilder ATR(14) + regression slope(100)
(``stoch_nb``, ``atr_nb``, ``linreg_slope_nb``) against TA-Lib ``STOCH`` + ``ATR`` +
``LINEARREG_SLOPE``. Also timed: the full regression (slope, intercept, R², residual std in one
pass, ``linreg_nb``), which TA-Lib has no single call for, and the per-bar incremental updates
as the bus handlers call them (one numba call per indicator per bar, from Python).

Method: the real data is tiled to ``repeat_to`` bars with ``bench.common.tiled`` (forward, then
played backwards, and so on), so there is no price jump at the seams.
Every whole-array timing is the best of 3 after one warm-up call (numba compiled or loaded from
its cache); output arrays are allocated once, outside the timing.

Run alone with ``python bench/bench_indicators.py``; ``bench/run_all.py`` calls ``run()``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_of, real_bars, tiled
from indicators.kernels.atr import WILDER, atr_nb, atr_state_nb, atr_update_nb
from indicators.kernels.linreg import (
    linreg_nb,
    linreg_slope_nb,
    linreg_state_nb,
    linreg_update_nb,
)
from indicators.kernels.stoch import StochState, stoch_nb, stoch_step_nb

PER_BAR_BARS = 200_000  # enough for a stable µs/bar, a fraction of a second per indicator


def _per_bar_us(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, float]:
    """µs per bar of each per-bar update, called from Python as a handler does."""
    m = min(PER_BAR_BARS, c.shape[0])
    hl, ll, cl = h[:m].tolist(), lo[:m].tolist(), c[:m].tolist()  # Python floats, as events carry
    st = StochState(14, 3, 3)
    ints, floats = st.ints, st.floats
    atr_st = atr_state_nb(14, WILDER)
    lr_st = linreg_state_nb(100)
    stoch_step_nb(ints, floats, hl[0], ll[0], cl[0])  # compile / load outside the timing
    atr_update_nb(atr_st, hl[0], ll[0], cl[0])
    linreg_update_nb(lr_st, cl[0])
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(m):
        stoch_step_nb(ints, floats, hl[i], ll[i], cl[i])
    out["stoch"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(m):
        atr_update_nb(atr_st, hl[i], ll[i], cl[i])
    out["atr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(m):
        linreg_update_nb(lr_st, cl[i])
    out["linreg"] = time.perf_counter() - t0
    return {k: 1e6 * v / m for k, v in out.items()}


def run(repeat_to: int = 1_000_000) -> dict[str, object]:
    """Time our kernels and TA-Lib's on the real data tiled to ``repeat_to`` bars.

    Returns:
        Timings in ms (best of 3), their sums, ``talib_over_ours`` (> 1: ours faster), whether
        the target (ours <= TA-Lib) is met, and the per-bar update costs in µs/bar.
    """
    import talib

    bars = tiled(real_bars(), repeat_to)
    h, lo, c = bars.high, bars.low, bars.close
    n = c.shape[0]
    o1, o2, o3, o4 = (np.empty(n) for _ in range(4))

    ours = {
        "stoch_14_3_3": lambda: stoch_nb(h, lo, c, 14, 3, 3, True, o1, o2),
        "atr_wilder_14": lambda: atr_nb(h, lo, c, 14, WILDER, o1),
        "linreg_slope_100": lambda: linreg_slope_nb(c, 100, o1),
        "linreg_all4_100": lambda: linreg_nb(c, 100, o1, o2, o3, o4),
    }
    theirs = {
        "stoch_14_3_3": lambda: talib.STOCH(h, lo, c, 14, 3, 0, 3, 0),
        "atr_wilder_14": lambda: talib.ATR(h, lo, c, 14),
        "linreg_slope_100": lambda: talib.LINEARREG_SLOPE(c, 100),
    }
    res: dict[str, object] = {"bars": n}
    for name, fn in ours.items():
        fn()  # numba: compile or load the cache
        res[f"ours_{name}_ms"] = 1e3 * best_of(fn)[0]
    for name, fn in theirs.items():
        fn()
        res[f"talib_{name}_ms"] = 1e3 * best_of(fn)[0]
    target = ("stoch_14_3_3", "atr_wilder_14", "linreg_slope_100")
    ours_total = sum(float(res[f"ours_{k}_ms"]) for k in target)  # type: ignore[arg-type]
    talib_total = sum(float(res[f"talib_{k}_ms"]) for k in target)  # type: ignore[arg-type]
    res["ours_total_ms"] = ours_total
    res["talib_total_ms"] = talib_total
    res["talib_over_ours"] = talib_total / ours_total
    res["target_met"] = ours_total <= talib_total
    for name, us in _per_bar_us(h, lo, c).items():
        res[f"per_bar_{name}_us"] = us
    res["per_bar_all3_us"] = sum(
        float(res[f"per_bar_{k}_us"]) for k in ("stoch", "atr", "linreg")  # type: ignore[arg-type]
    )
    return res


def _table(res: dict[str, object]) -> str:
    rows = [f"indicators on {res['bars']:,} bars (best of 3, ms)",
            f"{'':20s} {'ours':>9s} {'TA-Lib':>9s} {'TA-Lib/ours':>12s}"]
    for name in ("stoch_14_3_3", "atr_wilder_14", "linreg_slope_100"):
        a, b = float(res[f"ours_{name}_ms"]), float(res[f"talib_{name}_ms"])  # type: ignore[arg-type]
        rows.append(f"{name:20s} {a:9.2f} {b:9.2f} {b / a:12.2f}")
    a, b = float(res["ours_total_ms"]), float(res["talib_total_ms"])  # type: ignore[arg-type]
    rows.append(f"{'total (target set)':20s} {a:9.2f} {b:9.2f} {b / a:12.2f}"
                f"   target met: {res['target_met']}")
    rows.append(f"{'linreg_all4_100':20s} {float(res['ours_linreg_all4_100_ms']):9.2f}"  # type: ignore[arg-type]
                "   (slope, intercept, R², std in one pass)")
    rows.append("per-bar update, µs/bar: " + ", ".join(
        f"{k} {float(res[f'per_bar_{k}_us']):.2f}" for k in ("stoch", "atr", "linreg", "all3")  # type: ignore[arg-type]
    ))
    return "\n".join(rows)


if __name__ == "__main__":
    print(_table(run()))
