"""Stochastic oscillator kernels (0-100 scale).

Raw %K(n) = 100 * (close - LL_n) / (HH_n - LL_n), HH/LL the highest high / lowest low of the
last n bars including the current one. Smoothed %K = SMA(k_smooth) of raw %K; %D = SMA(d_smooth)
of smoothed %K.

**Zero range** (HH == LL: every bar of the window at one price): raw %K = 50, "the close sits in
the middle of a range of zero width". It never divides by zero, and it does not fake an extreme
(0 or 100 would fire oversold/overbought rules on a dead market). TA-Lib returns 0 there; the
reference bot divided by zero.

Two warm-up conventions (``full``):
- ``full=True`` (the *model* variant, TA-Lib/pandas default): NaN until every window is full:
  raw %K from bar n-1, smoothed %K from n-1+k_smooth-1, %D from n-1+k_smooth-1+d_smooth-1.
- ``full=False`` (the reference bot's *chart* variant, pandas ``min_periods=1``): values from
  bar 0 over the bars available so far.

Causal: every output at bar i uses bars <= i only. pandas equivalent:
``100*(c - l.rolling(n).min())/(h.rolling(n).max() - l.rolling(n).min())`` then
``.rolling(k_smooth).mean()`` and ``.rolling(d_smooth).mean()``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from indicators.kernels.rolling import extreme_push_nb, extreme_state, sma_push_nb, sma_state


class StochState:
    """Incremental state of one stochastic (plain numpy arrays, so numba can update it)."""

    __slots__ = ("d_buf", "d_meta", "hi_idx", "hi_meta", "hi_vals", "k_buf", "k_meta",
                 "lo_idx", "lo_meta", "lo_vals")

    def __init__(self, n: int, k_smooth: int, d_smooth: int) -> None:
        self.hi_idx, self.hi_vals, self.hi_meta = extreme_state(n)
        self.lo_idx, self.lo_vals, self.lo_meta = extreme_state(n)
        self.k_buf, self.k_meta = sma_state(k_smooth)
        self.d_buf, self.d_meta = sma_state(d_smooth)


@njit(cache=True, nogil=True, inline="always")
def stoch_push_nb(hi_idx, hi_vals, hi_meta, lo_idx, lo_vals, lo_meta, k_buf, k_meta, d_buf,
                  d_meta, h, lo, c, n, k_smooth, d_smooth, full):  # type: ignore[no-untyped-def]
    """One bar: return (raw %K, smoothed %K, %D)."""
    hh = extreme_push_nb(hi_idx, hi_vals, hi_meta, h, n, True)
    ll = extreme_push_nb(lo_idx, lo_vals, lo_meta, lo, n, False)
    if full and hi_meta[2] < n:
        raw = np.nan
    elif hh == ll:
        raw = 50.0
    else:
        raw = 100.0 * (c - ll) / (hh - ll)
    k = sma_push_nb(k_buf, k_meta, raw, k_smooth, k_smooth if full else 1)
    d = sma_push_nb(d_buf, d_meta, k, d_smooth, d_smooth if full else 1)
    return raw, k, d


@njit(cache=True, nogil=True)
def stoch_update_nb(hi_idx, hi_vals, hi_meta, lo_idx, lo_vals, lo_meta, k_buf, k_meta, d_buf,
                    d_meta, h, lo, c, n, k_smooth, d_smooth, full):  # type: ignore[no-untyped-def]
    """Per-bar incremental form (O(1) amortised): see ``stoch_push_nb``."""
    return stoch_push_nb(hi_idx, hi_vals, hi_meta, lo_idx, lo_vals, lo_meta, k_buf, k_meta,
                         d_buf, d_meta, h, lo, c, n, k_smooth, d_smooth, full)


@njit(cache=True, nogil=True)
def stoch_nb(high, low, close, n, k_smooth, d_smooth, full, out_k, out_d):  # type: ignore[no-untyped-def]
    """Whole-array form: smoothed %K into ``out_k`` and %D into ``out_d`` (0-100)."""
    hi_idx = np.zeros(n, np.int64)
    hi_vals = np.full(n, np.nan)
    hi_meta = np.zeros(3, np.int64)
    lo_idx = np.zeros(n, np.int64)
    lo_vals = np.full(n, np.nan)
    lo_meta = np.zeros(3, np.int64)
    k_buf = np.zeros(k_smooth)
    k_meta = np.zeros(3)
    d_buf = np.zeros(d_smooth)
    d_meta = np.zeros(3)
    for i in range(close.shape[0]):
        _, k, d = stoch_push_nb(hi_idx, hi_vals, hi_meta, lo_idx, lo_vals, lo_meta, k_buf,
                                k_meta, d_buf, d_meta, high[i], low[i], close[i], n, k_smooth,
                                d_smooth, full)
        out_k[i] = k
        out_d[i] = d
