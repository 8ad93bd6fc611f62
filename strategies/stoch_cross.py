"""Built-in stochastic-cross strategy: the engine's benchmark workload.

Long when stochastic %K(14, smoothed 3) crosses above 20, short when it crosses below 80; exit
at a 2·ATR(14) stop placed with the entry, or on the opposite signal (which reverses). Orders are
market orders decided on the bar's close; sizing is a fraction of equity from the account config.
A cross is ``k[i-1] <= lower < k[i]`` (above) and ``k[i-1] >= upper > k[i]`` (below).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.config import FeatureConfig
from engine.events import BarClosed, SubmitOrder
from engine.strategy import StrategyContext


class StochCrossParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    k: int = Field(default=14, ge=2, le=1000)
    k_smooth: int = Field(default=3, ge=1, le=100)
    d_smooth: int = Field(default=3, ge=1, le=100)
    lower_pct: float = Field(default=20.0, gt=0, lt=100)
    upper_pct: float = Field(default=80.0, gt=0, lt=100)
    atr_n: int = Field(default=14, ge=1, le=1000)
    atr_method: Literal["wilder", "sma"] = "wilder"
    stop_atr_mult: float = Field(default=2.0, gt=0)
    allow_short: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> StochCrossParams:
        if self.lower_pct >= self.upper_pct:
            raise ValueError(f"lower_pct {self.lower_pct} must be below upper_pct {self.upper_pct}")
        return self


class StochCross:
    """See the module docstring."""

    Params = StochCrossParams

    @staticmethod
    def required_features(p: StochCrossParams) -> list[FeatureConfig]:
        return [
            FeatureConfig(
                id=f"stoch_{p.k}_{p.k_smooth}_{p.d_smooth}",
                kind="stochastic",
                params={"k": p.k, "k_smooth": p.k_smooth, "d_smooth": p.d_smooth},
            ),
            FeatureConfig(
                id=f"atr_{p.atr_n}_{p.atr_method}",
                kind="atr",
                params={"n": p.atr_n, "method": p.atr_method},
            ),
        ]

    def __init__(self, ctx: StrategyContext, params: StochCrossParams) -> None:
        self.ctx = ctx
        self.p = params
        feats = self.required_features(params)
        self._k_col = ctx.output(feats[0].id, "k")
        self._atr_col = ctx.output(feats[1].id, "atr")
        self._n = 0
        self.entries_paused = False  # operator pause (ZeroMQ bridge): exits still happen
        # fast reads bounded by the current bar (a read past it raises LookaheadError)
        self._k = ctx.features.reader(self._k_col).at
        self._atr = ctx.features.reader(self._atr_col).at
        # %K of the bar before (NaN before the first bar: no cross on it)
        self._k_prev = math.nan
        self._k_prev_seq = -1
        self._lo = params.lower_pct
        self._hi = params.upper_pct

    def on_bar_closed(self, bar: BarClosed) -> None:
        i = bar.seq
        # %K of the previous bar is remembered from it (one bounded read per bar)
        k0 = self._k_prev if self._k_prev_seq == i - 1 else self._k(i - 1)
        k1 = self._k_prev = self._k(i)
        self._k_prev_seq = i
        if k0 <= self._lo < k1:
            self._enter(bar, True)
        elif k0 >= self._hi > k1:
            self._enter(bar, False)

    def _enter(self, bar: BarClosed, is_long: bool) -> None:
        ctx = self.ctx
        q = ctx.account.qty
        if (q > 0 and is_long) or (q < 0 and not is_long):
            return
        name = ctx.name
        if q != 0.0:  # market, reduce-only, the whole position (the defaults go unsaid: cheaper)
            self._n += 1
            ctx.publish(SubmitOrder(
                ts_event_ns=bar.ts_event_ns, ts_init_ns=bar.ts_init_ns, account=name,
                order_id=f"{name}-{self._n}", side="buy" if q < 0 else "sell", type="market",
                seq=bar.seq, qty=math.inf, reduce_only=True, tag="SIGNAL_EXIT",
            ))
        if (not is_long and not self.p.allow_short) or self.entries_paused:
            return
        atr = self._atr(bar.seq)
        if not atr > 0.0:
            return  # ATR still warming up: no stop can be placed, so no entry
        dist = self.p.stop_atr_mult * atr
        self._n += 1
        ctx.publish(SubmitOrder(
            ts_event_ns=bar.ts_event_ns, ts_init_ns=bar.ts_init_ns, account=name,
            order_id=f"{name}-{self._n}", side="buy" if is_long else "sell", type="market",
            seq=bar.seq, equity_frac=ctx.position_size_frac,
            stop_loss=bar.close - dist if is_long else bar.close + dist, tag="ENTRY",
        ))
