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

from indicators.kernels.rolling import (
    extreme_push_nb,
    extreme_state,
    rolling_extreme_batch_nb,
    sma_batch_nb,
    sma_push_nb,
    sma_state,
)


class StochState:
    """Incremental state of one stochastic (plain numpy arrays, so numba can update it)."""

    __slots__ = ("d_buf", "d_meta", "hi_idx", "hi_meta", "hi_vals", "k_buf", "k_meta",
                 "lo_idx", "lo_meta", "lo_vals")

    def __init__(self, n: int, k_smooth: int, d_smooth: int) -> None:
        self.hi_idx, self.hi_vals, self.hi_meta = extreme_state(n)
        self.lo_idx, self.lo_vals, self.lo_meta = extreme_state(n)
        self.k_buf, self.k_meta = sma_state(k_smooth)
        self.d_buf, self.d_meta = sma_state(d_smooth)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
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


@njit(cache=True, nogil=True, error_model="numpy")
def stoch_update_nb(hi_idx, hi_vals, hi_meta, lo_idx, lo_vals, lo_meta, k_buf, k_meta, d_buf,
                    d_meta, h, lo, c, n, k_smooth, d_smooth, full):  # type: ignore[no-untyped-def]
    """Per-bar incremental form (O(1) amortised): see ``stoch_push_nb``."""
    return stoch_push_nb(hi_idx, hi_vals, hi_meta, lo_idx, lo_vals, lo_meta, k_buf, k_meta,
                         d_buf, d_meta, h, lo, c, n, k_smooth, d_smooth, full)


@njit(cache=True, nogil=True, error_model="numpy")
def stoch_nb(high, low, close, n, k_smooth, d_smooth, full, out_k, out_d):  # type: ignore[no-untyped-def]
    """Whole-array form: smoothed %K into ``out_k`` and %D into ``out_d`` (0-100).

    One fused pass: two monotonic deques (indices into the arrays, no ring arithmetic), then the
    two SMAs as running sums over small rings, re-summed every window like the per-bar form.
    """
    size = close.shape[0]
    qh = np.empty(size, np.int64)
    ql = np.empty(size, np.int64)
    hh_head = 0
    hh_tail = 0
    ll_head = 0
    ll_tail = 0
    kbuf = np.zeros(k_smooth)
    dbuf = np.zeros(d_smooth)
    k_sum = 0.0
    d_sum = 0.0
    k_cnt = 0
    d_cnt = 0
    k_since = 0
    d_since = 0
    k_min = k_smooth if full else 1
    d_min = d_smooth if full else 1
    k_slot = 0  # ring positions, wrapped by comparison (an integer modulo per bar is slow)
    d_slot = 0
    for i in range(size):
        if hh_head < hh_tail and qh[hh_head] <= i - n:
            hh_head += 1
        if ll_head < ll_tail and ql[ll_head] <= i - n:
            ll_head += 1
        h = high[i]
        lo = low[i]
        while hh_head < hh_tail and high[qh[hh_tail - 1]] <= h:
            hh_tail -= 1
        qh[hh_tail] = i
        hh_tail += 1
        while ll_head < ll_tail and low[ql[ll_tail - 1]] >= lo:
            ll_tail -= 1
        ql[ll_tail] = i
        ll_tail += 1
        if full and i < n - 1:
            out_k[i] = np.nan
            out_d[i] = np.nan
            continue
        hh = high[qh[hh_head]]
        ll = low[ql[ll_head]]
        raw = 50.0 if hh == ll else 100.0 * (close[i] - ll) / (hh - ll)
        # %K = SMA(k_smooth) of raw
        if k_cnt >= k_smooth:
            k_sum -= kbuf[k_slot]
        kbuf[k_slot] = raw
        k_slot += 1
        if k_slot == k_smooth:
            k_slot = 0
        k_sum += raw
        k_cnt += 1
        k_since += 1
        if k_since >= k_smooth:
            k_sum = 0.0
            for j in range(min(k_cnt, k_smooth)):
                k_sum += kbuf[j]
            k_since = 0
        if k_cnt < k_min:
            out_k[i] = np.nan
            out_d[i] = np.nan
            continue
        k = k_sum / min(k_cnt, k_smooth)
        out_k[i] = k
        # %D = SMA(d_smooth) of %K
        if d_cnt >= d_smooth:
            d_sum -= dbuf[d_slot]
        dbuf[d_slot] = k
        d_slot += 1
        if d_slot == d_smooth:
            d_slot = 0
        d_sum += k
        d_cnt += 1
        d_since += 1
        if d_since >= d_smooth:
            d_sum = 0.0
            for j in range(min(d_cnt, d_smooth)):
                d_sum += dbuf[j]
            d_since = 0
        out_d[i] = np.nan if d_cnt < d_min else d_sum / min(d_cnt, d_smooth)
