"""PBO by CSCV and the deflated Sharpe ratio on constructed return series; the objective."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.sweep.execute import _block_stats
from engine.sweep.overfit import deflated_sharpe, pbo_cscv, per_bar_sharpe
from engine.sweep.search import score
from engine.sweep.space import ObjectiveConfig


def _blocks(rets: np.ndarray, n: int = 16) -> list[list[float]]:
    return _block_stats(rets, n)


def test_block_stats_give_the_series_sharpe():
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, 4000)
    # sums in blocks, then combined: the same mean/sd as numpy's, to float rounding
    assert per_bar_sharpe(_blocks(r)) == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-9)


def test_pbo_low_when_the_in_sample_winner_stays_best():
    rng = np.random.default_rng(1)
    # candidate k has a true edge k * 0.0004 per bar: the ranking is real and persists
    mats = [_blocks(rng.normal(k * 4e-4, 0.01, 8000)) for k in range(10)]
    out = pbo_cscv(np.asarray(mats), splits=8)
    assert out["combinations"] == 70
    assert out["pbo"] < 0.1


def test_pbo_near_half_when_all_candidates_are_noise():
    # pure noise: the in-sample winner is a coin flip out of sample. One sweep's PBO varies a
    # lot (its splits share data: 0.2..0.9 across seeds), so average 16 independent sweeps
    # (the mean's spread is then about 0.04)
    pbos = []
    for seed in range(16):
        rng = np.random.default_rng(seed)
        mats = [_blocks(rng.normal(0.0, 0.01, 2000)) for _ in range(20)]
        pbos.append(pbo_cscv(np.asarray(mats), splits=10)["pbo"])
    assert 0.35 < float(np.mean(pbos)) < 0.65


def test_pbo_needs_two_candidates():
    one = np.asarray([_blocks(np.zeros(100) + 0.001)])
    assert math.isnan(pbo_cscv(one)["pbo"])


def test_deflated_sharpe_falls_with_more_trials():
    rng = np.random.default_rng(3)
    best = np.asarray(_blocks(rng.normal(5e-4, 0.01, 5000)))
    few = deflated_sharpe(best, list(rng.normal(0, 0.01, 3)))
    many = deflated_sharpe(best, list(rng.normal(0, 0.01, 300)))
    assert 0 <= many["dsr"] < few["dsr"] <= 1
    assert many["expected_max_sharpe"] > few["expected_max_sharpe"] > 0
    strong = deflated_sharpe(np.asarray(_blocks(rng.normal(3e-3, 0.01, 5000))),
                             list(rng.normal(0, 0.01, 300)))
    assert strong["dsr"] > 0.99


def test_objective_metrics_and_constraints():
    m = {"sharpe": 1.5, "total_return_pct": 12.0, "profit_factor": math.inf,
         "max_drawdown_pct": -8.0, "trades": 20}
    assert score(m, ObjectiveConfig(metric="sharpe")) == 1.5
    assert score(m, ObjectiveConfig(metric="return")) == 12.0
    assert score(m, ObjectiveConfig(metric="profit_factor")) == 100.0  # capped
    assert score(m, ObjectiveConfig(metric="penalised_return", dd_penalty=0.5)) == 8.0
    assert score(m, ObjectiveConfig(min_trades=21)) is None
    assert score(m, ObjectiveConfig(max_drawdown_pct=5)) is None
    assert score({**m, "sharpe": math.nan}, ObjectiveConfig()) is None
