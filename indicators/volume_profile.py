"""Volume profile: array API, one window's full profile, the trade setup, and the bus handler.

The algorithm (window, grid, the two ways to place volume, POC, value area, HVNs, peaks,
degenerate windows, the rolling update) is written once, in
``indicators.kernels.volume_profile``; the Gaussian-mixture nodes in ``indicators.gmm``; what
the levels mean for a trader in ``docs/volume-profile.md``.

```python
from indicators.volume_profile import volume_profile, window_profile, trade_setup
cols = volume_profile(high, low, close, volume, lookback=200, bins=80, mode="close")
cols.poc, cols.vah, cols.val          # per-bar arrays, NaN during warm-up
p = window_profile(high, low, close, volume, start=i - 200, stop=i, mode="range")
p.prices, p.volumes, p.poc, p.vah, p.val, p.hvns, p.peaks     # on the spot
p.lvns(), p.two_peak_means(), p.curve()                       # GMM, fitted on first request
setup = trade_setup(p, "long", entry=close[i], atr=atr14[i])  # stop, targets, arrays
```

**One trade setup everywhere.** The reference bot built backtest targets from a close-only
profile and alert/UI targets from a range-spread one, so its backtests and alerts disagreed.
Here the handler's ``mode`` decides both its per-bar columns and every setup it gives (entry
rules, exit plugins, the UI sidebar, alerts all ask the handler), through ``trade_setup``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

from engine.bars import BarStore
from engine.errors import DataError
from engine.events import BarClosed, Side
from engine.features import FeatureStore
from indicators.gmm import GmmCache, GmmNodes, fit_nodes
from indicators.gmm import two_peak_means as gmm_two_peak_means
from indicators.kernels.volume_profile import (
    CLOSE,
    N_OUT,
    RANGE,
    SUMMARY,
    rolling_profile_nb,
    rolling_state_nb,
    window_nb,
)

F64 = NDArray[np.float64]
Mode = Literal["close", "range"]
_MODES: dict[str, int] = {"close": CLOSE, "range": RANGE}


# -- validation ------------------------------------------------------------------------------------
def _mode_code(mode: str) -> int:
    try:
        return _MODES[mode]
    except KeyError:
        raise ValueError(
            f"volume profile mode must be 'close' (each bar's volume at its close) or 'range' "
            f"(spread over its low..high), got {mode!r}") from None


def _as_columns(high: ArrayLike, low: ArrayLike, close: ArrayLike,
                volume: ArrayLike) -> tuple[F64, F64, F64, F64]:
    cols = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (high, low, close, volume))
    shapes = [c.shape for c in cols]
    if cols[0].ndim != 1 or len(set(shapes)) != 1:
        raise ValueError(f"volume profile: high, low, close, volume must be 1-D arrays of one "
                         f"length, got shapes {shapes}")
    for name, c in zip(("high", "low", "close", "volume"), cols, strict=True):
        bad = np.flatnonzero(~np.isfinite(c))
        if bad.size:
            raise ValueError(f"volume profile: {name} is not finite at index {int(bad[0])} "
                             f"({bad.size} values); clean the data (engine.datafile rejects "
                             "such bars)")
    neg = np.flatnonzero(cols[3] < 0)
    if neg.size:
        raise ValueError(f"volume profile: negative volume at index {int(neg[0])}")
    return cols  # type: ignore[return-value]


def _check(lookback: int, bins: int, value_area: float, hvn_pct: float, prominence: float,
           distance: int) -> None:
    problems = []
    if lookback < 1:
        problems.append(f"lookback={lookback} (bars per window, >= 1)")
    if bins < 1:
        problems.append(f"bins={bins} (>= 1)")
    if not 0 < value_area <= 1:
        problems.append(f"value_area={value_area} (a fraction in (0, 1], e.g. 0.70)")
    if not 0 <= hvn_pct <= 100:
        problems.append(f"hvn_pct={hvn_pct} (a percentile, 0-100)")
    if not prominence >= 0:
        problems.append(f"prominence={prominence} (fraction of the largest bin, >= 0)")
    if distance < 1:
        problems.append(f"distance={distance} (bins, >= 1)")
    if problems:
        raise ValueError("volume profile: invalid " + "; ".join(problems))


# -- per-bar arrays --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ProfileColumns:
    """Per-bar profile summary, one float64 array per level, NaN during warm-up.

    Attributes:
        poc, poc_volume: price and volume of the point of control.
        vah, val: value-area high and low (bin centres).
        n_hvn: number of HVN bins; hvn_below / hvn_above: nearest HVN at or below / above the
            bar's close (NaN if none).
        n_peaks: number of volume peaks; peak_below / peak_above: nearest at or below / above
            the close.
        rebuilds, updates: bars on which the grid moved (profile rebuilt from the window) and
            bars updated one bar out, one bar in.
    """

    poc: F64
    poc_volume: F64
    vah: F64
    val: F64
    n_hvn: F64
    hvn_below: F64
    hvn_above: F64
    n_peaks: F64
    peak_below: F64
    peak_above: F64
    rebuilds: int
    updates: int

    def as_dict(self) -> dict[str, F64]:
        """The level arrays by ``SUMMARY`` name."""
        return {name: getattr(self, name) for name in SUMMARY}


def volume_profile(high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike,
                   lookback: int = 200, bins: int = 80, mode: Mode = "close",
                   value_area: float = 0.70, *, include_current: bool = False,
                   hvn_pct: float = 75.0, prominence: float = 0.05,
                   distance: int = 3) -> ProfileColumns:
    """Rolling volume-profile levels for every bar.

    Bar ``i`` reads the profile of the ``lookback`` bars before it, ``[i - lookback, i)``
    (``include_current=True``: ``(i - lookback, i]``), and its own close for the nearest
    levels. Causal: a bar's values never change when later bars are added.

    Args:
        high, low, close, volume: bar columns (finite; volume >= 0).
        lookback: bars per window.
        bins: equal price bins over the window's lowest low .. highest high.
        mode: ``"close"``: each bar's volume in its close's bin; ``"range"``: spread evenly over
            the bins its low..high covers.
        value_area: fraction of the volume in the value area (0-1].
        include_current: include bar ``i`` in its own window.
        hvn_pct: HVN threshold, percentile of the non-empty bins (0-100).
        prominence: minimum peak prominence, fraction of the largest bin.
        distance: minimum spacing between peaks, in bins.

    Returns:
        ``ProfileColumns``; the first ``lookback`` bars (``lookback - 1`` with
        ``include_current``) are NaN.

    Raises:
        ValueError: bad shapes, non-finite prices, negative volume or parameters out of range.
    """
    h, lo, c, v = _as_columns(high, low, close, volume)
    _check(lookback, bins, value_area, hvn_pct, prominence, distance)
    n = c.shape[0]
    out = np.empty((n, N_OUT))
    vols, state = rolling_state_nb(int(bins))
    rolling_profile_nb(h, lo, c, v, 0, n, int(lookback), int(bins), _mode_code(mode),
                       bool(include_current), float(value_area), float(hvn_pct),
                       float(prominence), int(distance), vols, state, out)
    arrays = {name: np.ascontiguousarray(out[:, k]) for k, name in enumerate(SUMMARY)}
    return ProfileColumns(**arrays, rebuilds=int(state[4]), updates=int(state[5]))


def profile_columns(high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike, *,
                    mode: Mode = "close", lookback: int = 200,
                    bins: int = 80) -> dict[str, F64]:
    """The ``poc``, ``vah`` and ``val`` columns for ``tradebot indicators`` (see
    ``volume_profile``; defaults: the reference bot's 200 bars before each bar, 80 bins)."""
    p = volume_profile(high, low, close, volume, lookback, bins, mode)
    return {"poc": p.poc, "vah": p.vah, "val": p.val}


# -- one window ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class WindowProfile:
    """One window's full profile. GMM nodes are fitted on the first request and cached.

    Attributes:
        start, stop: the bars ``[start, stop)`` (absolute seqs when made by the handler).
        mode: ``"close"`` or ``"range"``.
        low, high: the grid's ends (the window's lowest low and highest high).
        prices: bin centres, ascending; volumes: volume per bin.
        poc, poc_volume, vah, val: as in ``ProfileColumns`` (NaN / 0 for zero volume).
        hvn_threshold: volume at or above which a non-empty bin is an HVN (NaN if empty).
        hvns: HVN prices, ascending. peaks, peak_bins: volume peaks' prices and bin indices.
    """

    start: int
    stop: int
    mode: str
    low: float
    high: float
    prices: F64
    volumes: F64
    poc: float
    poc_volume: float
    vah: float
    val: float
    hvn_threshold: float
    hvns: tuple[float, ...]
    peaks: tuple[float, ...]
    peak_bins: tuple[int, ...]
    _cache: GmmCache | None = field(default=None, repr=False)
    _memo: dict[str, GmmNodes] = field(default_factory=dict, repr=False)

    @property
    def bins(self) -> int:
        return int(self.prices.shape[0])

    @property
    def total_volume(self) -> float:
        return float(self.volumes.sum())

    def nodes(self) -> GmmNodes:
        """The Gaussian-mixture nodes (``indicators.gmm``), fitted once per window."""
        if self._cache is not None:
            key = (self.start, self.stop, self.mode, self.bins)
            return self._cache.get(key, self.prices, self.volumes)
        if "nodes" not in self._memo:
            self._memo["nodes"] = fit_nodes(self.prices, self.volumes)
        return self._memo["nodes"]

    def lvns(self) -> tuple[float, ...]:
        """Low-volume nodes (GMM density minima where the profile is thin), ascending."""
        return self.nodes().lvns

    def two_peak_means(self) -> tuple[float, ...]:
        """The two-component GMM means, ascending (the reference bot's targets); fits only
        the two-component mixture unless the nodes are already known."""
        if "nodes" in self._memo:
            return self._memo["nodes"].two_peak_means
        if self._cache is not None:
            key = (self.start, self.stop, self.mode, self.bins)
            return self._cache.two_peak_means(key, self.prices, self.volumes)
        return gmm_two_peak_means(self.prices, self.volumes)

    def curve(self) -> F64:
        """The two-component GMM density on ``prices``, scaled to the largest bin (UI)."""
        return self.nodes().curve


@dataclass(frozen=True)
class _Settings:
    bins: int
    mode: Mode
    value_area: float
    hvn_pct: float
    prominence: float
    distance: int


def _window(h: F64, lo: F64, c: F64, v: F64, s: _Settings, offset: int,
            cache: GmmCache | None) -> WindowProfile:
    """Profile of all of the given bars, labelled ``[offset, offset + len)``."""
    vols, prices, out, thr, peak_bins, glo, ghi = window_nb(
        h, lo, c, v, s.bins, _MODES[s.mode], s.value_area, s.hvn_pct, s.prominence, s.distance)
    hvn_mask = (vols > 0) & (vols >= thr)
    return WindowProfile(
        start=offset, stop=offset + c.shape[0], mode=s.mode, low=float(glo), high=float(ghi),
        prices=prices, volumes=vols, poc=float(out[0]), poc_volume=float(out[1]),
        vah=float(out[2]), val=float(out[3]), hvn_threshold=float(thr),
        hvns=tuple(prices[hvn_mask].tolist()),
        peaks=tuple(prices[peak_bins].tolist()),
        peak_bins=tuple(peak_bins.tolist()), _cache=cache)


def window_profile(high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike,
                   start: int, stop: int, *, bins: int = 80, mode: Mode = "close",
                   value_area: float = 0.70, hvn_pct: float = 75.0, prominence: float = 0.05,
                   distance: int = 3) -> WindowProfile:
    """The full profile of bars ``[start, stop)`` (for bar ``i`` as the per-bar columns see
    it: ``start=i - lookback, stop=i``). Same kernels and parameters as ``volume_profile``.

    Raises:
        ValueError: the window is empty or outside the arrays, or as ``volume_profile``.
    """
    h, lo, c, v = _as_columns(high, low, close, volume)
    _check(1, bins, value_area, hvn_pct, prominence, distance)
    if not 0 <= start < stop <= c.shape[0]:
        raise ValueError(f"window_profile: window [{start}, {stop}) is empty or not inside the "
                         f"{c.shape[0]} bars given")
    _mode_code(mode)
    s = _Settings(int(bins), mode, float(value_area), float(hvn_pct), float(prominence),
                  int(distance))
    return _window(h[start:stop], lo[start:stop], c[start:stop], v[start:stop], s, start, None)


# -- trade setup -----------------------------------------------------------------------------------
TargetSource = Literal["gmm_peak", "volume_peak", "poc", "vah", "val", "fallback"]


@dataclass(frozen=True, eq=False)
class TradeSetupLevels:
    """A signal's trade setup: stop, target candidates and the profile behind them.

    Attributes:
        seq: the signal bar (-1 when not known).
        side: ``"long"`` or ``"short"``.
        entry: entry price (the signal bar's close).
        stop: ``entry -/+ stop_atr_mult * atr``, or ``entry -/+ stop_fallback_pct %`` when the
            ATR is not a positive number (``stop_from_atr`` False).
        stop_distance_pct: ``|entry - stop| / entry * 100``.
        atr: the ATR given (price units).
        targets: candidate prices, best first, each beyond the entry by more than the minimum
            distance; the percentage fallback price is always there, last.
        target_sources: what each target is (``TargetSource``).
        profile: the window profile (prices, volumes, POC, VAH, VAL, HVNs, peaks, GMM).
    """

    seq: int
    side: Side
    entry: float
    stop: float
    stop_distance_pct: float
    atr: float
    stop_from_atr: bool
    targets: tuple[float, ...]
    target_sources: tuple[TargetSource, ...]
    profile: WindowProfile

    @property
    def target(self) -> float:
        """The first candidate (the reference bot's single TP)."""
        return self.targets[0]

    @property
    def curve(self) -> F64:
        """The two-component GMM density on the profile's prices (the UI's curve)."""
        return self.profile.curve()


def _sign(side: str) -> int:
    if side == "long":
        return 1
    if side == "short":
        return -1
    raise ValueError(f"side must be 'long' or 'short', got {side!r}")


def ranked_targets(profile: WindowProfile, side: Side, entry: float, *,
                   min_target_pct: float = 0.5,
                   fallback_target_pct: float = 4.0) -> tuple[tuple[float, TargetSource], ...]:
    """Target candidates with their source, in the reference bot's priority.

    A level qualifies when it lies beyond the entry by more than ``min_target_pct`` % (long:
    above ``entry * (1 + min/100)``; short: below ``entry * (1 - min/100)``):

    1. the two-component GMM peak: long the higher mean, short the lower one;
    2. volume peaks, the one in the highest-volume bin first;
    3. the POC, then the VAH (long) or VAL (short);
    4. ``entry * (1 +/- fallback_target_pct / 100)``, always present, last.

    A price listed twice is kept once, at its first place (so if a level sits exactly on the
    fallback price, that level's entry stands for it). The GMM is fitted only when the profile
    holds volume (cached per window).
    """
    s = _sign(side)
    entry = float(entry)
    bound = entry * (1 + s * min_target_pct / 100)

    def beyond(p: float) -> bool:
        return math.isfinite(p) and s * (p - bound) > 0

    found: list[tuple[float, TargetSource]] = []
    if profile.poc_volume > 0:
        two = profile.two_peak_means()
        if two:
            g = float(max(two) if s > 0 else min(two))
            if beyond(g):
                found.append((g, "gmm_peak"))
    by_volume = sorted(zip(profile.peaks, profile.peak_bins, strict=True),
                       key=lambda pb: -profile.volumes[pb[1]])
    found += [(p, "volume_peak") for p, _ in by_volume if beyond(p)]
    if beyond(profile.poc):
        found.append((profile.poc, "poc"))
    va = (profile.vah, "vah") if s > 0 else (profile.val, "val")
    if beyond(va[0]):
        found.append(va)  # type: ignore[arg-type]
    found.append((entry * (1 + s * fallback_target_pct / 100), "fallback"))
    seen: set[float] = set()
    unique = []
    for p, src in found:
        if p not in seen:
            seen.add(p)
            unique.append((p, src))
    return tuple(unique)


def target_candidates(profile: WindowProfile, side: Side, entry: float, *,
                      min_target_pct: float = 0.5,
                      fallback_target_pct: float = 4.0) -> tuple[float, ...]:
    """The prices of ``ranked_targets``, best first."""
    return tuple(p for p, _ in ranked_targets(profile, side, entry,
                                              min_target_pct=min_target_pct,
                                              fallback_target_pct=fallback_target_pct))


def trade_setup(profile: WindowProfile, side: Side, entry: float, atr: float, *, seq: int = -1,
                stop_atr_mult: float = 4.5, stop_fallback_pct: float = 1.0,
                min_target_pct: float = 0.5,
                fallback_target_pct: float = 4.0) -> TradeSetupLevels:
    """The trade setup for a signal (the reference bot's ``get_trade_setup``, one mode).

    Args:
        profile: the signal bar's window profile (``VolumeProfileHandler.profile_at``).
        side: ``"long"`` or ``"short"``.
        entry: entry price, the signal bar's close.
        atr: ATR at the signal bar in price units, by the configured method (the reference
            bot: 14-bar SMA of true range).
        seq: the signal bar, recorded in the result.
        stop_atr_mult: stop distance in ATRs (reference: 4.5).
        stop_fallback_pct: stop distance in % of entry when ``atr`` is not a positive number
            (reference: 1 %).
        min_target_pct, fallback_target_pct: see ``ranked_targets``.

    Returns:
        ``TradeSetupLevels``.
    """
    s = _sign(side)
    entry, atr = float(entry), float(atr)
    if not entry > 0:
        raise ValueError(f"trade_setup: entry must be a positive price, got {entry}")
    from_atr = math.isfinite(atr) and atr > 0
    dist = stop_atr_mult * atr if from_atr else entry * stop_fallback_pct / 100
    stop = entry - s * dist
    ranked = ranked_targets(profile, side, entry, min_target_pct=min_target_pct,
                            fallback_target_pct=fallback_target_pct)
    return TradeSetupLevels(
        seq=seq, side=side, entry=entry, stop=stop, stop_distance_pct=dist / entry * 100,
        atr=atr, stop_from_atr=from_atr, targets=tuple(p for p, _ in ranked),
        target_sources=tuple(src for _, src in ranked), profile=profile)


# -- bus handler -----------------------------------------------------------------------------------
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
    stop_atr_mult: float = Field(default=4.5, gt=0, description="trade-setup stop in ATRs")
    stop_fallback_pct: float = Field(default=1.0, gt=0, description="stop in % without ATR")
    target_min_pct: float = Field(default=0.5, ge=0, description="targets at least this % away")
    target_fallback_pct: float = Field(default=4.0, gt=0, description="fallback target in %")
    gmm_cache_size: int = Field(default=256, ge=1, description="windows whose GMM is kept")


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
    stop)``, ``target_candidates(seq, side, entry)`` and ``trade_setup(seq, side, entry,
    atr)``; their GMM fits are cached per window (``gmm``, a ``GmmCache``).

    A bar must reach the handler once, in seq order; missed bars (a handler started on a store
    that already holds history) are computed from the store on the next call.
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
        self._mode = _mode_code(params.mode)
        self._settings = _Settings(params.bins, params.mode, params.value_area, params.hvn_pct,
                                   params.prominence, params.distance)
        self._vols, self._state = rolling_state_nb(params.bins)
        self._out1 = np.empty((1, N_OUT))
        self._next = 0
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
        if seq < self._next:
            raise DataError(
                f"feature {self.id!r}: bar seq {seq} arrived after seq {self._next - 1}; each "
                "bar must reach a feature handler once, in order (check the feed for duplicates)")
        cols = [self.bars.column(name) for name in _COLUMNS]  # revealed bars only
        if cols[2].shape[0] <= seq:
            raise DataError(f"feature {self.id!r}: bar seq {seq} is not in the bar store "
                            f"({cols[2].shape[0]} bars revealed); append the bar first")
        first = self._next
        out = self._out1 if first == seq else np.empty((seq - first + 1, N_OUT))
        self._run(cols, first, seq + 1, out)
        for r in range(out.shape[0]):
            for col, value in zip(self.outputs, out[r], strict=True):
                self.features.set(col, first + r, float(value))
        self._next = seq + 1

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
        self._next = n

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
        prof = _window(w.high, w.low, w.close, w.volume, self._settings, w.start_seq, self.gmm)
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

    def trade_setup(self, seq: int, side: Side, entry: float, atr: float) -> TradeSetupLevels:
        """The trade setup for a signal at ``seq`` (``trade_setup`` on ``profile_at(seq)``)."""
        p = self.params
        return trade_setup(self.profile_at(seq), side, entry, atr, seq=seq,
                           stop_atr_mult=p.stop_atr_mult, stop_fallback_pct=p.stop_fallback_pct,
                           min_target_pct=p.target_min_pct,
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
            _window(*cols, _Settings(4, name, 0.7, 75.0, 0.05, 3), 0, None)
