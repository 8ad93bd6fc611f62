from __future__ import annotations

from pathlib import Path

from adapters.csv_feed import CsvFeed
from engine.bootstrap import Registries, build_engine
from engine.cli import main
from engine.config import RunConfig
from engine.lookahead import check_lookahead
from engine.registry import ENTRY_RULES, FEATURE_HANDLERS, Registry
from tests.fixtures.plugins.leaky import CenteredMean, PeekingStrategy

ROOT = Path(__file__).resolve().parents[2]


def _registries():
    reg = Registries()
    feats = {n: reg.features.load(n) for n in ("stochastic", "atr")}
    rules = {n: reg.strategies.load(n) for n in ("stoch_cross",)}
    reg.features = Registry.from_mapping(FEATURE_HANDLERS, {**feats, "centered": CenteredMean})
    reg.strategies = Registry.from_mapping(ENTRY_RULES, {**rules, "peeking": PeekingStrategy})
    return reg


def _config(strategies, features=()):
    return RunConfig.model_validate({"data": {"file": "unused.csv"}, "features": list(features),
                                     "strategies": strategies})


def test_catches_a_leaky_handler_and_a_peeking_strategy(real_bars):
    reg = _registries()
    cfg = _config([{"name": "peek", "kind": "peeking"}, {"name": "good", "kind": "stoch_cross"}],
                  [{"id": "smooth", "kind": "centered"}])
    bars = real_bars.slice(0, 3000)
    report = check_lookahead(
        cfg, bars, lambda c, b: build_engine(c, reg, feed=CsvFeed.from_bars(b))
    )
    v = report.verdicts
    assert not v["feature:smooth_mean"].ok
    assert not v["strategy:peek"].ok
    assert v["strategy:good"].ok and v["feature:stoch_14_3_3_k"].ok
    assert "LEAK  feature:smooth_mean" in report.summary()


def test_builtins_pass_through_the_cli(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["check-lookahead", "configs/default.yaml", "--bars", "6000"]) == 0
    assert "no lookahead found" in capsys.readouterr().out
