"""Exit 1, POC target: half off at the profile's point of control, then break-even and HVN trail.

Reference (§6.3.1): partial-profit target (PPT) = POC if beyond entry by > 1 %, else VAH if so,
else entry ±4 %. At the PPT 50 % of the original size is sold and the stop moves to break-even;
after the PPT, every 10 bars (first on the PPT bar) the stop trails to the highest HVN below
close·0.99 when that raises it. Shorts mirror (POC < entry·0.99, else VAL, else −4 %).
Deviations: the stop moves on the close of the bar in which the PPT filled and works from the
next bar (the engine's rule for every decision); the trailing profile includes the closed bar.
"""

from __future__ import annotations

import math
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
    beyond,
    hvn_trail,
    is_tick,
    tighter,
    window,
)


class PocTargetParams(ExitParams):
    ppt_min_pct: float = Field(default=1.0, ge=0)
    fallback_pct: float = Field(default=4.0, gt=0)
    partial_frac: float = Field(default=0.5, gt=0, le=1)


class PocTarget:
    API_VERSION: ClassVar[tuple[int, int]] = API_VERSION
    Params = PocTargetParams
    ORDER: ClassVar[tuple[str, str]] = ("poc", "va")  # which level is tried first

    @staticmethod
    def required_features(p: PocTargetParams) -> list[AnyFeature]:
        return [VOLUME_PROFILE]  # window() reads the volume profile, whatever its settings

    def __init__(self, params: PocTargetParams) -> None:
        self.p = params

    def target(self, setup: TradeSetup, ctx: ExitContext) -> float:
        s = 1 if setup.side == "long" else -1
        prof = window(ctx, setup.seq - self.p.lookback + 1, setup.seq + 1)
        levels = {"poc": prof.poc, "va": prof.vah if s > 0 else prof.val}
        for name in self.ORDER:
            lvl = levels[name]
            if math.isfinite(lvl) and beyond(lvl, setup.entry_price, s, self.p.ppt_min_pct):
                return lvl
        return setup.entry_price * (1 + s * self.p.fallback_pct / 100)

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan:
        return ExitPlan(
            stop_price=setup.stop_price,
            partials=(TakePartial(self.p.partial_frac, self.target(setup, ctx), "PARTIAL_TARGET"),),
            max_hold_bars=self.p.max_hold_bars,
        )

    def on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]:
        if pos.partials_filled < 1:
            return ()
        s = pos.sign
        if tighter(pos.entry_price, pos.stop_price, s):
            return (MoveStop(pos.entry_price, "BREAK_EVEN"),)
        if is_tick(bar.seq, pos.last_partial_seq, self.p.trail_every_bars):
            move = hvn_trail(ctx, pos, bar.seq, bar.close, self.p.lookback,
                             self.p.trail_buffer_pct)
            if move is not None:
                return (move,)
        return ()
