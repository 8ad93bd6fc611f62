"""Exit 3, LVN acceleration (the reference's optimised "v2", with real LVNs).

The reference (§6.3.3) took its partial target from histogram peaks although the strategy is
named after low-volume nodes, and its trailing never moved. Here: the partial target is the
nearest **LVN** (Gaussian-mixture minimum between volume nodes) beyond entry·1.01, else the
nearest volume peak beyond it, else entry ±4 %. 20 % is taken there; then the stop tightens to
entry ∓ 1·ATR; on every trailing tick (from the partial's bar, every 10 bars) the stop goes to
break-even once the close is 0.5 % in profit, and trails the highest HVN below close·0.995
(the v2's 0.5 % buffer) - which now really moves. The 80 % runner exits at the stop or the
7-day limit. Price moves fast through thin volume: an LVN is where a move accelerates, hence
the early partial.
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
    first_beyond,
    hvn_trail,
    is_tick,
    tighter,
    window,
)


class LvnAccelerationParams(ExitParams):
    ppt_min_pct: float = Field(default=1.0, ge=0)
    fallback_pct: float = Field(default=4.0, gt=0)
    partial_frac: float = Field(default=0.2, gt=0, le=1)
    atr_stop_mult: float = Field(default=1.0, gt=0)
    breakeven_trigger_pct: float = Field(default=0.5, ge=0)
    trail_buffer_pct: float = Field(default=0.5, ge=0)


class LvnAcceleration:
    API_VERSION: ClassVar[tuple[int, int]] = API_VERSION
    Params = LvnAccelerationParams

    @staticmethod
    def required_features(p: LvnAccelerationParams) -> list[AnyFeature]:
        return [VOLUME_PROFILE]  # window() reads the volume profile, whatever its settings

    def __init__(self, params: LvnAccelerationParams) -> None:
        self.p = params

    def target(self, setup: TradeSetup, ctx: ExitContext) -> float:
        s = 1 if setup.side == "long" else -1
        prof = window(ctx, setup.seq - self.p.lookback + 1, setup.seq + 1)
        for levels in (prof.lvns(), prof.peaks):
            t = first_beyond(levels, setup.entry_price, s, self.p.ppt_min_pct)
            if math.isfinite(t):
                return t
        return setup.entry_price * (1 + s * self.p.fallback_pct / 100)

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan:
        return ExitPlan(
            stop_price=setup.stop_price,
            partials=(TakePartial(self.p.partial_frac, self.target(setup, ctx), "LVN_TARGET"),),
            max_hold_bars=self.p.max_hold_bars,
        )

    def on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]:
        if pos.partials_filled < 1:
            return ()
        s = pos.sign
        entry = pos.entry_price
        atr_stop = entry - s * self.p.atr_stop_mult * pos.setup.atr
        if bar.seq == pos.last_partial_seq and tighter(atr_stop, pos.stop_price, s):
            return (MoveStop(atr_stop, "ATR_STOP"),)
        if not is_tick(bar.seq, pos.last_partial_seq, self.p.trail_every_bars):
            return ()
        if (pos.stop_price != entry and tighter(entry, pos.stop_price, s)
                and s * (bar.close - entry * (1 + s * self.p.breakeven_trigger_pct / 100)) > 0):
            return (MoveStop(entry, "BREAK_EVEN"),)
        move = hvn_trail(ctx, pos, bar.seq, bar.close, self.p.lookback, self.p.trail_buffer_pct)
        return (move,) if move is not None else ()
