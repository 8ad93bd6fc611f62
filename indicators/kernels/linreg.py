"""Rolling linear regression of close on bar index, and the reference bot's 20-bar slope rule.

Regression over the last n closes ``y_0 .. y_{n-1}`` (``y_{n-1}`` = the current bar) against
``x = 0 .. n-1``, ordinary least squares:

- ``slope``: price units per bar. TA-Lib ``LINEARREG_SLOPE``.
- ``intercept``: the fitted value **at the window's last bar** (x = n-1), i.e. the fitted
  current value and the regression channel's mid line. TA-Lib ``LINEARREG`` (not TA-Lib's
  ``LINEARREG_INTERCEPT``, which is the value at x = 0 = ``intercept - slope * (n - 1)``).
- ``r2``: coefficient of determination, 0..1 (1 for n = 2: two points fit exactly). Its
  absolute error is ~1e-16 x P x Syy / SST (P below): tiny, except for a window whose variance
  is minute next to its distance from the anchor (a dead market right after a move).
- ``resid_std``: population standard deviation of the residuals (ddof = 0, divided by n), in
  price units. A regression channel is ``intercept ± k * resid_std``.

Warm-up: NaN for bars 0..n-2 (all four outputs); n < 2 gives NaN everywhere.
Zero range: a flat window (every close equal, or a variance at rounding level: below 1e-10 of
the window's mean squared distance to the anchor, see below) has slope 0, intercept = the price,
**r2 = 0** (nothing to explain; 0/0 otherwise) and resid_std = 0. An exact fit (every close on
a line, e.g. any window of n = 2) has resid_std = 0: a residual sum of squares below 1e-12 of
Syy is rounding noise, which the square root would otherwise blow up to ~1e-8 x the moves.
Causal: outputs at bar i use closes <= i only.

Numerics: O(1) per bar with running sums Sy, Sxy, Syy of ``y - anchor``. Raw sums of prices
~1e5 lose digits to cancellation (Syy - Sy^2/n: about six of sixteen when the window moves by
~100); centring on an anchor (a recent close) keeps the summed values at the size of the
window's moves. Every ``max(n, min(RESYNC_EVERY, 16 n))`` bars (1024 for n = 100) the sums
are recomputed exactly from the window and re-anchored on the newest close, so neither rounding
drift nor a trending price degrades the fit over millions of bars (tested at 1e5 over 1M bars
against an exact oracle).
The per-bar form does the same arithmetic in the same order: both forms agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# The running sums are recomputed exactly, and re-anchored, every max(n, min(RESYNC_EVERY, 16 n))
# bars (module docstring).
RESYNC_EVERY = 1024
# A window is flat when its centred sum of squares is below this fraction of Syy (see above).
FLAT_REL = 1e-10
# A residual sum of squares below this fraction of Syy is rounding noise: resid_std = 0.
RESID_REL = 1e-12

# Per-bar state (float64): [n, pushes, pushes since re-sum, anchor, Sy, Sxy, Syy] + closes[n]
_HEAD = 7


@njit(cache=True, nogil=True)
def linreg_state_nb(n: int) -> np.ndarray:
    """Fresh per-bar state (float64 array) of a regression over ``n`` closes, for
    ``linreg_update_nb``."""
    st = np.zeros(_HEAD + n)
    st[0] = n
    return st


@njit(cache=True, nogil=True, inline="always")
def _resync_period_nb(n: int) -> int:
    """Bars between exact re-sums. The rounding error of Syy - Sy^2/n grows with the number of
    updates P and with the price's drift from the anchor over P bars (a factor ~1 + 6P/n), so
    short windows re-sum sooner: P = max(n, min(RESYNC_EVERY, 16n)) keeps it near 1e-12."""
    return max(n, min(RESYNC_EVERY, 16 * n))


@njit(cache=True, nogil=True, inline="always")
def _fit_nb(
    n: int, sy: float, sxy: float, syy: float, anchor: float
) -> tuple[float, float, float, float]:
    """(slope, intercept at x = n-1, r2, resid_std) from centred sums over x = 0..n-1."""
    sx = n * (n - 1) / 2.0
    sxx_c = n * (n * n - 1) / 12.0  # sum of (x - mean x)^2
    mean = sy * (1.0 / n)
    sxy_c = sxy - sx * mean  # sum of (x - mean x) * y
    slope = sxy_c * (1.0 / sxx_c)
    intercept = anchor + mean + slope * ((n - 1) / 2.0)
    sst = syy - sy * mean
    if sst <= FLAT_REL * syy:
        return 0.0, anchor + mean, 0.0, 0.0
    if n == 2:  # a line through two points fits exactly; the sums would only add noise
        return slope, intercept, 1.0, 0.0
    ssr = slope * sxy_c
    r2 = min(max(ssr / sst, 0.0), 1.0)
    sse = sst - ssr
    if sse <= RESID_REL * syy:  # rounding noise of a (near) exact fit: sqrt would amplify it
        sse = 0.0
    return slope, intercept, r2, math.sqrt(sse * (1.0 / n))


@njit(cache=True, nogil=True)
def linreg_update_nb(st: np.ndarray, y: float) -> tuple[float, float, float, float]:
    """Per-bar form: push one close; return ``(slope, intercept, r2, resid_std)``.

    Same definitions, warm-up, zero-range rule and causality as ``linreg_nb`` (module
    docstring); bit-identical results. O(1), plus an O(n) exact re-sum every n bars.
    ``st`` comes from ``linreg_state_nb`` and is updated in place.
    """
    n = int(st[0])
    k = int(st[1])
    buf = st[_HEAD:]
    if n < 2:
        st[1] = k + 1
        return np.nan, np.nan, np.nan, np.nan
    if k == 0:
        st[3] = y
    a = st[3]
    yn = y - a
    if k < n:
        st[4] += yn
        st[5] += k * yn
        st[6] += yn * yn
    else:
        yo = buf[k % n] - a
        st[5] += (n - 1) * yn - (st[4] - yo)
        st[4] += yn - yo
        st[6] += yn * yn - yo * yo
    buf[k % n] = y
    k += 1
    st[1] = k
    st[2] += 1.0
    if k >= n and st[2] >= _resync_period_nb(n):  # exact re-sum, anchored on the newest close
        a = y
        sy = 0.0
        sxy = 0.0
        syy = 0.0
        for j in range(n):
            v = buf[(k + j) % n] - a  # oldest first: slot k % n holds the oldest close
            sy += v
            sxy += j * v
            syy += v * v
        st[3] = a
        st[4] = sy
        st[5] = sxy
        st[6] = syy
        st[2] = 0.0
    if k < n:
        return np.nan, np.nan, np.nan, np.nan
    return _fit_nb(n, st[4], st[5], st[6], st[3])


@njit(cache=True, nogil=True)
def linreg_nb(
    close: np.ndarray,
    n: int,
    out_slope: np.ndarray,
    out_intercept: np.ndarray,
    out_r2: np.ndarray,
    out_std: np.ndarray,
) -> None:
    """Whole-array form: rolling regression over ``n`` closes into the four ``out`` arrays.

    Formula: least squares of closes i-n+1..i on x = 0..n-1. Outputs: ``slope`` (price per
    bar, TA-Lib ``LINEARREG_SLOPE``), ``intercept`` (fitted value at the current bar, TA-Lib
    ``LINEARREG``), ``r2`` (0..1) and ``resid_std`` (ddof 0, price units). Warm-up: NaN for bars
    0..n-2; n < 2 gives NaN everywhere. Zero range: a flat window gives slope 0, r2 0, std 0.
    Causal: outputs at bar i use closes <= i only. Numerics: module docstring; the same
    arithmetic in the same order as ``linreg_update_nb``.
    """
    size = close.shape[0]
    for i in range(min(size, n - 1) if n >= 2 else size):
        out_slope[i] = np.nan
        out_intercept[i] = np.nan
        out_r2[i] = np.nan
        out_std[i] = np.nan
    if n < 2 or size < n:
        return
    period = _resync_period_nb(n)
    a = close[0]
    sy = 0.0
    sxy = 0.0
    syy = 0.0
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
            sxy += (n - 1) * yn - (sy - yo)
            sy += yn - yo
            syy += yn * yn - yo * yo
        since += 1
        if k + 1 >= n and since >= period:
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
        if k + 1 >= n:
            s, b, r, e = _fit_nb(n, sy, sxy, syy, a)
            out_slope[k] = s
            out_intercept[k] = b
            out_r2[k] = r
            out_std[k] = e


@njit(cache=True, nogil=True)
def linreg_slope_nb(close: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Rolling regression slope only (price per bar) into ``out``; returns ``out``.

    Its loop repeats ``linreg_nb``'s on purpose: moved into a shared inlined helper returning
    the sums as a tuple, this kernel ran 6x slower (3.2 ms -> 20 ms per 1M bars, measured with
    ``bench/run_all.py --only indicators``); the tests hold the two slopes bit-identical.

    The ``slope`` of ``linreg_nb`` (same sums, re-sums and arithmetic, so identical values)
    without the other three outputs, for a caller that needs only the slope (the like-for-like
    peer of TA-Lib ``LINEARREG_SLOPE``). Warm-up, flat windows (slope 0) and causality as in
    the module docstring.
    """
    size = close.shape[0]
    for i in range(min(size, n - 1) if n >= 2 else size):
        out[i] = np.nan
    if n < 2 or size < n:
        return out
    sx = n * (n - 1) / 2.0
    inv_sxx = 1.0 / (n * (n * n - 1) / 12.0)
    inv_n = 1.0 / n
    period = _resync_period_nb(n)
    a = close[0]
    sy = 0.0
    sxy = 0.0
    syy = 0.0
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
            sxy += (n - 1) * yn - (sy - yo)
            sy += yn - yo
            syy += yn * yn - yo * yo
        since += 1
        if k + 1 >= n and since >= period:
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
        if k + 1 >= n:
            mean = sy * inv_n
            sst = syy - sy * mean
            out[k] = 0.0 if sst <= FLAT_REL * syy else (sxy - sx * mean) * inv_sxx
    return out


