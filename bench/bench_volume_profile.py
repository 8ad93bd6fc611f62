"""Volume profile: the rolling kernel over 1M bars, per-bar update cost, one GMM fit, and the
reference bot's way on the same data in the same run.

What is timed (real BTC/USDT 15m data tiled to ``repeat_to`` bars with ``bench.common.tiled``;
200-bar windows before each bar, 80 bins, one core, numba compiled or loaded from its cache
before any timing):

- ``rolling_{close,range}_s``: ``rolling_profile_nb`` over every bar, all per-bar levels (POC,
  VAH, VAL, HVNs, peaks and the nearest ones), best of 2; targets < 2 s close-only, < 5 s
  range-spread. ``rebuild_pct``: bars whose grid moved (profile rebuilt from its window).
- ``kernel_per_bar_us``: the same kernel called from Python for one bar at a time, state carried
  (what the handler does per bar, without the bus and feature store), and
  ``handler_per_bar_us``: ``VolumeProfileHandler.on_bar_closed`` on a live ``BarStore`` (the
  bar appended, the kernel, ten feature-store writes), both over ``PER_BAR_BARS`` bars.
- ``gmm_fit_ms``: one ``fit_nodes`` (BIC over 2-5 components, LVNs, two-component fit, curves)
  on real range-spread profiles, best of 3 per window, median over ``GMM_FITS`` windows;
  target < 30 ms; ``gmm_sklearn_fit_ms`` the reference bot's way on the same windows
  (scikit-learn ``GaussianMixture`` n = 2..5 with BIC and the two-component fit).
- ``ref_{close,range}_per_bar_us``: the reference bot's ``calculate_volume_profile`` recomputed
  for each bar from a ``DataFrame.iloc`` slice (``numpy.histogram`` of closes weighted by
  volume, or the precise per-candle loop over ``numpy.digitize`` bins; POC, the value area's
  Python loop, the HVN percentile, ``scipy.signal.find_peaks``), on ``REF_BARS`` bars and
  scaled per bar; ``ref_over_ours_{close,range}`` = its per-bar cost / ours (> 1: ours faster),
  and ``ref_{close,range}_1m_s_est`` what it would take over all bars.

Run alone with ``python bench/bench_volume_profile.py``; ``bench/run_all.py`` calls ``run()``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_of, real_bars, tiled
from engine.bars import BarStore
from engine.events import BarClosed
from engine.features import FeatureStore
from indicators.gmm import fit_nodes
from indicators.kernels.volume_profile import (
    CLOSE,
    N_OUT,
    RANGE,
    rolling_profile_nb,
    rolling_state_nb,
)
from indicators.profile import (
    VolumeProfileHandler,
    VolumeProfileParams,
    warm_up_kernels,
    window_profile,
)

LOOKBACK = 200
BINS = 80
PER_BAR_BARS = 20_000
REF_BARS = {"close": 20_000, "range": 2_000}  # the precise mode is a Python loop per candle
GMM_FITS = 15


def _rolling(h, lo, c, v, mode: int) -> tuple[float, float]:
    n = c.shape[0]
    out = np.empty((n, N_OUT))
    state = rolling_state_nb(BINS)[1]

    def once() -> None:
        nonlocal state
        vols, state = rolling_state_nb(BINS)
        rolling_profile_nb(h, lo, c, v, 0, n, LOOKBACK, BINS, mode, False, 0.7, 75.0, 0.05, 3,
                           vols, state, out)

    t, _ = best_of(once, repeat=2)
    return t, 100.0 * state[4] / max(1.0, state[4] + state[5])


def _kernel_per_bar_us(h, lo, c, v) -> float:
    m = min(PER_BAR_BARS, c.shape[0])
    vols, state = rolling_state_nb(BINS)
    out = np.empty((1, N_OUT))
    rolling_profile_nb(h, lo, c, v, 0, LOOKBACK, LOOKBACK, BINS, CLOSE, False, 0.7, 75.0, 0.05,
                       3, vols, state, np.empty((LOOKBACK, N_OUT)))
    t0 = time.perf_counter()
    for i in range(LOOKBACK, m):
        rolling_profile_nb(h, lo, c, v, i, i + 1, LOOKBACK, BINS, CLOSE, False, 0.7, 75.0,
                           0.05, 3, vols, state, out)
    return 1e6 * (time.perf_counter() - t0) / (m - LOOKBACK)


def _handler_per_bar_us(bars) -> float:
    m = min(PER_BAR_BARS, len(bars))
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns, capacity=m)
    h = VolumeProfileHandler("vp", VolumeProfileParams(), store, FeatureStore(store))
    close_ns = bars.ts_open_ns + bars.tf_ns
    cols = [bars.ts_open_ns.tolist(), bars.open.tolist(), bars.high.tolist(),
            bars.low.tolist(), bars.close.tolist(), bars.volume.tolist()]
    events = [BarClosed(ts_event_ns=int(close_ns[i]), ts_init_ns=int(close_ns[i]),
                        symbol=bars.symbol, timeframe=bars.timeframe, seq=i, open=cols[1][i],
                        high=cols[2][i], low=cols[3][i], close=cols[4][i], volume=cols[5][i])
              for i in range(m)]
    t = 0.0
    for i, ev in enumerate(events):
        store.append(cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i])
        t0 = time.perf_counter()
        h.on_bar_closed(ev)
        if i >= LOOKBACK:
            t += time.perf_counter() - t0
    return 1e6 * t / (m - LOOKBACK)


def _gmm_fit_ms(bars, fit=None) -> float:
    fit = fit or fit_nodes
    n = len(bars)
    times = []
    fit(*_profile_arrays(bars, n // 2))  # imports and first-call costs
    for k in range(GMM_FITS):
        stop = LOOKBACK + (k + 1) * (n - LOOKBACK) // (GMM_FITS + 1)
        prices, vols = _profile_arrays(bars, stop)
        times.append(best_of(lambda p=prices, v=vols: fit(p, v))[0])
    return 1e3 * statistics.median(times)


def _sklearn_nodes(prices, vols):
    """The reference bot's way: scikit-learn ``GaussianMixture`` (full covariance, seed 42) for
    n = 2..5 on the repeated sample, BIC of each, then the two-component fit."""
    import warnings

    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    from indicators.gmm import samples

    x = samples(prices, vols, at_least_one=True).reshape(-1, 1)
    x2 = samples(prices, vols, at_least_one=False).reshape(-1, 1)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for n in range(2, 6):
            GaussianMixture(n, covariance_type="full", random_state=42, max_iter=100).fit(x).bic(x)
        GaussianMixture(2, covariance_type="full", random_state=42, max_iter=100).fit(x2)


def _profile_arrays(bars, stop: int):
    p = window_profile(bars.high, bars.low, bars.close, bars.volume, stop - LOOKBACK, stop,
                       bins=BINS, mode="range")
    return p.prices, p.volumes


# -- the reference bot's way -----------------------------------------------------------------------
def _reference_profile(df, start: int, end: int, precise: bool) -> tuple[float, float, float]:
    """The reference bot's ``calculate_volume_profile`` (section 3), its arithmetic as
    described: a DataFrame slice per bar, a fresh histogram, the levels in Python/numpy."""
    from scipy.signal import find_peaks

    window = df.iloc[start:end]
    lo, hi = window["low"].min(), window["high"].max()
    if hi == lo:
        return 0.0, 0.0, 0.0
    edges = np.linspace(lo, hi, BINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    if precise:
        vols = np.zeros(BINS)
        lows, highs, volume = (window["low"].to_numpy(), window["high"].to_numpy(),
                               window["volume"].to_numpy())
        for k in range(len(window)):
            a = min(max(np.digitize(lows[k], edges) - 1, 0), BINS - 1)
            b = min(max(np.digitize(highs[k], edges) - 1, 0), BINS - 1)
            vols[a:b + 1] += volume[k] / (b - a + 1)
    else:
        vols, _ = np.histogram(window["close"], bins=edges, weights=window["volume"])
    poc = int(np.argmax(vols))
    total = vols.sum()
    acc, lo_i, hi_i = vols[poc], poc, poc
    while acc < 0.7 * total:
        lower = vols[lo_i - 1] if lo_i > 0 else 0.0
        upper = vols[hi_i + 1] if hi_i < BINS - 1 else 0.0
        if lower > upper and lo_i > 0:
            lo_i -= 1
            acc += lower
        elif hi_i < BINS - 1:
            hi_i += 1
            acc += upper
        else:
            break
    _hvns = centers[vols >= np.percentile(vols, 75)]
    _peaks = find_peaks(vols / vols.max(), prominence=0.05, distance=3)[0]
    return centers[poc], centers[hi_i], centers[lo_i]


def _reference_per_bar_us(bars, mode: str) -> float:
    import pandas as pd

    m = min(REF_BARS[mode] + LOOKBACK, len(bars))
    df = pd.DataFrame({"high": bars.high[:m], "low": bars.low[:m], "close": bars.close[:m],
                       "volume": bars.volume[:m]})
    precise = mode == "range"
    _reference_profile(df, 0, LOOKBACK, precise)
    t0 = time.perf_counter()
    for i in range(LOOKBACK, m):
        _reference_profile(df, i - LOOKBACK, i, precise)
    return 1e6 * (time.perf_counter() - t0) / (m - LOOKBACK)


def run(repeat_to: int = 1_000_000) -> dict[str, object]:
    """Time the rolling kernel, the per-bar paths, one GMM fit and the reference bot's way.

    Returns:
        Seconds / µs / ms as named, the rebuild share, targets met, and reference ratios.
    """
    warm_up_kernels()
    real = real_bars()
    bars = tiled(real, repeat_to)
    h, lo, c, v = bars.high, bars.low, bars.close, bars.volume
    res: dict[str, object] = {"bars": len(bars), "lookback": LOOKBACK, "bins": BINS}
    for name, mode, target in (("close", CLOSE, 2.0), ("range", RANGE, 5.0)):
        t, rebuild_pct = _rolling(h, lo, c, v, mode)
        res[f"rolling_{name}_s"] = t
        res[f"rolling_{name}_us_per_bar"] = 1e6 * t / len(bars)
        res[f"rolling_{name}_target_met"] = t < target
        res[f"rebuild_{name}_pct"] = rebuild_pct
    res["kernel_per_bar_us"] = _kernel_per_bar_us(h, lo, c, v)
    res["handler_per_bar_us"] = _handler_per_bar_us(real)
    res["gmm_fit_ms"] = _gmm_fit_ms(real)
    res["gmm_target_met"] = float(res["gmm_fit_ms"]) < 30.0  # type: ignore[arg-type]
    res["gmm_sklearn_fit_ms"] = _gmm_fit_ms(real, _sklearn_nodes)
    res["gmm_sklearn_over_ours"] = res["gmm_sklearn_fit_ms"] / res["gmm_fit_ms"]
    for name in ("close", "range"):
        ref = _reference_per_bar_us(real, name)
        ours = float(res[f"rolling_{name}_us_per_bar"])  # type: ignore[arg-type]
        res[f"ref_{name}_per_bar_us"] = ref
        res[f"ref_{name}_bars_timed"] = REF_BARS[name]
        res[f"ref_{name}_1m_s_est"] = ref * len(bars) / 1e6
        res[f"ref_over_ours_{name}"] = ref / ours
    return res


if __name__ == "__main__":
    for k, val in run().items():
        print(f"  {k:32s} {val:.4g}" if isinstance(val, float) else f"  {k:32s} {val}")
