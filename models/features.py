"""CNN input features, computed by the engine's own indicator kernels for training and inference.

For the sample stamped on bar ``i`` (the reference bot's layout, ``include_current_bar=False``):

- **S60 window**: the model-variant S60 stochastic (``SMA10`` of raw %K over 60 bars, full
  windows, NaN during warm-up; ``indicators.api.MODEL_SCALES["s60"]``) of the ``window_bars``
  bars ``[i - window_bars, i)``, divided by 100, so **0-1** (the reference bot trained on 0-1; its
  chart code used 0-100 on the same name, and the two were mixed up; here the one conversion is
  :func:`s60_frac`, used by both paths);
- **volume profile**: the close-only (or range) ``vp_bins``-bin profile of the
  ``vp_lookback_bars`` bars ``[i - vp_lookback_bars, i)`` over that window's lowest low .. highest
  high (``indicators.kernels.volume_profile.profile_nb``), divided by its largest bin, so 0-1.

``include_current_bar=True`` shifts both windows by one bar to end at ``i`` (removes the reference
bot's one-bar latency, its bug 9); the label rule follows the same anchor (``models.labels``).

A sample is **invalid** (NaN row, never scored) when any S60 value of its window is NaN or the
profile has no volume. The first valid bar is :attr:`FeatureSpec.first_valid_bar` (200 with the
defaults: the 200-bar profile).

Two paths, one arithmetic:

- :func:`build_features` (training sets, backtest precompute): the S60 of every bar in one
  ``stoch_nb`` pass, windows as strided views, and every bar's profile in one numba loop
  (:func:`vp_profiles_nb`) around the volume-profile team's per-window ``profile_nb``;
- :class:`FeatureStream` (per closed bar, live): the S60 through the incremental
  ``stoch_update_nb`` (proven equal to ``stoch_nb`` by the indicator tests) and the profile of the
  bar store's window through the same :func:`vp_profiles_nb`.

``tests/models/test_features.py`` proves both bit-identical on real data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from engine.bars import Bars, BarStore
from indicators.api import MODEL_SCALES, pct_to_unit
from indicators.kernels.stoch import StochState, stoch_nb, stoch_update_nb
from indicators.kernels.volume_profile import CLOSE, RANGE, profile_nb

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

# Bump when the feature arithmetic changes in a way the spec does not capture: a model card
# records it, and a model trained with another version is refused.
FEATURE_VERSION = 1

_S60_K, _S60_SMOOTH = MODEL_SCALES["s60"]


class FeatureSpec(BaseModel):
    """What the CNN sees; stored (with its hash) in every model card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_bars: int = Field(default=100, ge=8, le=2000, description="S60 values per sample")
    vp_lookback_bars: int = Field(default=200, ge=2, le=5000, description="bars in the profile")
    vp_bins: int = Field(default=80, ge=2, le=1000)
    vp_mode: Literal["close", "range"] = Field(
        default="close", description="close: the reference bot's fast close-only histogram")
    include_current_bar: bool = Field(
        default=False,
        description="False: windows end at the previous bar (the reference bot); True: at this bar")
    stoch_k_bars: int = Field(default=_S60_K, ge=2, le=5000, description="raw %K length of S60")
    stoch_smooth_bars: int = Field(default=_S60_SMOOTH, ge=1, le=500, description="%K SMA")

    @property
    def shift(self) -> int:
        """Bars between the sample bar and the last bar its windows read (1 or 0)."""
        return 0 if self.include_current_bar else 1

    @property
    def stoch_warmup_bars(self) -> int:
        """Index of the first non-NaN S60 value."""
        return self.stoch_k_bars + self.stoch_smooth_bars - 2

    @property
    def first_valid_bar(self) -> int:
        """The first bar whose sample can be valid."""
        oldest = max(self.window_bars + self.stoch_warmup_bars, self.vp_lookback_bars)
        return oldest - 1 + self.shift

    @property
    def lookback_bars(self) -> int:
        """How many bars before the sample bar its features can depend on (for the purge gap).

        The S60 window's oldest value itself reads ``stoch_warmup_bars`` older bars; the
        result equals :attr:`first_valid_bar` (the first bar that has all of them).
        """
        return self.first_valid_bar

    def digest(self) -> str:
        """Hash of the spec and :data:`FEATURE_VERSION` (16 hex digits)."""
        return spec_digest(self.model_dump(mode="json"), FEATURE_VERSION)


