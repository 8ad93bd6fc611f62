"""One window's full volume profile (``window_profile``, ``WindowProfile``): the bins, levels and,
on request, the Gaussian-mixture nodes (``indicators.gmm``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from numpy.typing import ArrayLike

from indicators.gmm import GmmCache, GmmNodes, fit_nodes
from indicators.gmm import two_peak_means as gmm_two_peak_means
from indicators.kernels.volume_profile import window_nb
from indicators.profile.columns import F64, MODES, Mode, as_columns, check_settings, mode_code


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
class Settings:
    bins: int
    mode: Mode
    value_area: float
    hvn_pct: float
    prominence: float
    distance: int


def profile_of(h: F64, lo: F64, c: F64, v: F64, s: Settings, offset: int,
            cache: GmmCache | None) -> WindowProfile:
    """Profile of all of the given bars, labelled ``[offset, offset + len)``."""
    vols, prices, out, thr, peak_bins, glo, ghi = window_nb(
        h, lo, c, v, s.bins, MODES[s.mode], s.value_area, s.hvn_pct, s.prominence, s.distance)
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
    h, lo, c, v = as_columns(high, low, close, volume)
    check_settings(1, bins, value_area, hvn_pct, prominence, distance)
    if not 0 <= start < stop <= c.shape[0]:
        raise ValueError(f"window_profile: window [{start}, {stop}) is empty or not inside the "
                         f"{c.shape[0]} bars given")
    mode_code(mode)
    s = Settings(int(bins), mode, float(value_area), float(hvn_pct), float(prominence),
                  int(distance))
    return profile_of(h[start:stop], lo[start:stop], c[start:stop], v[start:stop], s, start, None)
