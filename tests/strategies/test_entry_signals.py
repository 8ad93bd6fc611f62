"""The shared entry-signal rule (strategies/entry.py) against the written rules.

Rules mode is checked on the real data against an independent numpy re-derivation from the same
feature columns; nn and hybrid modes with a stand-in model handler whose probabilities are
hand-placed, so where a signal must (and must not) fire is known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.csv_feed import CsvFeed
from engine.bootstrap import Registries, build_engine
from engine.config import FeatureConfig, RunConfig
from engine.events import SignalRaised
from engine.registry import FEATURE_HANDLERS, Registry
from strategies.entry import SignalParams


def _run(bars, signals: dict, reg: Registries | None = None):
    cfg = RunConfig.model_validate({
        "data": {"file": "unused.csv"},
        "features": [{"id": "vp", "kind": "volume_profile"}],
        "signals": {"kind": "signals", "params": signals},
        "strategies": [{"name": "t", "kind": "trailing_stop"}],
        "execution": {"workers": 1},
    })
    eng = build_engine(cfg, reg, feed=CsvFeed.from_bars(bars))
    got: list[SignalRaised] = []
    eng.bus.subscribe(SignalRaised, got.append, priority=10_000, name="test-record")
    eng.run()
    return eng, got


# -- rules ---------------------------------------------------------------------------------------
def test_rule_signals_follow_the_written_rules_on_real_data(real_bars):
    bars = real_bars.slice(20_000, 32_000)
    eng, got = _run(bars, {"mode": "rules"})
    f, n = eng.features, len(bars)
    col = {k: f.column(k)[:n] for k in f.names()}
    s9, s14, s40, s60 = (col[f"stoch_chart_{s}"] for s in ("s9", "s14", "s40", "s60"))
    close = bars.close
    slope_pct = 100 * col["slope_20_slope"] / close
    p = SignalParams()
    prev = np.r_[np.nan, s9[:-1]]
    with np.errstate(invalid="ignore"):
        quad_long = ((slope_pct < -p.slope_threshold_pct) & (s9 < 20) & (s14 < 25) & (s40 < 25)
                     & (s60 < 25) & (s9 > prev))
        quad_short = ((slope_pct > p.slope_threshold_pct) & (s9 > 80) & (s14 > 75) & (s40 > 75)
                      & (s60 > 75) & (s9 < prev))
        mid, std, sl = (col[f"linreg_100_{k}"] for k in ("intercept", "std", "slope"))
        up, dn = mid + 2 * std, mid - 2 * std
        pc = np.r_[np.nan, close[:-1]]
        brk_long = (sl < 0) & (close > up) & (pc <= np.r_[np.nan, up[:-1]])
        brk_short = (sl > 0) & (close < dn) & (pc >= np.r_[np.nan, dn[:-1]])
    atr_ok = col["atr_14_sma_atr"] > 0
    want = set()
    for rule, side, mask in (("quad", "long", quad_long), ("quad", "short", quad_short),
                             ("breakout", "long", brk_long), ("breakout", "short", brk_short)):
        want |= {(int(i), rule, side) for i in np.flatnonzero(mask & atr_ok)}
    have = {(s.seq, s.rule, s.side) for s in got}
    assert len(want) > 50 and {r for _, r, _ in want} == {"quad", "breakout"}
    assert have == want
    # the trade setup on every signal: the close, a 4.5 ATR stop, targets beyond the entry
    for s in got[:200]:
        sign = 1 if s.side == "long" else -1
        assert s.entry_price == close[s.seq]
        assert s.stop_price == pytest.approx(s.entry_price - sign * 4.5 * s.atr)
        assert s.targets and all(sign * (t - s.entry_price) > 0 for t in s.targets)
        assert s.confidence != s.confidence  # NaN: a rule has no confidence


def test_alarm_ids_are_unique_per_bar_rule_and_side(real_bars):
    _, got = _run(real_bars.slice(20_000, 32_000), {"mode": "rules"})
    ids = [s.alarm_id for s in got]
    assert len(ids) == len(set(ids))
    s = got[0]
    assert s.alarm_id.startswith(f"{s.symbol}_{s.timeframe}_") and s.alarm_id.endswith(
        f"_{s.rule}_{s.side}")


def test_sides_restricts_and_parameters_are_validated(real_bars):
    _, got = _run(real_bars.slice(20_000, 26_000), {"mode": "rules", "sides": ["short"]})
    assert got and {s.side for s in got} == {"short"}
    for bad in ({"sides": ["long", "long"]}, {"nn_threshold": 1.5}, {"s9_extreme_pct": 60},
                {"mode": "magic"}, {"no_such_key": 1}):
        with pytest.raises(ValidationError):
            SignalParams.model_validate(bad)


# -- nn and hybrid, with hand-placed probabilities -------------------------------------------------
class _ProbParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    p_buy: dict[int, float] = {}
    p_sell: dict[int, float] = {}


class HandPlacedModel:
    """A stand-in for the cnn handler: p_buy/p_sell 0.1 except at the given bars."""

    Params = _ProbParams
    warmup_bars = 0

    def __init__(self, id, params, bars, features):
        self.p, self.bars, self.features = params, bars, features
        self.outputs = tuple(f"{id}_{k}" for k in ("p_hold", "p_buy", "p_sell"))
        for c in self.outputs:
            features.add(c)

    def _write(self, i: int) -> None:
        b, s = self.p.p_buy.get(i, 0.1), self.p.p_sell.get(i, 0.1)
        for c, v in zip(self.outputs, (1 - b - s, b, s), strict=True):
            self.features.set(c, i, v)

    def precompute(self) -> None:
        for i in range(self.bars.loaded):
            self._write(i)

    def on_bar_closed(self, bar) -> None:
        self._write(bar.seq)


def _reg():
    reg = Registries()
    installed = {n: reg.features.load(n) for n in reg.features.names()}
    reg.features = Registry.from_mapping(FEATURE_HANDLERS, {**installed, "cnn": HandPlacedModel})
    return reg


def test_nn_signals_use_only_past_peaks_threshold_and_refractory(real_bars):
    bars = real_bars.slice(30_000, 31_000)
    p_buy = {300: 0.5, 305: 0.6, 310: 0.4, 400: 0.25, 500: 0.9, 520: 0.95, 600: 0.7}
    # 300 fires (above 0.30, highest of the past 30); 305 is a higher peak but within the
    # 10-bar refractory; 310 is not the highest of its past 30 bars (305 was 0.6); 400 is under
    # the threshold; 500 fires; 520 is after the refractory and a new high: fires; 600 fires
    # (the 0.95 at 520 is more than 30 bars back)
    params = {"mode": "nn", "nn_handler_params": {"p_buy": p_buy, "p_sell": {700: 0.8}},
              "channel_breakout": False}
    _, got = _run(bars, params, _reg())
    buys = [s.seq for s in got if s.side == "long"]
    assert buys == [300, 500, 520, 600]
    assert [s.seq for s in got if s.side == "short"] == [700]
    assert all(s.rule == "nn" for s in got)
    assert got[0].confidence == 0.5 and not math.isnan(got[0].confidence)


def test_hybrid_needs_a_model_signal_of_the_same_side_in_the_window(real_bars):
    bars = real_bars.slice(20_000, 32_000)
    _, rules = _run(bars, {"mode": "rules"})
    first = rules[0]
    key = "p_buy" if first.side == "long" else "p_sell"
    other = [s for s in rules if s.seq > first.seq + 40]
    probs = {key: {first.seq - 5: 0.8}}  # confirms the first rule event only
    params = {"mode": "hybrid", "hybrid_window": 20, "nn_handler_params": probs}
    _, got = _run(bars, params, _reg())
    assert [(s.seq, s.side) for s in got] == [
        (s.seq, s.side) for s in rules if s.seq == first.seq]
    assert got[0].rule == f"hybrid_{first.rule}"
    assert other  # the later rule events exist and were not confirmed
    probs = {key: {first.seq - 25: 0.8}}  # outside the 20-bar window: no confirmation
    _, got = _run(bars, {**params, "nn_handler_params": probs}, _reg())
    assert [s for s in got if s.seq == first.seq] == []


def test_an_exit_plugin_gets_the_volume_profile_it_declares(real_bars):
    """``required_features`` -> [VOLUME_PROFILE]: the engine sets one up when the config has
    none, and uses the configured one (whatever its id and settings) when it has one."""
    cfg = RunConfig.model_validate({
        "data": {"file": "unused.csv"},
        "signals": {"kind": "signals", "params": {"mode": "rules"}},
        "strategies": [{"name": "t", "kind": "trailing_stop"}],
    })
    eng = build_engine(cfg, feed=CsvFeed.from_bars(real_bars.slice(0, 500)))
    assert type(eng.handlers["vp"]).__name__ == "VolumeProfileHandler"
    mine = cfg.model_copy(update={"features": [
        FeatureConfig(id="profile", kind="volume_profile", params={"mode": "range"})]})
    eng = build_engine(mine, feed=CsvFeed.from_bars(real_bars.slice(0, 500)))
    kinds = [type(h).__name__ for h in eng.handlers.values()]
    assert "vp" not in eng.handlers and kinds.count("VolumeProfileHandler") == 1
    assert eng.handlers["profile"].params.mode == "range"


def test_an_api_1_0_plugin_without_its_volume_profile_is_refused_before_the_run(real_bars):
    """A plugin of API 1.0 declares handler methods (NEEDS_HANDLERS): still checked."""
    from engine.errors import ConfigError
    from engine.registry import EXIT_STRATEGIES

    reg = Registries()
    base = reg.exits.load("trailing_stop")
    legacy = type("Legacy", (), {"API_VERSION": 1, "NEEDS_HANDLERS": ("window_profile",),
                                 "Params": base.Params, "plan": base.plan,
                                 "on_bar": base.on_bar, "__init__": base.__init__})
    reg.exits = Registry.from_mapping(EXIT_STRATEGIES, {"legacy": legacy})
    cfg = RunConfig.model_validate({
        "data": {"file": "unused.csv"},
        "signals": {"kind": "signals", "params": {"mode": "rules"}},
        "strategies": [{"name": "t", "kind": "legacy"}],
    })
    with pytest.raises(ConfigError, match=r"'t' \(exit plugin 'legacy'\) reads a feature "
                                          r"handler offering window_profile\(\).*kind: volume_pro"):
        build_engine(cfg, reg, feed=CsvFeed.from_bars(real_bars.slice(0, 500)))
