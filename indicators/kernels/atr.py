"""Average true range kernels.

TR[i] = max(high - low, |high - close[i-1]|, |low - close[i-1]|); TR[0] = high - low.

- ``wilder`` (TA-Lib's ATR): first value at bar n = mean(TR[1..n]); then
  ATR[i] = (ATR[i-1] * (n - 1) + TR[i]) / n. NaN before bar n.
- ``sma`` (the reference bot's): simple mean of the last n TRs including TR[0] = high - low;
  first value at bar n-1. pandas: ``tr.rolling(n).mean()``.

Price units. A flat market gives 0, never NaN. Causal: ATR[i] uses bars <= i only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from indicators.kernels.rolling import sma_push_nb

WILDER = 0
SMA = 1


class AtrState:
    """Incremental state: ``f`` = [prev close, wilder atr, wilder sum, bars seen]; SMA buffers."""

    __slots__ = ("buf", "f", "meta")

    def __init__(self, n: int) -> None:
        self.f = np.array([np.nan, np.nan, 0.0, 0.0])
        self.buf = np.zeros(n)
        self.meta = np.zeros(3)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def atr_push_nb(f, buf, meta, h, lo, c, n, method):  # type: ignore[no-untyped-def]
    """One bar: return ATR (NaN during warm-up)."""
    pc = f[0]
    i = int(f[3])
    tr = h - lo
    if i > 0:
        tr = max(tr, abs(h - pc), abs(lo - pc))
    f[0] = c
    f[3] = i + 1
    if method == SMA:
        return sma_push_nb(buf, meta, tr, n, n)
    if i == 0:
        return np.nan
    if i <= n:
        f[2] += tr
        if i < n:
            return np.nan
        f[1] = f[2] / n
        return f[1]
    f[1] = (f[1] * (n - 1) + tr) / n
    return f[1]


@njit(cache=True, nogil=True, error_model="numpy")
def atr_update_nb(f, buf, meta, h, lo, c, n, method):  # type: ignore[no-untyped-def]
    """Per-bar incremental form (O(1))."""
    return atr_push_nb(f, buf, meta, h, lo, c, n, method)


@njit(cache=True, nogil=True, error_model="numpy")
def true_range_nb(high, low, close, out):  # type: ignore[no-untyped-def]
    """TR into ``out`` (TR[0] = high - low)."""
    size = close.shape[0]
    if size:
        out[0] = high[0] - low[0]
    for i in range(1, size):
        pc = close[i - 1]
        out[i] = max(high[i] - low[i], abs(high[i] - pc), abs(low[i] - pc))
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def atr_nb(high, low, close, n, method, out):  # type: ignore[no-untyped-def]
    """Whole-array form into ``out``: TR in one vectorisable pass, then the average in place."""
    size = close.shape[0]
    true_range_nb(high, low, close, out)
    if method == SMA:
        buf = np.zeros(n)
        s = 0.0
        since = 0
        slot = 0
        for i in range(size):
            t = out[i]
            if i >= n:
                s -= buf[slot]
            buf[slot] = t
            slot += 1
            if slot == n:
                slot = 0
            s += t
            since += 1
            if since >= n:  # re-sum (same schedule as the per-bar form)
                s = 0.0
                for j in range(min(i + 1, n)):
                    s += buf[j]
                since = 0
            out[i] = np.nan if i < n - 1 else s / n
        return out
    if size <= n:
        out[:] = np.nan
        return out
    s = 0.0
    for i in range(1, n + 1):
        s += out[i]
    a = s / n
    out[:n] = np.nan
    out[n] = a
    for i in range(n + 1, size):
        a = (a * (n - 1) + out[i]) / n
        out[i] = a
    return out
