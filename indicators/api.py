"""Plain Python API for notebooks and scripts: arrays in, float64 arrays out.

Every function returns arrays aligned with its input, NaN during warm-up, computed by the same
numba kernels the engine's bus handlers use.
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

# The reference bot's four stochastic scales: (%K n, K smoothing, D smoothing).
# Model variant: full windows, single SMA; returned line = %K smoothed (n, k_smooth).
MODEL_SCALES = {"s9": (9, 3), "s14": (14, 3), "s40": (40, 4), "s60": (60, 10)}
# Chart variant: min_periods=1; returned line = SMA(d) of (SMA(k) of raw %K).
CHART_SCALES = {"s9": (9, 1, 3), "s14": (14, 1, 3), "s40": (40, 1, 4), "s60": (60, 10, 10)}


def _arr(name: str, x: ArrayLike) -> F64:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    return a


def _same_length(**arrays: F64) -> int:
    lengths = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have equal lengths, got {lengths}")
    return next(iter(lengths.values()))


def _positive(**ints: int) -> None:
    for k, v in ints.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")


def stochastic(high: ArrayLike, low: ArrayLike, close: ArrayLike, k: int = 14,
               k_smooth: int = 3, d_smooth: int = 3) -> tuple[F64, F64]:
    """Stochastic %K (smoothed) and %D on a 0-100 scale; see ``indicators.kernels.stoch``."""
    h, lo, c = _arr("high", high), _arr("low", low), _arr("close", close)
    n = _same_length(high=h, low=lo, close=c)
    _positive(k=k, k_smooth=k_smooth, d_smooth=d_smooth)
    out_k, out_d = np.empty(n), np.empty(n)
    stoch_nb(h, lo, c, int(k), int(k_smooth), int(d_smooth), True, out_k, out_d)
    return out_k, out_d


def multi_stochastic(high: ArrayLike, low: ArrayLike, close: ArrayLike,
                     variant: Literal["model", "chart"] = "model") -> dict[str, F64]:
    """The reference bot's S9/S14/S40/S60 on a 0-100 scale (``/100`` for a 0-1 model input).

    ``model``: full windows, NaN during warm-up, single SMA (S60 = SMA10(%K60)).
    ``chart``: from bar 0 (min_periods=1); S60 = SMA10(SMA10(%K60)), the others SMA(d)(%K).
    """
    h, lo, c = _arr("high", high), _arr("low", low), _arr("close", close)
    n = _same_length(high=h, low=lo, close=c)
    out: dict[str, F64] = {}
    for name in MODEL_SCALES:
        k_out, d_out = np.empty(n), np.empty(n)
        if variant == "model":
            kn, ks = MODEL_SCALES[name]
            stoch_nb(h, lo, c, kn, ks, 1, True, k_out, d_out)
            out[name] = k_out
        elif variant == "chart":
            kn, ks, ds = CHART_SCALES[name]
            stoch_nb(h, lo, c, kn, ks, ds, False, k_out, d_out)
            out[name] = d_out
        else:
            raise ValueError(f"variant must be 'model' or 'chart', got {variant!r}")
    return out


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14,
        method: Literal["wilder", "sma"] = "wilder") -> F64:
    """Average true range in price units; see ``indicators.kernels.atr``."""
    h, lo, c = _arr("high", high), _arr("low", low), _arr("close", close)
    size = _same_length(high=h, low=lo, close=c)
    _positive(n=n)
    if method not in ("wilder", "sma"):
        raise ValueError(f"method must be 'wilder' or 'sma', got {method!r}")
    out = np.empty(size)
    atr_nb(h, lo, c, int(n), WILDER if method == "wilder" else SMA, out)
    return out


@dataclass(frozen=True, slots=True)
class LinregResult:
    """Rolling regression outputs; ``mid`` is the fitted value at each bar (channel centre)."""

    slope: F64
    intercept: F64
    r2: F64
    resid_std: F64
    n: int

    @property
    def mid(self) -> F64:
        return self.intercept + self.slope * (self.n - 1)

    def channel(self, k: float = 2.0) -> tuple[F64, F64]:
        """(lower, upper) = mid ∓ k * resid_std."""
        return self.mid - k * self.resid_std, self.mid + k * self.resid_std


def linreg(close: ArrayLike, n: int = 100) -> LinregResult:
    """Rolling least-squares line over the last n closes; see ``indicators.kernels.linreg``."""
    c = _arr("close", close)
    _positive(n=n)
    if n < 2:
        raise ValueError(f"n must be at least 2 for a regression, got {n}")
    outs = [np.empty(c.shape[0]) for _ in range(4)]
    linreg_nb(c, int(n), *outs)
    return LinregResult(*outs, n=int(n))


def slope_rule(close: ArrayLike, n: int = 20) -> F64:
    """The reference bot's ``(last close - first close) / n`` over a rolling n-bar window."""
    c = _arr("close", close)
    _positive(n=n)
    return slope_rule_nb(c, int(n), np.empty(c.shape[0]))
