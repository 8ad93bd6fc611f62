"""Rolling linear regression of close on bar index, and the reference bot's 20-bar slope rule.

Over the last n closes y_0..y_{n-1} (y_{n-1} = the current bar) against x = 0..n-1:

- ``slope``: least-squares slope, price units per bar (TA-Lib ``LINEARREG_SLOPE``);
- ``intercept``: fitted value at x = 0, the window's first bar (TA-Lib ``LINEARREG_INTERCEPT``);
  the fitted value at the current bar, the channel's mid line, is
  ``intercept + slope * (n - 1)`` (TA-Lib ``LINEARREG``);
- ``r2``: coefficient of determination; **0 for a flat window** (nothing to explain);
- ``resid_std``: population standard deviation of the residuals (ddof 0), so a regression
  channel is ``mid ± k * resid_std``.

NaN for the first n-1 bars. O(1) per bar: running sums of values centred on an anchor price,
re-computed exactly from the window every n bars (so neither rounding drift nor the 1e5 price
level degrades the fit over millions of bars). Causal: outputs at bar i use closes <= i only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


class LinregState:
    """``buf``: the last n closes; ``f``: [Sy, Sxy, Syy, anchor, pushes, since_resync]."""

    __slots__ = ("buf", "f")

    def __init__(self, n: int) -> None:
        self.buf = np.zeros(n)
        self.f = np.zeros(6)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def linreg_push_nb(buf, f, y, n):  # type: ignore[no-untyped-def]
    """One close: return (slope, intercept, r2, resid_std)."""
    k = int(f[4])
    if k == 0:
        f[3] = y
    a = f[3]
    yn = y - a
    if k < n:
        f[0] += yn
        f[1] += k * yn
        f[2] += yn * yn
    else:
        yo = buf[k % n] - a
        f[1] = f[1] - (f[0] - yo) + (n - 1) * yn
        f[0] = f[0] - yo + yn
        f[2] = f[2] - yo * yo + yn * yn
    buf[k % n] = y
    k += 1
    f[4] = k
    f[5] += 1.0
    if k >= n and f[5] >= n:  # exact re-computation, re-anchored on the newest close
        a = y
        sy = 0.0
        sxy = 0.0
        syy = 0.0
        for j in range(n):
            v = buf[(k + j) % n] - a  # oldest first: slot k % n holds the oldest value
            sy += v
            sxy += j * v
            syy += v * v
        f[0] = sy
        f[1] = sxy
        f[2] = syy
        f[3] = a
        f[5] = 0.0
    if k < n:
        return np.nan, np.nan, np.nan, np.nan
    sx = n * (n - 1) / 2.0
    sxx = (n - 1) * n * (2 * n - 1) / 6.0
    denom = n * sxx - sx * sx
    sy = f[0]
    sxy = f[1]
    slope = (n * sxy - sx * sy) / denom if denom > 0 else 0.0
    intercept = (sy - slope * sx) / n + f[3]
    sst = f[2] - sy * sy / n
    ssr = slope * (sxy - sx * sy / n)
    if sst <= 1e-12 * max(1.0, f[2]):
        return slope, intercept, 0.0, 0.0
    sse = max(sst - ssr, 0.0)
    r2 = min(max(ssr / sst, 0.0), 1.0)
    return slope, intercept, r2, math.sqrt(sse / n)


@njit(cache=True, nogil=True, error_model="numpy")
def linreg_update_nb(buf, f, y, n):  # type: ignore[no-untyped-def]
    """Per-bar incremental form (O(1) amortised)."""
    return linreg_push_nb(buf, f, y, n)


@njit(cache=True, nogil=True, error_model="numpy")
def linreg_nb(close, n, out_slope, out_intercept, out_r2, out_std):  # type: ignore[no-untyped-def]
    """Whole-array form: the per-bar algorithm with local sums (no ring buffer)."""
    size = close.shape[0]
    sx = n * (n - 1) / 2.0
    sxx = (n - 1) * n * (2 * n - 1) / 6.0
    denom = n * sxx - sx * sx
    sy = 0.0
    sxy = 0.0
    syy = 0.0
    a = close[0] if size else 0.0
    since = 0
    for k in range(size):
        y = close[k]
        yn = y - a
        if k < n:
            sy += yn
            sxy += k * yn
            syy += yn * yn
        else:
            yo = close[k - n] - a
            sxy = sxy - (sy - yo) + (n - 1) * yn
            sy = sy - yo + yn
            syy = syy - yo * yo + yn * yn
        since += 1
        if k + 1 >= n and since >= n:
            a = y
            sy = 0.0
            sxy = 0.0
            syy = 0.0
            for j in range(n):
                v = close[k - n + 1 + j] - a
                sy += v
                sxy += j * v
                syy += v * v
            since = 0
        if k + 1 < n:
            out_slope[k] = np.nan
            out_intercept[k] = np.nan
            out_r2[k] = np.nan
            out_std[k] = np.nan
            continue
        slope = (n * sxy - sx * sy) / denom if denom > 0 else 0.0
        out_slope[k] = slope
        out_intercept[k] = (sy - slope * sx) / n + a
        sst = syy - sy * sy / n
        if sst <= 1e-12 * max(1.0, syy):
            out_r2[k] = 0.0
            out_std[k] = 0.0
            continue
        ssr = slope * (sxy - sx * sy / n)
        out_r2[k] = min(max(ssr / sst, 0.0), 1.0)
        out_std[k] = math.sqrt(max(sst - ssr, 0.0) / n)


@njit(cache=True, nogil=True, error_model="numpy")
def slope_rule_nb(close, n, out):  # type: ignore[no-untyped-def]
    """The reference bot's "slope": ``(close[i] - close[i-n+1]) / n`` over a rolling n-bar
    window (n = 20: last minus first close of the window, divided by 20, not 19). Price units
    per bar; NaN for the first n-1 bars. pandas: ``c.rolling(n).apply(lambda w: (w[-1]-w[0])/n)``."""
    for i in range(close.shape[0]):
        out[i] = (close[i] - close[i - n + 1]) / n if i >= n - 1 else np.nan
    return out
