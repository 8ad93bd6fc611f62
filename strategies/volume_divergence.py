"""Exit 6, volume divergence: leave when a new extreme comes on fading volume.

Reference (§6.3.6): once the close is more than 2 % in profit the stop goes to break-even; HVN
trailing every 10 bars (dead in the reference, working here); after more than 40 bars held, if
the last 20 bars made a higher high than the 20 before (shorts: a lower low) while their POC
volume is below 0.70 × the earlier POC volume, and the trade is more than 1 % in profit, the
whole position closes (``VOLUME_DIVERGENCE``).
Deviations: the reference moved the stop on the bar's close and then tested the same bar's low
(a stop moved on a bar's close now works from the next bar); the windows include the closed bar
((i-20, i] and (i-40, i-20]); the divergence exit is a market order filled at the next open
under ``market_fill: next_open`` (the reference filled at the signal bar's close).
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
    CloseAll,
    ExitContext,
    ExitIntent,
    ExitParams,
    ExitPlan,
    MoveStop,
    PositionView,
    TradeSetup,
    hvn_trail,
    is_tick,
    tighter,
    window,
)


class VolumeDivergenceParams(ExitParams):
    breakeven_profit_pct: float = Field(default=2.0, ge=0)
    min_bars_held: int = Field(default=40, ge=2)
    half_window: int = Field(default=20, ge=2)
    poc_volume_ratio: float = Field(default=0.70, gt=0)
    min_profit_pct: float = Field(default=1.0, ge=0)


class VolumeDivergence:
    API_VERSION: ClassVar[tuple[int, int]] = API_VERSION
    Params = VolumeDivergenceParams

    @staticmethod
    def required_features(p: VolumeDivergenceParams) -> list[AnyFeature]:
        return [VOLUME_PROFILE]  # window() reads the volume profile, whatever its settings

    def __init__(self, params: VolumeDivergenceParams) -> None:
        self.p = params

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan:
        return ExitPlan(stop_price=setup.stop_price, max_hold_bars=self.p.max_hold_bars)

    def on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]:
        s = pos.sign
        e = pos.entry_price
        i = bar.seq
        profit_pct = 100 * s * (bar.close - e) / e
        if pos.bars_held > self.p.min_bars_held and profit_pct > self.p.min_profit_pct:
            w = self.p.half_window
            bars = ctx.bars.window(i, 2 * w)
            if len(bars) == 2 * w:
                prev_h, rec_h = bars.high[:w].max(), bars.high[w:].max()
                prev_l, rec_l = bars.low[:w].min(), bars.low[w:].min()
                new_extreme = rec_h > prev_h if s > 0 else rec_l < prev_l
                if new_extreme:
                    recent = window(ctx, i - w + 1, i + 1)
                    previous = window(ctx, i - 2 * w + 1, i - w + 1)
                    if recent.poc_volume < self.p.poc_volume_ratio * previous.poc_volume:
                        return (CloseAll("VOLUME_DIVERGENCE"),)
        if profit_pct > self.p.breakeven_profit_pct and tighter(e, pos.stop_price, s):
            return (MoveStop(e, "BREAK_EVEN"),)
        if is_tick(i, pos.entry_seq, self.p.trail_every_bars):
            move = hvn_trail(ctx, pos, i, bar.close, self.p.lookback, self.p.trail_buffer_pct)
            if move is not None:
                return (move,)
        return ()
