"""Bus handlers that keep indicator columns in the ``FeatureStore`` (``engine.ports.FeatureHandler``).

Per closed bar (``on_bar_closed``, the live path) each handler pushes the bar into its kernel's
incremental state and writes the outputs at ``bar.seq``. Before a backtest it may instead fill
whole columns with the whole-array kernel (``precompute``); both run the same step functions, and
``tests/indicators/test_handlers.py`` proves them equal and causal.

Columns are ``{id}_{output}``: stochastic ``_k`` ``_d``; atr ``_atr``; linreg ``_slope``
``_intercept`` ``_mid`` ``_r2`` ``_std``; multi_stochastic ``_s9`` ``_s14`` ``_s40`` ``_s60``
(0-100); slope_rule ``_slope``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.bars import BarStore
from engine.events import BarClosed
from engine.features import FeatureStore
from indicators.api import CHART_SCALES, MODEL_SCALES
from indicators.kernels.atr import SMA, WILDER, AtrState, atr_nb, atr_update_nb
from indicators.kernels.linreg import LinregState, linreg_nb, linreg_update_nb, slope_rule_nb
from indicators.kernels.stoch import StochState, stoch_nb, stoch_update_nb

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Handler:
    """Shared plumbing: column creation, batch fill, per-bar write."""

    SUFFIXES: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[BaseModel]]

    def __init__(self, id: str, params: Any, bars: BarStore, features: FeatureStore) -> None:  # noqa: A002
        self.id = id
        self.p = params
        self.bars = bars
        self.features = features
        self.outputs = tuple(f"{id}_{s}" for s in self.SUFFIXES)
        for col in self.outputs:
            features.add(col)

    def _batch_outputs(self) -> list[np.ndarray]:
        n = self.bars.loaded
        return [self.features.backing(c)[:n] for c in self.outputs]

    def _write(self, seq: int, values: tuple[float, ...]) -> None:
        for col, v in zip(self.outputs, values, strict=True):
            self.features.set(col, seq, v)


class StochasticParams(BaseModel):
    model_config = _STRICT
    k: int = Field(default=14, ge=1, le=5000)
    k_smooth: int = Field(default=3, ge=1, le=500)
    d_smooth: int = Field(default=3, ge=1, le=500)


class StochasticHandler(_Handler):
    """Stochastic %K (smoothed) and %D, 0-100, full windows."""

    SUFFIXES = ("k", "d")
    Params = StochasticParams

    def __init__(self, id: str, params: StochasticParams, bars: BarStore, features: FeatureStore) -> None:  # noqa: A002
        super().__init__(id, params, bars, features)
        self.warmup_bars = params.k + params.k_smooth + params.d_smooth - 3
        self._s = StochState(params.k, params.k_smooth, params.d_smooth)

    def precompute(self) -> None:
        b, p = self.bars, self.p
        k, d = self._batch_outputs()
        stoch_nb(b.raw_column("high"), b.raw_column("low"), b.raw_column("close"), p.k,
                 p.k_smooth, p.d_smooth, True, k, d)

    def on_bar_closed(self, bar: BarClosed) -> None:
        s, p = self._s, self.p
        _, k, d = stoch_update_nb(s.hi_idx, s.hi_vals, s.hi_meta, s.lo_idx, s.lo_vals, s.lo_meta,
                                  s.k_buf, s.k_meta, s.d_buf, s.d_meta, bar.high, bar.low,
                                  bar.close, p.k, p.k_smooth, p.d_smooth, True)
        self._write(bar.seq, (k, d))


class MultiStochasticParams(BaseModel):
    model_config = _STRICT
    variant: Literal["model", "chart"] = "model"


class MultiStochasticHandler(_Handler):
    """The reference bot's S9/S14/S40/S60 (see ``indicators.api.multi_stochastic``)."""

    SUFFIXES = ("s9", "s14", "s40", "s60")
    Params = MultiStochasticParams

    def __init__(self, id: str, params: MultiStochasticParams, bars: BarStore, features: FeatureStore) -> None:  # noqa: A002
        super().__init__(id, params, bars, features)
        self._full = params.variant == "model"
        self._specs = [
            (*MODEL_SCALES[s], 1) if self._full else CHART_SCALES[s] for s in self.SUFFIXES
        ]
        self._states = [StochState(n, ks, ds) for n, ks, ds in self._specs]
        self.warmup_bars = 69 if self._full else 0

    def precompute(self) -> None:
        b = self.bars
        h, lo, c = b.raw_column("high"), b.raw_column("low"), b.raw_column("close")
        for out, (n, ks, ds) in zip(self._batch_outputs(), self._specs, strict=True):
            other = np.empty_like(out)
            if self._full:
                stoch_nb(h, lo, c, n, ks, ds, True, out, other)
            else:
                stoch_nb(h, lo, c, n, ks, ds, False, other, out)

    def on_bar_closed(self, bar: BarClosed) -> None:
        vals = []
        for s, (n, ks, ds) in zip(self._states, self._specs, strict=True):
            _, k, d = stoch_update_nb(s.hi_idx, s.hi_vals, s.hi_meta, s.lo_idx, s.lo_vals,
                                      s.lo_meta, s.k_buf, s.k_meta, s.d_buf, s.d_meta, bar.high,
                                      bar.low, bar.close, n, ks, ds, self._full)
            vals.append(k if self._full else d)
        self._write(bar.seq, tuple(vals))


