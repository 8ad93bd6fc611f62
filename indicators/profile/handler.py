"""The volume-profile bus handler (``VolumeProfileHandler``, entry point ``volume_profile``):
per-bar profile summary into the feature store; full profiles and trade setups on request."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.bars import BarStore
from engine.errors import DataError
from engine.events import BarClosed, Side
from engine.features import FeatureStore
from indicators.bar_order import BarOrder
from indicators.gmm import GmmCache
from indicators.kernels.volume_profile import (
    CLOSE,
    N_OUT,
    RANGE,
    SUMMARY,
    rolling_profile_nb,
    rolling_state_nb,
)
from indicators.profile.columns import Mode, mode_code
from indicators.profile.targets import TradeSetupLevels, target_candidates, trade_setup
from indicators.profile.window import Settings, WindowProfile, profile_of

# settings that moved: the stop of a trade is the signal rule's, one setting for one trade setup
_MOVED = {
    "stop_atr_mult": "the stop is the signal rule's: set signals.params.stop_atr_mult",
    "stop_fallback_pct": "the stop is the signal rule's (signals.params.stop_atr_mult; no ATR "
                         "means no signal, so there is no fallback stop)",
}


class VolumeProfileParams(BaseModel):
    """Volume-profile handler parameters (defaults: the reference bot's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lookback: int = Field(default=200, ge=1, le=100_000, description="bars per window")
    bins: int = Field(default=80, ge=1, le=10_000, description="price bins per profile")
    mode: Mode = Field(default="close", description="close: volume at the close; range: spread "
                       "evenly over low..high. Used for the columns AND every trade setup")
    include_current: bool = Field(default=False, description="False: window [i-lookback, i) "
                                  "(the reference bot); True: (i-lookback, i]")
    value_area: float = Field(default=0.70, gt=0, le=1, description="value-area fraction")
    hvn_pct: float = Field(default=75.0, ge=0, le=100,
                           description="HVN: percentile of the non-empty bins")
    prominence: float = Field(default=0.05, ge=0, description="peak prominence / largest bin")
    distance: int = Field(default=3, ge=1, description="minimum bins between peaks")
    target_min_pct: float = Field(default=0.5, ge=0, description="targets at least this % away")
    target_fallback_pct: float = Field(default=4.0, gt=0, description="fallback target in %")
    gmm_cache_size: int = Field(default=256, ge=1, description="windows whose GMM is kept")

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, why in _MOVED.items():
                if key in data:
                    raise ValueError(f"{key} is not a volume-profile setting: {why}")
        return data


_COLUMNS = ("high", "low", "close", "volume")
_PROFILE_CACHE = 64


class VolumeProfileHandler:
    """Per-bar profile summary into the feature store; full profiles and setups on request.

    Columns ``{id}_{name}`` for every name in ``SUMMARY``: ``poc``, ``poc_volume``, ``vah``,
    ``val``, ``n_hvn``, ``hvn_below``, ``hvn_above``, ``n_peaks``, ``peak_below``,
    ``peak_above`` (nearest levels relative to the bar's close). NaN for the first
    ``warmup_bars`` bars.

    On request, never per bar: ``profile_at(seq)`` (the window bar ``seq`` sees, recomputed
    from the ``BarStore``, which refuses bars not yet revealed), ``window_profile(start,
    stop)``, ``target_candidates(seq, side, entry)`` and ``trade_setup(seq, side, entry, atr,
    stop_atr_mult=...)`` (the stop multiple is the caller's: the signal rule's setting); their
    GMM fits are cached per window (``gmm``, a ``GmmCache``).

    A bar must reach the handler once, in seq order (``indicators.bar_order.BarOrder``); missed
    bars (a handler started on a store that already holds history) are computed from the store
    on the next call.
    """

    Params: ClassVar[type[BaseModel]] = VolumeProfileParams

    def __init__(self, id: str, params: VolumeProfileParams, bars: BarStore,
                 features: FeatureStore) -> None:
        self.id = id
        self.params = params
        self.bars = bars
        self.features = features
        self.outputs = tuple(f"{id}_{name}" for name in SUMMARY)
        for col in self.outputs:
            features.add(col)
        self.warmup_bars = params.lookback - (1 if params.include_current else 0)
        self._mode = mode_code(params.mode)
        self._settings = Settings(params.bins, params.mode, params.value_area, params.hvn_pct,
                                   params.prominence, params.distance)
        self._vols, self._state = rolling_state_nb(params.bins)
        self._out1 = np.empty((1, N_OUT))
        self._order = BarOrder(id, bars)  # each bar once, in order; missed bars caught up
        self.gmm = GmmCache(params.gmm_cache_size)
        # recent window profiles: the exit strategies of one run ask for the same windows (a
        # trade opened on a shared signal ticks on the same bars in every strategy)
        self._profiles: OrderedDict[tuple[int, int], WindowProfile] = OrderedDict()

    # -- per bar -------------------------------------------------------------------------------
    def _run(self, cols: Sequence[np.ndarray], first: int, stop: int, out: np.ndarray) -> None:
        p = self.params
        rolling_profile_nb(cols[0], cols[1], cols[2], cols[3], first, stop, p.lookback, p.bins,
                           self._mode, p.include_current, p.value_area, p.hvn_pct,
                           p.prominence, p.distance, self._vols, self._state, out)

    def on_bar_closed(self, bar: BarClosed) -> None:
        """Update the profile with bar ``bar.seq`` and write its summary.

        Raises:
            DataError: the bar is older than one already processed.
        """
        seq = bar.seq
        first = self._order.first(seq)  # seq, or an earlier bar that never reached us
        cols = [self.bars.column(name) for name in _COLUMNS]  # revealed bars only
        if cols[2].shape[0] <= seq:
            raise DataError(f"feature {self.id!r}: bar seq {seq} is not in the bar store "
                            f"({cols[2].shape[0]} bars revealed); append the bar first")
        out = self._out1 if first == seq else np.empty((seq - first + 1, N_OUT))
        self._run(cols, first, seq + 1, out)
        for r in range(out.shape[0]):
            for col, value in zip(self.outputs, out[r], strict=True):
                self.features.set(col, first + r, float(value))
        self._order.done(seq)

    def precompute(self) -> None:
        """Fill every column for all loaded bars with one ``rolling_profile_nb`` pass (the
        same arithmetic as bar by bar; ``tests/indicators`` proves them equal)."""
        n = self.bars.loaded
        if n == 0:
            return
        cols = [self.bars.raw_column(name) for name in _COLUMNS]
        self._vols, self._state = rolling_state_nb(self.params.bins)
        out = np.empty((n, N_OUT))
        self._run(cols, 0, n, out)
        for k, col in enumerate(self.outputs):
            self.features.set(col, n - 1, math.nan)  # grows the column if the store grew
            self.features.backing(col)[:n] = out[:, k]
        self._order.next = n

    @property
    def rebuilds(self) -> int:
        """Bars on which the grid moved and the profile was rebuilt from its window."""
        return int(self._state[4])

    # -- on request ----------------------------------------------------------------------------
    def window_at(self, seq: int) -> tuple[int, int]:
        """The bars ``[start, stop)`` of bar ``seq``'s profile (clipped at bar 0)."""
        stop = seq + 1 if self.params.include_current else seq
        return max(0, stop - self.params.lookback), stop

    def window_profile(self, start: int, stop: int) -> WindowProfile:
        """The full profile of bars ``[start, stop)``, in this handler's mode and settings.

        Raises:
            ValueError: the window is empty.
            LookaheadError: ``stop - 1`` is not revealed yet.
        """
        if stop - start < 1 or start < 0:
            raise ValueError(f"feature {self.id!r}: profile window [{start}, {stop}) is empty "
                             "or starts before bar 0")
        key = (start, stop)
        hit = self._profiles.get(key)
        if hit is not None and stop <= self.bars.count:  # a closed bar never changes
            self._profiles.move_to_end(key)
            return hit
        w = self.bars.window(stop - 1, stop - start)  # refuses bars not revealed yet
        prof = profile_of(w.high, w.low, w.close, w.volume, self._settings, w.start_seq, self.gmm)
        self._profiles[key] = prof
        if len(self._profiles) > _PROFILE_CACHE:
            self._profiles.popitem(last=False)
        return prof

    def profile_at(self, seq: int) -> WindowProfile:
        """The profile bar ``seq``'s columns summarise (fewer bars during warm-up)."""
        return self.window_profile(*self.window_at(seq))

    def target_candidates(self, seq: int, side: Side, entry: float) -> tuple[float, ...]:
        """Target prices for a signal at ``seq`` (``ranked_targets``); empty before bar 1."""
        start, stop = self.window_at(seq)
        if stop - start < 1:
            return ()
        p = self.params
        return target_candidates(self.window_profile(start, stop), side, entry,
                                 min_target_pct=p.target_min_pct,
                                 fallback_target_pct=p.target_fallback_pct)

    def trade_setup(self, seq: int, side: Side, entry: float, atr: float, *,
                    stop_atr_mult: float) -> TradeSetupLevels:
        """The trade setup for a signal at ``seq`` (``trade_setup`` on ``profile_at(seq)``):
        targets from this handler's settings, the stop ``stop_atr_mult`` ATRs away (pass the
        signal rule's ``stop_atr_mult``, which decides the stop of every trade)."""
        p = self.params
        return trade_setup(self.profile_at(seq), side, entry, atr, seq=seq,
                           stop_atr_mult=stop_atr_mult, min_target_pct=p.target_min_pct,
                           fallback_target_pct=p.target_fallback_pct)



def warm_up_kernels() -> None:
    """Compile (or load from numba's cache) the profile kernels for writable and read-only
    inputs; call it at start-up so the first bar does not pay for compilation."""
    x = np.linspace(100.0, 101.0, 8)
    for ro in (False, True):
        cols = [x + 0.5, x - 0.5, x.copy(), np.ones(8)]
        for c in cols:
            c.flags.writeable = not ro
        for mode in (CLOSE, RANGE):
            vols, state = rolling_state_nb(4)
            rolling_profile_nb(*cols, 0, 8, 3, 4, mode, False, 0.7, 75.0, 0.05, 3, vols, state,
                               np.empty((8, N_OUT)))
        for name in ("close", "range"):
            profile_of(*cols, Settings(4, name, 0.7, 75.0, 0.05, 3), 0, None)
