"""Volume profile, the array API: rolling per-bar levels (POC, VAH, VAL, HVNs, peaks) for a whole
series, and the argument checks every volume-profile entry point shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from indicators.kernels.volume_profile import (
    CLOSE,
    N_OUT,
    RANGE,
    SUMMARY,
    rolling_profile_nb,
    rolling_state_nb,
)

F64 = NDArray[np.float64]
Mode = Literal["close", "range"]
MODES: dict[str, int] = {"close": CLOSE, "range": RANGE}


# -- validation ------------------------------------------------------------------------------------
def mode_code(mode: str) -> int:
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(
            f"volume profile mode must be 'close' (each bar's volume at its close) or 'range' "
            f"(spread over its low..high), got {mode!r}") from None


def as_columns(high: ArrayLike, low: ArrayLike, close: ArrayLike,
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


def check_settings(lookback: int, bins: int, value_area: float, hvn_pct: float, prominence: float,
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
    h, lo, c, v = as_columns(high, low, close, volume)
    check_settings(lookback, bins, value_area, hvn_pct, prominence, distance)
    n = c.shape[0]
    out = np.empty((n, N_OUT))
    vols, state = rolling_state_nb(int(bins))
    rolling_profile_nb(h, lo, c, v, 0, n, int(lookback), int(bins), mode_code(mode),
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

