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


@njit(cache=True, nogil=True, inline="always")
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


@njit(cache=True, nogil=True)
def atr_update_nb(f, buf, meta, h, lo, c, n, method):  # type: ignore[no-untyped-def]
    """Per-bar incremental form (O(1))."""
    return atr_push_nb(f, buf, meta, h, lo, c, n, method)


@njit(cache=True, nogil=True)
def atr_nb(high, low, close, n, method, out):  # type: ignore[no-untyped-def]
    """Whole-array form into ``out``."""
    f = np.array([np.nan, np.nan, 0.0, 0.0])
    buf = np.zeros(n)
    meta = np.zeros(3)
    for i in range(close.shape[0]):
        out[i] = atr_push_nb(f, buf, meta, high[i], low[i], close[i], n, method)
    return out
