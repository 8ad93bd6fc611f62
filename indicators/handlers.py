"""Bus handlers writing indicator columns to the ``FeatureStore`` (``engine.ports.FeatureHandler``).

Per closed bar (``on_bar_closed``, the live path and the reference) a handler pushes the bar
into its kernel's per-bar state and writes the outputs at ``bar.seq``. Before a backtest it may
instead fill whole columns with the whole-array kernel (``precompute``); both forms perform the
same arithmetic, and ``tests/indicators`` proves them equal and causal (prefix tests).

Columns are ``{id}_{output}``, every stochastic on 0-100 (``warmup_bars`` in brackets: bars
before the first value):

- ``stochastic``: ``{id}_k``, ``{id}_d`` [k + k_smooth + d_smooth - 3];
- ``multi_stochastic``: ``{id}_s9``, ``{id}_s14``, ``{id}_s40``, ``{id}_s60`` [68 model, 0 chart];
- ``atr``: ``{id}_atr``, suffixed although it is the only column, so a strategy asks for
  ``output(id, "atr")`` whatever the handler [n wilder, n - 1 sma];
- ``linreg``: ``{id}_slope``, ``{id}_intercept``, ``{id}_r2``, ``{id}_std`` [n - 1];
- ``slope_rule``: ``{id}_slope`` [n - 1].

A handler expects each bar once, in seq order (``indicators.bar_order.BarOrder``, shared with
the volume-profile and model handlers). If bars were revealed without reaching it (a handler
started on a store that already holds history, or after ``precompute``), the next
``on_bar_closed`` first replays the missed bars from the ``BarStore``, so the state never
skips a bar. A bar older than the last one it processed is refused (``DataError``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.bars import BarStore
from engine.events import BarClosed
from engine.features import FeatureStore
from indicators.api import scale_specs
from indicators.bar_order import BarOrder
from indicators.kernels.atr import SMA, WILDER, atr_nb, atr_state_nb, atr_update_nb
from indicators.kernels.linreg import (
    linreg_nb,
    linreg_slope_nb,
    linreg_state_nb,
    linreg_update_nb,
    slope_rule_nb,
    slope_rule_state_nb,
    slope_rule_update_nb,
)
from indicators.kernels.rolling import (
    extreme_push_nb,
    extreme_state_nb,
    rolling_max_nb,
    rolling_mean_nb,
    rolling_min_nb,
    sma_push_nb,
    sma_state_nb,
)
from indicators.kernels.stoch import (
    StochState,
    stoch_nb,
    stoch_raw_nb,
    stoch_state_nb,
    stoch_step_nb,
    stoch_update_nb,
)

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Handler:
    """Shared plumbing: columns, seq bookkeeping and catch-up, batch output views."""

    SUFFIXES: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[BaseModel]]
    outputs: tuple[str, ...]
    warmup_bars: int

    def __init__(self, id: str, bars: BarStore, features: FeatureStore) -> None:
        self.id = id
        self.bars = bars
        self.features = features
        self.outputs = tuple(f"{id}_{s}" for s in self.SUFFIXES)
        for col in self.outputs:
            features.add(col)
        self._order = BarOrder(id, bars)  # each bar once, in order; missed bars replayed

    # -- per-bar path --------------------------------------------------------------------------
    def on_bar_closed(self, bar: BarClosed) -> None:
        """Push ``bar`` into the per-bar state and write the outputs at ``bar.seq``.

        Raises:
            DataError: ``bar.seq`` is older than a bar already processed.
        """
        seq = bar.seq
        order = self._order
        if seq != order.next:
            order.replay(seq, self._step)  # bars revealed without reaching us, from the store
        self._step(seq, bar.high, bar.low, bar.close)
        order.next = seq + 1

    def _step(self, seq: int, h: float, lo: float, c: float) -> None:
        raise NotImplementedError

    # -- batch path ----------------------------------------------------------------------------
    def _columns(self) -> list[np.ndarray]:
        """Writable views of the output columns over every loaded bar."""
        n = self.bars.loaded
        views = []
        for col in self.outputs:
            if n:
                self.features.set(col, n - 1, np.nan)  # grows the column if the store grew
            views.append(self.features.backing(col)[:n])
        return views

    def _ohlc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = self.bars
        return b.raw_column("high"), b.raw_column("low"), b.raw_column("close")


# -- stochastic ------------------------------------------------------------------------------------
class StochasticParams(BaseModel):
    """Stochastic oscillator parameters (full windows, 0-100)."""

    model_config = _STRICT
    k: int = Field(default=14, ge=1, le=5000, description="%K look-back in bars")
    k_smooth: int = Field(default=3, ge=1, le=500, description="SMA length of %K (1 = raw)")
    d_smooth: int = Field(default=3, ge=1, le=500, description="SMA length of %D")


class StochasticHandler(_Handler):
    """Smoothed %K and %D, 0-100, full windows: ``{id}_k``, ``{id}_d``."""

    SUFFIXES = ("k", "d")
    Params = StochasticParams

    def __init__(
        self,
        id: str,
        params: StochasticParams,
        bars: BarStore,
        features: FeatureStore,
    ) -> None:
        super().__init__(id, bars, features)
        self.params = params
        self.warmup_bars = params.k + params.k_smooth + params.d_smooth - 3
        self._ints, self._floats = stoch_state_nb(params.k, params.k_smooth, params.d_smooth,
                                                  True)
        self._col_k, self._col_d = self.outputs

    def _step(self, seq: int, h: float, lo: float, c: float) -> None:
        _, k, d = stoch_step_nb(self._ints, self._floats, h, lo, c)
        self.features.set(self._col_k, seq, k)
        self.features.set(self._col_d, seq, d)

    def precompute(self) -> None:
        """Fill both columns for every loaded bar with ``stoch_nb``."""
        p = self.params
        out_k, out_d = self._columns()
        stoch_nb(*self._ohlc(), p.k, p.k_smooth, p.d_smooth, True, out_k, out_d)


# -- the reference bot's four stochastics ----------------------------------------------------------
class MultiStochasticParams(BaseModel):
    """Which of the reference bot's two definitions of S9/S14/S40/S60 (``indicators.api``)."""

    model_config = _STRICT
    variant: Literal["model", "chart"] = "model"