class AtrParams(BaseModel):
    model_config = _STRICT
    n: int = Field(default=14, ge=1, le=5000)
    method: Literal["wilder", "sma"] = "wilder"


class AtrHandler(_Handler):
    """Average true range, price units."""

    SUFFIXES = ("atr",)
    Params = AtrParams

    def __init__(self, id: str, params: AtrParams, bars: BarStore, features: FeatureStore) -> None:  # noqa: A002
        super().__init__(id, params, bars, features)
        self._m = WILDER if params.method == "wilder" else SMA
        self.warmup_bars = params.n if params.method == "wilder" else params.n - 1
        self._s = AtrState(params.n)

    def precompute(self) -> None:
        b = self.bars
        (out,) = self._batch_outputs()
        atr_nb(b.raw_column("high"), b.raw_column("low"), b.raw_column("close"), self.p.n,
               self._m, out)

    def on_bar_closed(self, bar: BarClosed) -> None:
        s = self._s
        v = atr_update_nb(s.f, s.buf, s.meta, bar.high, bar.low, bar.close, self.p.n, self._m)
        self.features.set(self.outputs[0], bar.seq, v)


class LinregParams(BaseModel):
    model_config = _STRICT
    n: int = Field(default=100, ge=2, le=10000)


class LinregHandler(_Handler):
    """Rolling regression of close on bar index (``mid`` = fitted value at the bar)."""

    SUFFIXES = ("slope", "intercept", "mid", "r2", "std")
    Params = LinregParams

    def __init__(self, id: str, params: LinregParams, bars: BarStore, features: FeatureStore) -> None:  # noqa: A002
        super().__init__(id, params, bars, features)
        self.warmup_bars = params.n - 1
        self._s = LinregState(params.n)

    def precompute(self) -> None:
        slope, icpt, mid, r2, std = self._batch_outputs()
        linreg_nb(self.bars.raw_column("close"), self.p.n, slope, icpt, r2, std)
        np.add(icpt, slope * (self.p.n - 1), out=mid)

    def on_bar_closed(self, bar: BarClosed) -> None:
        s, n = self._s, self.p.n
        slope, icpt, r2, std = linreg_update_nb(s.buf, s.f, bar.close, n)
        self._write(bar.seq, (slope, icpt, icpt + slope * (n - 1), r2, std))


class SlopeRuleParams(BaseModel):
    model_config = _STRICT
    n: int = Field(default=20, ge=2, le=10000)


class SlopeRuleHandler(_Handler):
    """The reference bot's rolling ``(last - first close) / n``."""

    SUFFIXES = ("slope",)
    Params = SlopeRuleParams

    def __init__(self, id: str, params: SlopeRuleParams, bars: BarStore, features: FeatureStore) -> None:  # noqa: A002
        super().__init__(id, params, bars, features)
        self.warmup_bars = params.n - 1

    def precompute(self) -> None:
        (out,) = self._batch_outputs()
        slope_rule_nb(self.bars.raw_column("close"), self.p.n, out)

    def on_bar_closed(self, bar: BarClosed) -> None:
        n = self.p.n
        i = bar.seq
        v = np.nan
        if i >= n - 1:
            first = float(self.bars.window(i, n).close[0])
            v = (bar.close - first) / n
        self.features.set(self.outputs[0], i, v)


def warm_up_kernels() -> None:
    """Call every kernel once on a tiny array so numba compiles (or loads its cache) up front."""
    x = np.linspace(1.0, 2.0, 8)
    o1, o2, o3, o4 = (np.empty(8) for _ in range(4))
    stoch_nb(x + 0.1, x - 0.1, x, 3, 2, 2, True, o1, o2)
    atr_nb(x + 0.1, x - 0.1, x, 3, WILDER, o1)
    linreg_nb(x, 3, o1, o2, o3, o4)
    slope_rule_nb(x, 3, o1)
    s = StochState(3, 2, 2)
    stoch_update_nb(s.hi_idx, s.hi_vals, s.hi_meta, s.lo_idx, s.lo_vals, s.lo_meta, s.k_buf,
                    s.k_meta, s.d_buf, s.d_meta, 1.1, 0.9, 1.0, 3, 2, 2, True)
    a = AtrState(3)
    atr_update_nb(a.f, a.buf, a.meta, 1.1, 0.9, 1.0, 3, WILDER)
    lr = LinregState(3)
    linreg_update_nb(lr.buf, lr.f, 1.0, 3)
