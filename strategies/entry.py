"""The shared entry-signal rule: per-bar features in, ``SignalRaised`` out.

Modes (``params.mode``):

- ``rules``: the reference bot's quad rotation (20-bar slope falling, S9 < 20, S14/S40/S60 < 25,
  S9 rising; mirrored for SELL: slope rising, S9 > 80, others > 75, S9 falling) on the chart
  stochastics, and (``channel_breakout``) a regression-channel breakout: in a falling channel the
  close crosses above ``mid + k·std`` (mirrored: in a rising channel below ``mid - k·std``).
  The slope threshold is a **percent of price per bar** (the reference used -0.5 price units
  per bar, which means something else at 25k than at 100k);
- ``nn``: model probability above ``nn_threshold`` (default 0.30) and the highest of the **past**
  ``nn_peak_window`` bars including this one (the reference compared with 30 *future* bars:
  lookahead), then ``refractory_bars`` of silence per side;
- ``hybrid``: a rule event confirmed by a model signal of the same side within the last
  ``hybrid_window`` bars (inclusive), as the reference bot once did.

Every signal carries the trade setup: entry = the bar's close, stop = entry ∓ ``stop_atr_mult``
· ATR (the one stop setting of a run: the volume profile has none), and target candidates from a
feature handler offering ``target_candidates`` (the volume profile) or a percentage fallback.
Features are read through ``ctx.features`` readers, bounded by the current bar.
``alarm_id`` = ``SYMBOL_TF_<close time>_<rule>_<side>``: unique per bar, rule and side, so a BUY
and a SELL on one bar never collide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.config import FeatureConfig
from engine.events import BarClosed, Side, SignalRaised
from engine.strategy import StrategyContext


class SignalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["rules", "nn", "hybrid"] = "rules"
    sides: tuple[Side, ...] = ("long", "short")
    # quad rotation
    slope_n: int = Field(default=20, ge=2)
    slope_threshold_pct: float = Field(default=0.002, ge=0, description="% of price per bar")
    s9_extreme_pct: float = Field(default=20.0, gt=0, lt=50)
    others_extreme_pct: float = Field(default=25.0, gt=0, lt=50)
    # regression channel breakout
    channel_breakout: bool = True
    channel_n: int = Field(default=100, ge=10)
    channel_k: float = Field(default=2.0, gt=0)
    # model
    nn_feature: str = "cnn"
    nn_handler_params: dict[str, Any] = Field(default_factory=dict)
    nn_threshold: float = Field(default=0.30, gt=0, lt=1)
    nn_peak_window: int = Field(default=30, ge=1)
    refractory_bars: int = Field(default=10, ge=0)
    hybrid_window: int = Field(default=20, ge=0)
    # setup
    atr_n: int = Field(default=14, ge=1)
    atr_method: Literal["sma", "wilder"] = "sma"
    stop_atr_mult: float = Field(default=4.5, gt=0)
    fallback_target_pct: float = Field(default=4.0, gt=0)

    @model_validator(mode="after")
    def _sides(self) -> SignalParams:
        if not self.sides or len(set(self.sides)) != len(self.sides):
            raise ValueError(f"sides must list 'long' and/or 'short' once each, got {self.sides}")
        return self


class SignalRule:
    """See the module docstring. Registered as the entry rule ``signals``."""

    Params = SignalParams

    @staticmethod
    def required_features(p: SignalParams) -> list[FeatureConfig]:
        feats = [
            FeatureConfig(id="stoch_chart", kind="multi_stochastic", params={"variant": "chart"}),
            FeatureConfig(id=f"slope_{p.slope_n}", kind="slope_rule", params={"n": p.slope_n}),
            FeatureConfig(id=f"atr_{p.atr_n}_{p.atr_method}", kind="atr",
                          params={"n": p.atr_n, "method": p.atr_method}),
        ]
        if p.channel_breakout:
            feats.append(FeatureConfig(id=f"linreg_{p.channel_n}", kind="linreg",
                                       params={"n": p.channel_n}))
        if p.mode != "rules":
            feats.append(FeatureConfig(id=p.nn_feature, kind="cnn", params=p.nn_handler_params))
        return feats

    def __init__(self, ctx: StrategyContext, params: SignalParams) -> None:
        self.ctx = ctx
        self.p = params
        self.sides = params.sides
        f = ctx.features
        self._col = {s: f"stoch_chart_{s}" for s in ("s9", "s14", "s40", "s60")}
        self._slope = ctx.output(f"slope_{params.slope_n}", "slope")
        self.atr_column = ctx.output(f"atr_{params.atr_n}_{params.atr_method}", "atr")
        self._lr = f"linreg_{params.channel_n}"
        # the linreg handler's intercept is the fitted value at the current bar: the channel mid
        self._lr_mid = f"{self._lr}_intercept"
        self._lr_slope = f"{self._lr}_slope"
        self._lr_std = f"{self._lr}_std"
        self._prev_close = math.nan
        self._prev_seq = -2
        self._nn = params.nn_feature
        self._last_nn: dict[str, int] = {"long": -(10**9), "short": -(10**9)}
        self._f = f
        self._readers: dict[str, Callable[[int], float]] = {}

    # -- rules ---------------------------------------------------------------------------------
    def _v(self, col: str, seq: int) -> float:
        # one reader per column, made on first use; bounded by the current bar
        r = self._readers.get(col)
        if r is None:
            r = self._readers[col] = self._f.reader(col).at
        return r(seq)  # type: ignore[no-any-return]

    def _quad(self, i: int, close: float) -> Side | None:
        # cheapest test first: on most bars S9 is not extreme and nothing else is read
        if i < 1:
            return None
        v = self._v
        s9 = v(self._col["s9"], i)
        lo, hi = self.p.s9_extreme_pct, 100 - self.p.s9_extreme_pct
        if lo <= s9 <= hi or s9 != s9:
            return None
        s9p = v(self._col["s9"], i - 1)
        o_lo, o_hi = self.p.others_extreme_pct, 100 - self.p.others_extreme_pct
        thr = self.p.slope_threshold_pct
        if s9 < lo:
            if not s9 > s9p:
                return None
            if not all(v(self._col[s], i) < o_lo for s in ("s14", "s40", "s60")):
                return None
            return "long" if 100.0 * v(self._slope, i) / close < -thr else None
        if not s9 < s9p:
            return None
        if not all(v(self._col[s], i) > o_hi for s in ("s14", "s40", "s60")):
            return None
        return "short" if 100.0 * v(self._slope, i) / close > thr else None

    def _breakout(self, i: int, bar: BarClosed) -> Side | None:
        if not self.p.channel_breakout or i < 1:
            return None
        v = self._v
        k = self.p.channel_k
        slope = v(self._lr_slope, i)
        if not slope != 0.0 or slope != slope:
            return None
        mid, std = v(self._lr_mid, i), v(self._lr_std, i)
        if slope < 0:
            if not bar.close > mid + k * std:
                return None
            prev = self._prev(i)
            return "long" if prev <= v(self._lr_mid, i - 1) + k * v(self._lr_std, i - 1) else None
        if not bar.close < mid - k * std:
            return None
        prev = self._prev(i)
        return "short" if prev >= v(self._lr_mid, i - 1) - k * v(self._lr_std, i - 1) else None

    def _prev(self, i: int) -> float:
        """Bar i-1's close: remembered from the previous bar, else read from the store."""
        if self._prev_seq == i - 1:
            return self._prev_close
        return float(self.ctx.bars.window(i, 2).close[0])

    def _nn_signal(self, i: int, side: Side) -> bool:
        col = self.ctx.output(self._nn, "p_buy" if side == "long" else "p_sell")
        w = self._f.window(col, i, self.p.nn_peak_window)
        p = float(w[-1])
        return bool(p > self.p.nn_threshold and p >= np.nanmax(w))

    # -- the bar -------------------------------------------------------------------------------
    def on_bar_closed(self, bar: BarClosed) -> None:
        i = bar.seq
        fired: list[tuple[str, Side, float]] = []
        if self.p.mode in ("rules", "hybrid"):
            for rule, side in (("quad", self._quad(i, bar.close)),
                               ("breakout", self._breakout(i, bar))):
                if side is not None and side in self.sides:
                    if self.p.mode == "rules" or self._confirmed(i, side):
                        fired.append((rule if self.p.mode == "rules" else f"hybrid_{rule}",
                                      side, math.nan))
        if self.p.mode != "rules":
            for side in self.sides:
                if self._nn_signal(i, side) and i - self._last_nn[side] > self.p.refractory_bars:
                    self._last_nn[side] = i
                    if self.p.mode == "nn":
                        col = self.ctx.output(self._nn, "p_buy" if side == "long" else "p_sell")
                        fired.append(("nn", side, self._v(col, i)))
        self._prev_close, self._prev_seq = bar.close, i
        for rule, side, conf in fired:
            self._raise(bar, rule, side, conf)

    def _confirmed(self, i: int, side: Side) -> bool:
        # a model signal of this side within the last hybrid_window bars (inclusive); the nn
        # state is updated before this check on the same bar only in "nn" ordering, so check
        # the probabilities directly over the window
        for j in range(max(0, i - self.p.hybrid_window), i + 1):
            if self._nn_signal(j, side):
                return True
        return False

    def _raise(self, bar: BarClosed, rule: str, side: Side, confidence: float) -> None:
        atr = self._v(self.atr_column, bar.seq)
        if not atr > 0:
            return  # no ATR yet: no stop can be set, so no signal
        entry = bar.close
        sign = 1.0 if side == "long" else -1.0
        stop = entry - sign * self.p.stop_atr_mult * atr
        targets = self._targets(bar.seq, side, entry)
        when = np.datetime_as_string(np.datetime64(bar.ts_event_ns, "ns"), unit="m")
        alarm_id = f"{bar.symbol}_{bar.timeframe}_{when}_{rule}_{side}"
        self.ctx.publish(SignalRaised(
            ts_event_ns=bar.ts_event_ns, ts_init_ns=bar.ts_init_ns, symbol=bar.symbol,
            timeframe=bar.timeframe, seq=bar.seq, alarm_id=alarm_id, rule=rule, side=side,
            entry_price=entry, stop_price=stop, atr=atr, targets=targets, confidence=confidence,
        ))

    def _targets(self, seq: int, side: Side, entry: float) -> tuple[float, ...]:
        for h in self.ctx.feature_handlers.values():
            setup = getattr(h, "target_candidates", None)
            if setup is not None:
                found = tuple(setup(seq, side, entry))
                if found:
                    return found
        sign = 1.0 if side == "long" else -1.0
        return (entry * (1 + sign * self.p.fallback_target_pct / 100),)
