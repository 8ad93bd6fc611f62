"""A signal's trade setup from a window profile: ranked target candidates (GMM peak, volume
peaks, POC, VAH/VAL, a percentage fallback) and an ATR stop (``trade_setup``).

**One trade setup everywhere.** The reference bot built backtest targets from a close-only
profile and alert/UI targets from a range-spread one, so its backtests and alerts disagreed.
Here the volume-profile handler's ``mode`` decides both its per-bar columns and every set of
targets it gives (entry rules, exit plugins, the UI sidebar, alerts all ask the handler). The
stop of a trade is the signal rule's (``signals.params.stop_atr_mult``, carried on
``SignalRaised.stop_price``): ``trade_setup`` takes it as an argument, the profile has no stop
setting of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from engine.events import Side
from indicators.profile.columns import F64
from indicators.profile.window import WindowProfile

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

