"""Causality by API: strategies and exit plugins read features only up to the current bar.

The context they get holds a ``FeatureView`` (no ``backing()``); its fast per-column reader
``reader(name).at(seq)`` is bounded by the bar store like ``value`` and ``window``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from adapters.csv_feed import CsvFeed
from engine.bars import BarStore, LookaheadError
from engine.bootstrap import Registries, build_engine
from engine.config import FeatureConfig, RunConfig
from engine.datafile import load_bars
from engine.events import BarClosed
from engine.features import FeatureStore, FeatureView
from engine.registry import ENTRY_RULES, Registry

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
TF = 15 * 60 * 10**9


class _NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NextBarReader:
    """Reads the stochastic %K of the *next* bar through the fast reader: the API refuses."""

    Params = _NoParams
    seen: list[object] = []

    @staticmethod
    def required_features(p: _NoParams) -> list[FeatureConfig]:
        return [FeatureConfig(id="stoch_14_3_3", kind="stochastic",
                              params={"k": 14, "k_smooth": 3, "d_smooth": 3})]

    def __init__(self, ctx, params) -> None:
        self.ctx = ctx
        NextBarReader.seen.append(ctx.features)
        self.k = ctx.features.reader(ctx.output("stoch_14_3_3", "k")).at

    def on_bar_closed(self, bar: BarClosed) -> None:
        self.k(bar.seq)  # allowed: the current bar
        if bar.seq == 100:
            self.k(bar.seq + 1)  # precomputed in the backtest, but not revealed yet


def _run(kind: str, bars: int = 300):
    reg = Registries()
    rules = {n: reg.strategies.load(n) for n in reg.strategies.names()}
    reg.strategies = Registry.from_mapping(ENTRY_RULES, {**rules, "next_bar": NextBarReader})
    cfg = RunConfig.model_validate({"data": {"file": "unused.csv"},
                                    "strategies": [{"name": "s", "kind": kind}]})
    eng = build_engine(cfg, reg, feed=CsvFeed.from_bars(load_bars(BUNDLED).slice(0, bars)))
    eng.run()
    return eng


def test_a_strategy_reading_the_next_bar_gets_lookahead_error():
    NextBarReader.seen.clear()
    with pytest.raises(Exception) as info:
        _run("next_bar")
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__
    assert any(isinstance(e, LookaheadError) for e in chain), chain
    assert "seq 101" in str(info.value) and "0..100" in str(info.value)
    # the context held the read-only face: the handler's unbounded backing() is out of reach
    view = NextBarReader.seen[0]
    assert isinstance(view, FeatureView) and not isinstance(view, FeatureStore)
    assert not hasattr(view, "backing")


def test_built_in_strategies_and_exit_plugins_get_the_view():
    eng = _run("stoch_cross", bars=400)
    strat = eng.strategies["s"]
    assert not hasattr(strat.ctx.features, "backing")
    assert eng.accounts["s"].trades  # it still trades through the bounded reads


def _store(n: int) -> tuple[BarStore, FeatureStore]:
    store = BarStore("X", "15m", TF, capacity=16)
    feats = FeatureStore(store)
    feats.add("f")
    for i in range(n):
        store.append(i * TF, 1.0, 1.0, 1.0, 1.0, 1.0)
        feats.set("f", i, float(i))
    return store, feats


def test_reader_is_bounded_by_the_revealed_bars_in_a_replay():
    # a precomputed column holds every bar's value; the reader shows only the revealed ones
    from engine.bars import Bars

    n = 50
    ts = np.arange(n, dtype=np.int64) * TF
    ones = np.ones(n)
    store = BarStore.preloaded(Bars("X", "15m", TF, ts, ones, ones, ones, ones, ones))
    feats = FeatureStore(store)
    feats.add("f")
    feats.backing("f")[:n] = np.arange(n, dtype=float)  # as a handler's precompute does
    at = feats.view().reader("f").at
    for _ in range(10):
        store.reveal_next()
    assert at(9) == 9.0 and at(0) == 0.0
    with pytest.raises(LookaheadError, match=r"'f' at seq 10 .* only bars 0..9"):
        at(10)
    store.reveal_next()
    assert at(10) == 10.0


def test_reader_follows_a_live_store_that_grows():
    store, feats = _store(10)
    at = feats.view().reader("f").at
    assert at(9) == 9.0
    for i in range(10, 200):  # past the column's first capacity: the store regrows it
        store.append(i * TF, 1.0, 1.0, 1.0, 1.0, 1.0)
        feats.set("f", i, float(i))
        assert at(i) == float(i)
    store.append(200 * TF, 1.0, 1.0, 1.0, 1.0, 1.0)  # revealed, not computed yet: NaN
    assert math.isnan(at(200))
    with pytest.raises(LookaheadError):
        at(201)


def test_reader_of_a_missing_column_says_which_exist():
    _, feats = _store(3)
    with pytest.raises(Exception, match=r"'nope' does not exist; columns: \['f'\]"):
        feats.view().reader("nope")


def test_a_negative_seq_is_refused_not_read_from_the_end_of_the_column():
    # in a replay the column's end is the last bar of the data: index -1 would be the future
    store, feats = _store(20)
    view = feats.view()
    for read in (lambda: view.reader("f").at(-1), lambda: view.value("f", -1),
                 lambda: view.window("f", -1, 5)):
        with pytest.raises(LookaheadError, match="negative seq -1"):
            read()