class MultiStochasticHandler(_Handler):
    """S9, S14, S40, S60 (0-100): ``{id}_s9`` ... ``{id}_s60``; see ``api.multi_stochastic``."""

    SUFFIXES = ("s9", "s14", "s40", "s60")
    Params = MultiStochasticParams

    def __init__(
        self,
        id: str,
        params: MultiStochasticParams,
        bars: BarStore,
        features: FeatureStore,
    ) -> None:
        super().__init__(id, bars, features)
        self.params = params
        self._full = params.variant == "model"
        specs = scale_specs(params.variant)
        self._specs = [specs[s][:3] for s in self.SUFFIXES]
        self._states = [stoch_state_nb(n, ks, ds, self._full) for n, ks, ds in self._specs]
        self._line = 1 if self._full else 2  # model: smoothed %K; chart: %D
        # model: the %K lines start at n-1 + ks-1 (S60: bar 68); chart: from bar 0
        self.warmup_bars = max(n + ks - 2 for n, ks, _ in self._specs) if self._full else 0

    def _step(self, seq: int, h: float, lo: float, c: float) -> None:
        line = self._line
        for col, (ints, floats) in zip(self.outputs, self._states, strict=True):
            self.features.set(col, seq, stoch_step_nb(ints, floats, h, lo, c)[line])

    def precompute(self) -> None:
        """Fill the four columns for every loaded bar with ``stoch_nb``."""
        h, lo, c = self._ohlc()
        for out, (n, ks, ds) in zip(self._columns(), self._specs, strict=True):
            scratch = np.empty_like(out)
            if self._full:
                stoch_nb(h, lo, c, n, ks, ds, True, out, scratch)
            else:
                stoch_nb(h, lo, c, n, ks, ds, False, scratch, out)


# -- ATR -------------------------------------------------------------------------------------------
class AtrParams(BaseModel):
    """Average true range parameters."""

    model_config = _STRICT
    n: int = Field(default=14, ge=1, le=5000, description="averaging length in bars")
    method: Literal["wilder", "sma"] = Field(
        default="wilder", description="wilder: TA-Lib ATR; sma: the reference bot's mean of TR"
    )


class AtrHandler(_Handler):
    """Average true range in price units: one column, ``{id}_atr``."""

    SUFFIXES = ("atr",)
    Params = AtrParams

    def __init__(
        self,
        id: str,
        params: AtrParams,
        bars: BarStore,
        features: FeatureStore,
    ) -> None:
        super().__init__(id, bars, features)
        self.params = params
        self._method = WILDER if params.method == "wilder" else SMA
        self.warmup_bars = params.n if params.method == "wilder" else params.n - 1
        self._state = atr_state_nb(params.n, self._method)
        self._col = self.outputs[0]

    def _step(self, seq: int, h: float, lo: float, c: float) -> None:
        self.features.set(self._col, seq, atr_update_nb(self._state, h, lo, c))

    def precompute(self) -> None:
        """Fill the column for every loaded bar with ``atr_nb``."""
        (out,) = self._columns()
        atr_nb(*self._ohlc(), self.params.n, self._method, out)


