"""Plain Python API for notebooks and scripts: arrays in, float64 arrays out.

Every function converts its inputs with ``np.ascontiguousarray(x, dtype=np.float64)``, checks
them, and returns new float64 arrays aligned with the input (NaN during warm-up), computed by the
same numba kernels as the engine's bus handlers (``indicators.kernels``). Stochastics are on a
0-100 scale everywhere; ``pct_to_unit`` is the one documented place to divide by 100 for a model
trained on 0-1 (the reference bot mixed the two scales).

Raises:
    ValueError: an input is not 1-D, the lengths differ, or a parameter is out of range; the
        message names the function, the argument, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from indicators.kernels.atr import SMA, WILDER, atr_nb
from indicators.kernels.linreg import linreg_nb, slope_rule_nb
from indicators.kernels.stoch import stoch_nb

F64 = NDArray[np.float64]
Variant = Literal["model", "chart"]

# The reference bot's four stochastic scales (reference section 2.1).
# Model variant (its NN / training code): (%K look-back n, K smoothing); full windows, one SMA,
# the smoothed %K line: S9 = SMA3(%K9), S14 = SMA3(%K14), S40 = SMA4(%K40), S60 = SMA10(%K60).
MODEL_SCALES: dict[str, tuple[int, int]] = {
    "s9": (9, 3),
    "s14": (14, 3),
    "s40": (40, 4),
    "s60": (60, 10),
}
# Chart variant (its display / rule code): (%K look-back n, K smoothing, D smoothing);
# min_periods=1 from bar 0, the %D line SMA(d)(SMA(k)(%K n)): S9 = SMA3(%K9),
# S14 = SMA3(%K14), S40 = SMA4(%K40), S60 = SMA10(SMA10(%K60)) (smoothed twice, unlike the
# model's S60).
CHART_SCALES: dict[str, tuple[int, int, int]] = {
    "s9": (9, 1, 3),
    "s14": (14, 1, 3),
    "s40": (40, 1, 4),
    "s60": (60, 10, 10),
}


def scale_specs(variant: str) -> dict[str, tuple[int, int, int, bool]]:
    """``{name: (n, k_smooth, d_smooth, full)}`` of the four stochastics of ``variant``.

    The model variant's line is smoothed %K (its ``d_smooth`` of 1 is unused); the chart
    variant's line is %D.

    Raises:
        ValueError: ``variant`` is neither ``"model"`` nor ``"chart"``.
    """
    if variant == "model":
        return {k: (n, ks, 1, True) for k, (n, ks) in MODEL_SCALES.items()}
    if variant == "chart":
        return {k: (n, ks, ds, False) for k, (n, ks, ds) in CHART_SCALES.items()}
    raise ValueError(f"multi_stochastic: variant must be 'model' or 'chart', got {variant!r}")


def _array(fn: str, name: str, x: ArrayLike) -> F64:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be a 1-D array of prices, got shape {a.shape}")
    return a


def _ohlc(fn: str, high: ArrayLike, low: ArrayLike, close: ArrayLike) -> tuple[F64, F64, F64]:
    h, lo, c = _array(fn, "high", high), _array(fn, "low", low), _array(fn, "close", close)
    if not h.shape[0] == lo.shape[0] == c.shape[0]:
        raise ValueError(
            f"{fn}: high, low and close must have the same length, got high={h.shape[0]}, "
            f"low={lo.shape[0]}, close={c.shape[0]}; pass columns of the same bars"
        )
    return h, lo, c


def _int(fn: str, name: str, value: object, minimum: int) -> int:
    # bool is an int subclass: refuse it, True as a window length is a bug in the caller
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{fn}: {name} must be an integer number of bars, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def stochastic(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    k: int = 14,
    k_smooth: int = 3,
    d_smooth: int = 3,
) -> tuple[F64, F64]:
    """Stochastic oscillator with full windows, 0-100.

    Args:
        high, low, close: price columns of equal length.
        k: %K look-back in bars (>= 1).
        k_smooth: SMA length applied to raw %K (>= 1; 1 = raw %K).
        d_smooth: SMA length of %D over smoothed %K (>= 1).

    Returns:
        ``(k, d)``: smoothed %K and %D. NaN for the first ``k + k_smooth - 2`` bars (%K) and
        ``k + k_smooth + d_smooth - 3`` bars (%D); 50 where the k-bar range is zero. Equals
        TA-Lib ``STOCH(h, l, c, k, k_smooth, 0, d_smooth, 0)`` where both are defined
        (``indicators.kernels.stoch``).
    """
    h, lo, c = _ohlc("stochastic", high, low, close)
    n = _int("stochastic", "k", k, 1)
    ks = _int("stochastic", "k_smooth", k_smooth, 1)
    ds = _int("stochastic", "d_smooth", d_smooth, 1)
    out_k, out_d = np.empty(c.shape[0]), np.empty(c.shape[0])
    stoch_nb(h, lo, c, n, ks, ds, True, out_k, out_d)
    return out_k, out_d


def multi_stochastic(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, variant: Variant = "model"
) -> dict[str, F64]:
    """The reference bot's four stochastics S9, S14, S40, S60, 0-100.

    Args:
        high, low, close: price columns of equal length.
        variant: ``"model"``: full windows, NaN during warm-up, one SMA (S9 = SMA3(%K9),
            S14 = SMA3(%K14), S40 = SMA4(%K40), S60 = SMA10(%K60)); S60 is first defined at
            bar 68. ``"chart"``: values from bar 0 (pandas ``min_periods=1``), S9 = SMA3(%K9),
            S14 = SMA3(%K14), S40 = SMA4(%K40), S60 = SMA10(SMA10(%K60)).

    Returns:
        ``{"s9": ..., "s14": ..., "s40": ..., "s60": ...}``. For the reference model's 0-1
        inputs use ``pct_to_unit``.
    """
    specs = scale_specs(variant)
    h, lo, c = _ohlc("multi_stochastic", high, low, close)
    out: dict[str, F64] = {}
    for name, (n, ks, ds, full) in specs.items():
        k_line, d_line = np.empty(c.shape[0]), np.empty(c.shape[0])
        stoch_nb(h, lo, c, n, ks, ds, full, k_line, d_line)
        out[name] = k_line if full else d_line
    return out


def pct_to_unit(x: ArrayLike) -> F64:
    """A 0-100 stochastic on the 0-1 scale the reference bot's models were trained on (x / 100).

    The engine keeps every stochastic on 0-100; call this only at a model's input.
    """
    return np.asarray(x, dtype=np.float64) / 100.0


def atr(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    n: int = 14,
    method: Literal["wilder", "sma"] = "wilder",
) -> F64:
    """Average true range in price units.

    Args:
        high, low, close: price columns of equal length.
        n: averaging length in bars (>= 1).
        method: ``"wilder"`` (TA-Lib ``ATR``: first value at bar n, Wilder smoothing) or
            ``"sma"`` (the reference bot's simple mean of n true ranges, first value at bar
            n-1). See ``indicators.kernels.atr``.

    Returns:
        The ATR, NaN during warm-up; 0 on a flat market.
    """
    if method not in ("wilder", "sma"):
        raise ValueError(f"atr: method must be 'wilder' or 'sma', got {method!r}")
    h, lo, c = _ohlc("atr", high, low, close)
    length = _int("atr", "n", n, 1)
    return atr_nb(h, lo, c, length, WILDER if method == "wilder" else SMA, np.empty(c.shape[0]))


@dataclass(frozen=True, slots=True, eq=False)
class LinregResult:
    """Rolling regression of close on bar index (``linreg``); arrays aligned with the input.

    Attributes:
        slope: price units per bar.
        intercept: fitted value at each window's last bar (the current bar): the channel's mid
            line (TA-Lib ``LINEARREG``; TA-Lib's ``LINEARREG_INTERCEPT`` is
            ``intercept - slope * (n - 1)``).
        r2: coefficient of determination, 0..1; 0 for a flat window.
        resid_std: population standard deviation of the residuals (ddof 0), price units.
        n: the window length.
    """

    slope: F64
    intercept: F64
    r2: F64
    resid_std: F64
    n: int

    def channel(self, k: float = 2.0) -> tuple[F64, F64]:
        """Regression channel ``(lower, upper) = intercept ∓ k * resid_std``."""
        return self.intercept - k * self.resid_std, self.intercept + k * self.resid_std


def linreg(close: ArrayLike, n: int = 100) -> LinregResult:
    """Rolling least-squares line through the last ``n`` closes (the current one included).

    Args:
        close: closes.
        n: window length in bars (>= 2).

    Returns:
        A ``LinregResult``; NaN for the first n-1 bars. See ``indicators.kernels.linreg``.
    """
    c = _array("linreg", "close", close)
    length = _int("linreg", "n", n, 2)
    size = c.shape[0]
    slope, intercept, r2, std = (np.empty(size) for _ in range(4))
    linreg_nb(c, length, slope, intercept, r2, std)
    return LinregResult(slope, intercept, r2, std, length)


def slope_rule(close: ArrayLike, n: int = 20) -> F64:
    """The reference bot's rolling ``(last close - first close) / n`` over n bars.

    Args:
        close: closes.
        n: window length in bars (>= 2); the reference bot used 20 (threshold < -0.5).

    Returns:
        Price units per bar; NaN for the first n-1 bars. See
        ``indicators.kernels.linreg.slope_rule_nb`` (it divides by n, not n - 1, as the
        reference does).
    """
    c = _array("slope_rule", "close", close)
    length = _int("slope_rule", "n", n, 2)
    return slope_rule_nb(c, length, np.empty(c.shape[0]))
