"""Exit 4, multi-tier (the reference's optimised "v2", with a working runner trail).

Reference (§6.3.4 v2): tier targets are the 1st and 2nd HVN beyond entry ± 1.5·ATR (fallbacks
±2 % and ±4 %), 15 % each. After tier 1 the stop tightens to entry ∓ 1·ATR; after tier 2 it moves
to break-even, and from then on (every 10 bars from the tier-2 fill) the 70 % runner trails the
highest HVN below close·0.99 - the reference's trail never moved (its profile had no HVNs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from strategies.api import (
    API_VERSION,
    VOLUME_PROFILE,
    AnyFeature,
    BarClosed,
    ExitContext,
    ExitIntent,
    ExitParams,
    ExitPlan,
    MoveStop,
    PositionView,
    TakePartial,
    TradeSetup,
    hvn_trail,
    is_tick,
    tighter,
    window,
)


class MultiTierParams(ExitParams):
    tier_atr_mult: float = Field(default=1.5, ge=0)
    tier1_fallback_pct: float = Field(default=2.0, gt=0)
    tier2_fallback_pct: float = Field(default=4.0, gt=0)
    tier_frac: float = Field(default=0.15, gt=0, le=0.5)
    atr_stop_mult: float = Field(default=1.0, gt=0)


class MultiTier:
    API_VERSION: ClassVar[tuple[int, int]] = API_VERSION
    Params = MultiTierParams

    @staticmethod
    def required_features(p: MultiTierParams) -> list[AnyFeature]:
        return [VOLUME_PROFILE]  # window() reads the volume profile, whatever its settings

    def __init__(self, params: MultiTierParams) -> None:
        self.p = params

    def tiers(self, setup: TradeSetup, ctx: ExitContext) -> tuple[float, float]:
        s = 1 if setup.side == "long" else -1
        e = setup.entry_price
        prof = window(ctx, setup.seq - self.p.lookback + 1, setup.seq + 1)
        edge = e + s * self.p.tier_atr_mult * setup.atr
        beyond = sorted((h for h in prof.hvns if s * (h - edge) > 0), key=lambda h: s * h)
        t1 = beyond[0] if beyond else e * (1 + s * self.p.tier1_fallback_pct / 100)
        t2 = beyond[1] if len(beyond) > 1 else e * (1 + s * self.p.tier2_fallback_pct / 100)
        return t1, t2

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan:
        t1, t2 = self.tiers(setup, ctx)
        f = self.p.tier_frac
        return ExitPlan(
            stop_price=setup.stop_price,
            partials=(TakePartial(f, t1, "TIER_1"), TakePartial(f, t2, "TIER_2")),
            max_hold_bars=self.p.max_hold_bars,
        )

    def on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]:
        s = pos.sign
        e = pos.entry_price
        if pos.partials_filled >= 2:
            if tighter(e, pos.stop_price, s):
                return (MoveStop(e, "BREAK_EVEN"),)
            if is_tick(bar.seq, pos.last_partial_seq, self.p.trail_every_bars):
                move = hvn_trail(ctx, pos, bar.seq, bar.close, self.p.lookback,
                                 self.p.trail_buffer_pct)
                return (move,) if move is not None else ()
        elif pos.partials_filled == 1:
            atr_stop = e - s * self.p.atr_stop_mult * pos.setup.atr
            if tighter(atr_stop, pos.stop_price, s):
                return (MoveStop(atr_stop, "ATR_STOP"),)
        return ()