# -- the reference bot's slope rule ---------------------------------------------------------------
# Per-bar state (float64): [n, pushes] + closes[n]
_SR_HEAD = 2


@njit(cache=True, nogil=True)
def slope_rule_state_nb(n: int) -> np.ndarray:
    """Fresh per-bar state (float64 array) of the slope rule over ``n`` bars, for
    ``slope_rule_update_nb``."""
    st = np.zeros(_SR_HEAD + n)
    st[0] = n
    return st


@njit(cache=True, nogil=True)
def slope_rule_nb(close: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """The reference bot's "slope": ``(close[i] - close[i-n+1]) / n`` into ``out``.

    Its rule (chart_generator ``identify_quad_rotation_alarms``, reference section 2.3 item 2):
    over a rolling n = 20 bar window, ``(close_last - close_first) / 20``. The window holds n
    closes, so last and first are n-1 bars apart, yet it divides by n (20, not 19); kept
    exactly, since its alarm threshold (< -0.5) was tuned on this value. Not a regression.
    Units: price per bar (scale dependent, its bug 20). Warm-up: NaN for bars 0..n-2. A flat
    window gives 0. Causal: uses closes i-n+1 and i only.
    pandas: ``c.rolling(n).apply(lambda w: (w.iloc[-1] - w.iloc[0]) / n)``.
    """
    for i in range(close.shape[0]):
        out[i] = (close[i] - close[i - n + 1]) / n if i >= n - 1 else np.nan
    return out


@njit(cache=True, nogil=True)
def slope_rule_update_nb(st: np.ndarray, y: float) -> float:
    """Per-bar form of ``slope_rule_nb``: push one close, return the rule's value. O(1)."""
    n = int(st[0])
    k = int(st[1])
    buf = st[_SR_HEAD:]
    buf[k % n] = y
    k += 1
    st[1] = k
    if k < n:
        return np.nan
    return (y - buf[k % n]) / n  # slot k % n: the close n-1 bars back (or this one, n = 1)
