"""Training labels: HOLD (0), BUY (1), SELL (2) for every bar, from future bars (never features).

**Setup** (the reference bot's "quad alignment", :class:`QuadSetup`), read at the last bar the
sample's features read (``i - 1`` in the reference layout, ``i`` with
``FeatureSpec.include_current_bar``), on the model-variant stochastics as fractions (0-1):

- *aligned low*: S9, S14, S40, S60 all ``< low_frac`` (0.25) and their spread (max - min)
  ``< max_spread_frac`` (0.15); *aligned high*: all ``> high_frac`` (0.75), same spread;
- the least-squares line of the last ``regression_bars`` (100) closes, ``[i - 100, i)``: slope
  and R² (``indicators.api.linreg``).

BUY setup: aligned low, slope < 0, R² > ``min_r2`` (0.35). SELL setup: aligned high, slope > 0,
R² > 0.35 (checked only if BUY's is not met, as the reference bot did).

**Outcome**, from the entry at the sample bar's close ``close[i]``:

- :class:`PointReturnLabel` (the reference bot's): ``close[i + 32] / close[i] - 1`` above
  ``+min_return_frac`` (1.5 %) for BUY, below ``-1.5 %`` for SELL. It ignores the path: a trade
  stopped out at bar 5 still counts as a win if the price is back up at bar 32;
- :class:`BarrierLabel` (the trade the strategies take): a long from ``close[i]`` with a stop at
  ``close[i] - stop_atr_mult * ATR[i]`` (4.5 x the reference bot's SMA-14 ATR) and a target at
  ``close[i] * (1 + target_frac)`` wins if a later bar within ``horizon_bars`` reaches the target
  before any bar reaches the stop. A bar that touches both counts as a loss (the engine's default
  ``stop_first`` intrabar policy). SELL is the mirror image. With ``setup: null`` every bar is a
  candidate (a plain triple-barrier label); when both sides would win, the one whose target is
  reached first is the label (BUY on a tie, as the rule order above).

Bars whose outcome window runs past the data are :data:`UNKNOWN` (-1) and never used.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from engine.bars import Bars
from indicators.api import atr, linreg, multi_stochastic, pct_to_unit
from models.features import FeatureSpec, spec_digest

I8 = NDArray[np.int8]
F64 = NDArray[np.float64]

UNKNOWN = -1
HOLD, BUY, SELL = 0, 1, 2
LABEL_VERSION = 1
_STRICT = ConfigDict(extra="forbid", frozen=True)


class QuadSetup(BaseModel):
    """The reference bot's quad-alignment setup (thresholds are 0-1 fractions of the range)."""

    model_config = _STRICT
    low_frac: float = Field(default=0.25, gt=0, lt=1)
    high_frac: float = Field(default=0.75, gt=0, lt=1)
    max_spread_frac: float = Field(default=0.15, gt=0, le=1)
    regression_bars: int = Field(default=100, ge=3, le=5000)
    min_r2: float = Field(default=0.35, ge=0, lt=1)


class PointReturnLabel(BaseModel):
    """BUY/SELL when the setup holds and the return ``horizon_bars`` later clears a threshold."""

    model_config = _STRICT
    kind: Literal["point_return"] = "point_return"
    setup: QuadSetup = QuadSetup()
    horizon_bars: int = Field(default=32, ge=1, le=5000)
    min_return_frac: float = Field(default=0.015, gt=0, lt=1)


class BarrierLabel(BaseModel):
    """BUY/SELL when the setup holds and the ATR-stopped trade reaches its target first."""

    model_config = _STRICT
    kind: Literal["barrier"] = "barrier"
    setup: QuadSetup | None = QuadSetup()
    horizon_bars: int = Field(default=32, ge=1, le=5000)
    target_frac: float = Field(default=0.015, gt=0, lt=1)
    stop_atr_mult: float = Field(default=4.5, gt=0, le=100)
    atr_bars: int = Field(default=14, ge=1, le=1000)
    atr_method: Literal["sma", "wilder"] = "sma"


LabelSpec = Annotated[PointReturnLabel | BarrierLabel, Field(discriminator="kind")]


def label_digest(spec: PointReturnLabel | BarrierLabel, features: FeatureSpec) -> str:
    """Hash of the label rule (the anchor comes from the feature layout, so it is included)."""
    fields = {"label": spec.model_dump(mode="json"), "shift": features.shift}
    return spec_digest(fields, LABEL_VERSION)