def spec_digest(fields: dict[str, object], version: int) -> str:
    """Stable 16-hex-digit hash of a spec's fields plus a code version."""
    blob = json.dumps({"fields": fields, "version": version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Model inputs for every bar of a series; rows of invalid bars are NaN.

    Attributes:
        s60: ``[n_bars, window_bars]`` float32, 0-1; row i is the window of sample i.
        vp: ``[n_bars, vp_bins]`` float32, 0-1 (profile / its max).
        valid: ``[n_bars]`` bool, True where the whole row is finite.
    """

    s60: F32
    vp: F32
    valid: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.valid.shape[0])


def s60_frac(s60_pct: F64) -> F64:
    """The stochastic the model reads on its 0-1 scale: ``indicators.pct_to_unit``, the engine's
    one 0-100 -> 0-1 conversion."""
    return pct_to_unit(s60_pct)


def s60_series(high: F64, low: F64, close: F64, spec: FeatureSpec) -> F64:
    """Model-variant S60 of every bar, 0-1 (NaN during warm-up)."""
    k_out = np.empty(close.shape[0])
    d_out = np.empty(close.shape[0])
    stoch_nb(high, low, close, spec.stoch_k_bars, spec.stoch_smooth_bars, 1, True, k_out, d_out)
    return s60_frac(k_out)


@njit(cache=True, nogil=True, error_model="numpy")
def vp_profiles_nb(high, low, close, volume, ends, lookback, bins, mode, out):  # type: ignore[no-untyped-def]
    """Normalised volume profiles of many windows into ``out`` (``[len(ends), bins]``).

    Row r is ``profile_nb`` of bars ``[ends[r] - lookback + 1, ends[r]]`` divided by its largest
    bin (0-1); NaN when the window starts before bar 0 or holds no volume. Each window is built
    from scratch by the volume-profile kernel, so a row depends on its own bars only (causal, and
    the per-bar path that calls this with one window gets the same bits).
    """
    vols = np.zeros(bins)
    for r in range(ends.shape[0]):
        e = ends[r]
        if e + 1 < lookback or e >= close.shape[0]:
            out[r, :] = np.nan
            continue
        profile_nb(high, low, close, volume, e - lookback + 1, e + 1, bins, mode, vols)
        top = vols.max()
        if not top > 0.0:
            out[r, :] = np.nan
            continue
        for j in range(bins):
            out[r, j] = vols[j] / top


def _vp_mode(spec: FeatureSpec) -> int:
    return CLOSE if spec.vp_mode == "close" else RANGE


def _f64(x: NDArray[np.floating]) -> F64:
    return np.ascontiguousarray(x, dtype=np.float64)


def build_features(bars: Bars, spec: FeatureSpec) -> FeatureSet:
    """Features of every bar of ``bars`` (batch path; see the module docstring).

    Args:
        bars: the whole series, in time order.
        spec: feature layout.

    Returns:
        A :class:`FeatureSet` with one row per bar.
    """
    return build_features_from_columns(_f64(bars.high), _f64(bars.low), _f64(bars.close),
                                       _f64(bars.volume), spec)


def build_features_from_columns(high: F64, low: F64, close: F64, volume: F64,
                                spec: FeatureSpec) -> FeatureSet:
    """:func:`build_features` on raw float64 columns (the handler's precompute uses this)."""
    n = close.shape[0]
    w = spec.window_bars
    s60 = s60_series(high, low, close, spec)
    win = np.full((n, w), np.nan, dtype=np.float32)
    ends = np.arange(n, dtype=np.int64) - spec.shift  # last bar each sample's windows read
    first = w - 1 + spec.shift  # first sample whose S60 window starts at bar >= 0
    if n > first:
        # sliding_window_view row r covers bars [r, r + w); sample i needs the row ending at
        # ends[i], i.e. row ends[i] - w + 1 = i - shift - w + 1.
        win[first:] = sliding_window_view(s60, w)[: n - first]
    vp = np.empty((n, spec.vp_bins))
    vp_profiles_nb(high, low, close, volume, ends, spec.vp_lookback_bars, spec.vp_bins,
                   _vp_mode(spec), vp)
    vp32 = vp.astype(np.float32)
    valid = np.isfinite(win).all(axis=1) & np.isfinite(vp32).all(axis=1)
    return FeatureSet(s60=win, vp=vp32, valid=valid)


class FeatureStream:
    """Per-bar feature computation for live trading (bars arrive one at a time).

    Call :meth:`push` once per closed bar, in order, then :meth:`current` for that bar's sample.
    The S60 state is O(1) per bar; the profile is rebuilt from the bar store's window (at most
    ``vp_lookback_bars`` bars), never reading past the bar being processed.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._state = StochState(spec.stoch_k_bars, spec.stoch_smooth_bars, 1)
        # The last window_bars + 1 S60 values (0-1), newest last: enough for either anchor.
        self._ring = np.full(spec.window_bars + 1, np.nan)
        self._seen = 0
        self._ends = np.zeros(1, dtype=np.int64)
        self._vp = np.empty((1, spec.vp_bins))

    def push(self, high: float, low: float, close: float) -> None:
        """Advance the S60 state by one closed bar."""
        s, sp = self._state, self.spec
        _, k, _ = stoch_update_nb(s.hi_idx, s.hi_vals, s.hi_meta, s.lo_idx, s.lo_vals, s.lo_meta,
                                  s.k_buf, s.k_meta, s.d_buf, s.d_meta, high, low, close,
                                  sp.stoch_k_bars, sp.stoch_smooth_bars, 1, True)
        # One element per bar: shifting 101 floats costs less than index arithmetic in Python.
        self._ring[:-1] = self._ring[1:]
        self._ring[-1] = s60_frac(np.float64(k))
        self._seen += 1

    def current(self, store: BarStore, seq: int) -> tuple[F32, F32] | None:
        """Features of the sample at ``seq`` (the last pushed bar), or None if invalid.

        Raises:
            LookaheadError: ``seq`` is not revealed in ``store``.
        """
        sp = self.spec
        if seq + 1 != self._seen:
            raise ValueError(
                f"FeatureStream holds {self._seen} bars but features for seq {seq} were asked; "
                "push every closed bar exactly once, in order")
        end = seq - sp.shift
        if seq < sp.first_valid_bar or end < 0:
            return None
        w = sp.window_bars
        stop = self._ring.shape[0] - sp.shift
        s60 = self._ring[stop - w: stop].astype(np.float32)
        if not np.isfinite(s60).all():
            return None
        win = store.window(end, sp.vp_lookback_bars)
        self._ends[0] = sp.vp_lookback_bars - 1
        vp_profiles_nb(win.high, win.low, win.close, win.volume, self._ends,
                       sp.vp_lookback_bars, sp.vp_bins, _vp_mode(sp), self._vp)
        vp = self._vp[0].astype(np.float32)
        if not np.isfinite(vp).all():
            return None
        return s60, vp


def warm_up() -> None:
    """Compile (or load from the numba cache) the feature kernels before the first bar."""
    x = np.linspace(1.0, 2.0, 16)
    out = np.empty((1, 4))
    vp_profiles_nb(x + 0.1, x - 0.1, x, x, np.array([15], dtype=np.int64), 8, 4, CLOSE, out)
