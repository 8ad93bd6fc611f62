"""Exit 5, trailing stop: no partials; the whole position trails HVNs.

Reference (§6.3.5): from the first bar and every 10 bars, candidate = highest HVN below
close·0.99; adopted only if it raises the stop **and** is above entry·1.015 (shorts mirror). The
whole position exits at the stop or the hold limit. Trailed-stop exits are labelled
``TRAILING_STOP_HIT`` (the initial stop keeps ``STOP_LOSS``, which the reference also called
``TRAILING_STOP_HIT``).
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
    PositionView,
    TradeSetup,
    hvn_trail,
    is_tick,
)


class TrailingStopParams(ExitParams):
    min_lock_pct: float = Field(default=1.5, ge=0, description="a trail must lock this profit")


class TrailingStop:
    API_VERSION: ClassVar[tuple[int, int]] = API_VERSION
    Params = TrailingStopParams

    @staticmethod
    def required_features(p: TrailingStopParams) -> list[AnyFeature]:
        return [VOLUME_PROFILE]  # window() reads the volume profile, whatever its settings

    def __init__(self, params: TrailingStopParams) -> None:
        self.p = params

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan:
        return ExitPlan(stop_price=setup.stop_price, max_hold_bars=self.p.max_hold_bars)

    def on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]:
        if not is_tick(bar.seq, pos.entry_seq, self.p.trail_every_bars):
            return ()
        floor = pos.entry_price * (1 + pos.sign * self.p.min_lock_pct / 100)
        move = hvn_trail(ctx, pos, bar.seq, bar.close, self.p.lookback, self.p.trail_buffer_pct,
                         reason="TRAILING_STOP_HIT", floor=floor)
        return (move,) if move is not None else ()