def setup_masks(bars: Bars, setup: QuadSetup, shift: int) -> tuple[NDArray[np.bool_],
                                                                     NDArray[np.bool_]]:
    """(BUY setup, SELL setup) per sample bar, read at bar ``i - shift``.

    Args:
        bars: the series.
        setup: thresholds.
        shift: 1 for the reference layout (indicators at ``i - 1``), 0 to read them at ``i``.
    """
    stoch = multi_stochastic(bars.high, bars.low, bars.close, variant="model")
    s = pct_to_unit(np.vstack([stoch[k] for k in ("s9", "s14", "s40", "s60")]))
    reg = linreg(bars.close, setup.regression_bars)
    with np.errstate(invalid="ignore"):
        hi, lo = s.max(axis=0), s.min(axis=0)
        tight = (hi - lo) < setup.max_spread_frac
        low = (hi < setup.low_frac) & tight  # all four below <=> the largest is below
        high = (lo > setup.high_frac) & tight
        buy = low & (reg.slope < 0) & (reg.r2 > setup.min_r2)
        sell = high & (reg.slope > 0) & (reg.r2 > setup.min_r2) & ~buy
    # NaN comparisons are False, so warm-up bars carry no setup.
    return _shift(buy, shift), _shift(sell, shift)


def _shift(x: NDArray[np.bool_], k: int) -> NDArray[np.bool_]:
    """``out[i] = x[i - k]`` (False where ``i < k``)."""
    if k == 0:
        return x
    out = np.zeros_like(x)
    out[k:] = x[:-k]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def barrier_outcome_nb(high, low, close, stop_dist, target_frac, horizon, out_long, out_short):  # type: ignore[no-untyped-def]
    """Did a trade entered at ``close[i]`` reach its target before its stop within ``horizon``?

    Writes into ``out_long`` / ``out_short``: the number of bars to the target (1..horizon) when
    the target comes first; 0 when the stop comes first, both are on one bar, or neither is
    reached in time; -1 when the horizon runs past the data or there is no stop distance (NaN
    ATR).
    Long: stop ``close[i] - stop_dist[i]``, target ``close[i] * (1 + target_frac)``; short mirrored.
    """
    n = close.shape[0]
    for i in range(n):
        if i + horizon >= n or not stop_dist[i] > 0.0:
            out_long[i] = -1
            out_short[i] = -1
            continue
        entry = close[i]
        l_stop = entry - stop_dist[i]
        l_tgt = entry * (1.0 + target_frac)
        s_stop = entry + stop_dist[i]
        s_tgt = entry * (1.0 - target_frac)
        long_res = 0
        short_res = 0
        long_done = False
        short_done = False
        for j in range(i + 1, i + horizon + 1):
            if not long_done:
                if low[j] <= l_stop:
                    long_done = True  # stop first, also when the target is on the same bar
                elif high[j] >= l_tgt:
                    long_res = j - i
                    long_done = True
            if not short_done:
                if high[j] >= s_stop:
                    short_done = True
                elif low[j] <= s_tgt:
                    short_res = j - i
                    short_done = True
            if long_done and short_done:
                break
        out_long[i] = long_res
        out_short[i] = short_res


def make_labels(bars: Bars, spec: PointReturnLabel | BarrierLabel, features: FeatureSpec) -> I8:
    """Label every bar of ``bars``: HOLD 0, BUY 1, SELL 2, or UNKNOWN -1 (outcome past the data).

    Args:
        bars: the series.
        spec: the label rule.
        features: the feature layout (its anchor decides where the setup is read).
    """
    n = len(bars)
    h = spec.horizon_bars
    close = np.ascontiguousarray(bars.close, dtype=np.float64)
    labels = np.zeros(n, dtype=np.int8)
    if spec.setup is not None:
        buy_setup, sell_setup = setup_masks(bars, spec.setup, features.shift)
    else:
        buy_setup = sell_setup = np.ones(n, dtype=bool)
    if isinstance(spec, PointReturnLabel):
        fut = np.full(n, np.nan)
        fut[: n - h] = close[h:] / close[: n - h] - 1.0
        with np.errstate(invalid="ignore"):
            labels[buy_setup & (fut > spec.min_return_frac)] = BUY
            labels[sell_setup & (fut < -spec.min_return_frac) & (labels == HOLD)] = SELL
    else:
        a = atr(bars.high, bars.low, close, spec.atr_bars, spec.atr_method)
        win_long = np.empty(n, dtype=np.int64)
        win_short = np.empty(n, dtype=np.int64)
        barrier_outcome_nb(np.ascontiguousarray(bars.high, dtype=np.float64),
                           np.ascontiguousarray(bars.low, dtype=np.float64), close,
                           spec.stop_atr_mult * a, spec.target_frac, h, win_long, win_short)
        long_ok = buy_setup & (win_long > 0)
        short_ok = sell_setup & (win_short > 0)
        both = long_ok & short_ok
        labels[long_ok] = BUY
        labels[short_ok] = SELL
        labels[both & (win_long <= win_short)] = BUY
        labels[win_long == -1] = UNKNOWN  # ATR warm-up: no trade to judge
    labels[max(n - h, 0):] = UNKNOWN
    return labels