# -- rolling regression ----------------------------------------------------------------------------
class LinregParams(BaseModel):
    """Rolling regression of close on bar index."""

    model_config = _STRICT
    n: int = Field(default=100, ge=2, le=10_000, description="window length in bars")


class LinregHandler(_Handler):
    """Rolling regression: ``{id}_slope`` (price/bar), ``{id}_intercept`` (fitted value at the
    current bar, the channel mid line), ``{id}_r2`` and ``{id}_std`` (residual std, ddof 0)."""

    SUFFIXES = ("slope", "intercept", "r2", "std")
    Params = LinregParams

    def __init__(
        self,
        id: str,
        params: LinregParams,
        bars: BarStore,
        features: FeatureStore,
    ) -> None:
        super().__init__(id, bars, features)
        self.params = params
        self.warmup_bars = params.n - 1
        self._state = linreg_state_nb(params.n)

    def _step(self, seq: int, h: float, lo: float, c: float) -> None:
        values = linreg_update_nb(self._state, c)
        for col, v in zip(self.outputs, values, strict=True):
            self.features.set(col, seq, v)

    def precompute(self) -> None:
        """Fill the four columns for every loaded bar with ``linreg_nb``."""
        slope, intercept, r2, std = self._columns()
        linreg_nb(self.bars.raw_column("close"), self.params.n, slope, intercept, r2, std)


# -- the reference bot's slope rule ----------------------------------------------------------------
class SlopeRuleParams(BaseModel):
    """The reference bot's ``(last close - first close) / n`` over n bars."""

    model_config = _STRICT
    n: int = Field(default=20, ge=2, le=10_000, description="window length in bars")


class SlopeRuleHandler(_Handler):
    """The reference bot's 20-bar slope rule, price units per bar: ``{id}_slope``."""

    SUFFIXES = ("slope",)
    Params = SlopeRuleParams

    def __init__(
        self,
        id: str,
        params: SlopeRuleParams,
        bars: BarStore,
        features: FeatureStore,
    ) -> None:
        super().__init__(id, bars, features)
        self.params = params
        self.warmup_bars = params.n - 1
        self._state = slope_rule_state_nb(params.n)
        self._col = self.outputs[0]

    def _step(self, seq: int, h: float, lo: float, c: float) -> None:
        self.features.set(self._col, seq, slope_rule_update_nb(self._state, c))

    def precompute(self) -> None:
        """Fill the column for every loaded bar with ``slope_rule_nb``."""
        (out,) = self._columns()
        slope_rule_nb(self.bars.raw_column("close"), self.params.n, out)


def warm_up_kernels() -> None:
    """Call every kernel once on a tiny array, so numba compiles them (or loads its cache).

    Call it at start-up, before the run loop, so the first bar does not pay for compilation.
    Both writable and read-only inputs are used: ``Bars`` columns are read-only, and numba
    compiles a separate version for them.
    """
    x = np.linspace(100.0, 101.0, 8)
    for inputs in (x, _read_only(x)):
        h, lo, c = inputs + 0.5, inputs - 0.5, inputs
        if not inputs.flags.writeable:
            h, lo = _read_only(h), _read_only(lo)
        o1, o2, o3, o4 = (np.empty(8) for _ in range(4))
        stoch_nb(h, lo, c, 3, 2, 2, True, o1, o2)
        stoch_raw_nb(h, lo, c, 3, False, o1)
        atr_nb(h, lo, c, 3, WILDER, o1)
        linreg_nb(c, 3, o1, o2, o3, o4)
        linreg_slope_nb(c, 3, o1)
        slope_rule_nb(c, 3, o1)
        rolling_max_nb(c, 3, 3, o1)
        rolling_min_nb(c, 3, 3, o1)
        rolling_mean_nb(c, 3, 3, o1)
    st = StochState(3, 2, 2)
    stoch_step_nb(st.ints, st.floats, 1.5, 0.5, 1.0)
    stoch_update_nb(st.hi_idx, st.hi_vals, st.hi_meta, st.lo_idx, st.lo_vals, st.lo_meta,
                    st.k_buf, st.k_meta, st.d_buf, st.d_meta, 1.5, 0.5, 1.0, 3, 2, 2, True)
    atr_update_nb(atr_state_nb(3, WILDER), 1.5, 0.5, 1.0)
    linreg_update_nb(linreg_state_nb(3), 1.0)
    slope_rule_update_nb(slope_rule_state_nb(3), 1.0)
    idx, vals, meta = extreme_state_nb(3)
    extreme_push_nb(idx, vals, meta, 1.0, 3, True)
    buf, sma_meta = sma_state_nb(3)
    sma_push_nb(buf, sma_meta, 1.0, 3, 3)


def _read_only(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.flags.writeable = False
    return b
