"""Overfitting diagnostics of a sweep: PBO by CSCV and the deflated Sharpe ratio.

- **PBO** (probability of backtest overfitting, Bailey, Borwein, López de Prado and Zhu 2015):
  the bars are cut into ``S`` groups; for every way of choosing ``S/2`` of them as in-sample,
  the candidate with the best in-sample Sharpe is looked up among all candidates on the other
  half; PBO is the share of splits where it lands below the median out of sample (logit <= 0).
  Near 0: the in-sample winner tends to stay good; near 0.5 or above: selection is noise.
- **Deflated Sharpe ratio** (Bailey and López de Prado 2014): the probability that the best
  Sharpe is above zero after allowing for the number of candidates tried, the spread of their
  Sharpes and the best one's skew and kurtosis; per-bar (not annualised) Sharpes inside.

Both read per-block sufficient statistics of each candidate's bar returns (``n, Σr, Σr², Σr³,
Σr⁴`` per block, from ``engine.sweep.execute``), so nothing per bar is stored.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329


def _sharpe(stats: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe from summed stats (..., 5)."""
    n, s1, s2 = stats[..., 0], stats[..., 1], stats[..., 2]
    mean = s1 / np.maximum(n, 1)
    var = (s2 - n * mean ** 2) / np.maximum(n - 1, 1)
    sd = np.sqrt(np.maximum(var, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / sd, 0.0)


def regroup(blocks: np.ndarray, groups: int) -> np.ndarray:
    """(candidates, blocks, 5) -> (candidates, groups, 5) by summing adjacent blocks."""
    parts = np.array_split(np.arange(blocks.shape[1]), groups)
    return np.stack([blocks[:, p, :].sum(axis=1) for p in parts], axis=1)


def pbo_cscv(blocks: np.ndarray, splits: int = 10) -> dict[str, Any]:
    """PBO over a (candidates, blocks, 5) array of block stats (same blocks for all).

    Returns ``{"pbo", "splits", "combinations", "logits"}``; ``pbo`` is NaN with fewer than two
    candidates or fewer blocks than ``splits``.
    """
    n_cand = blocks.shape[0]
    splits = min(splits, blocks.shape[1] - blocks.shape[1] % 2)
    if n_cand < 2 or splits < 2:
        return {"pbo": math.nan, "splits": splits, "combinations": 0, "logits": []}
    g = regroup(blocks, splits)
    logits = []
    for ins in itertools.combinations(range(splits), splits // 2):
        mask = np.zeros(splits, dtype=bool)
        mask[list(ins)] = True
        sr_in = _sharpe(g[:, mask, :].sum(axis=1))
        sr_out = _sharpe(g[:, ~mask, :].sum(axis=1))
        best = int(np.argmax(sr_in))
        # relative rank of the in-sample winner out of sample, in (0, 1)
        rank = (np.sum(sr_out < sr_out[best]) + 0.5 * (np.sum(sr_out == sr_out[best]) - 1) + 1)
        w = rank / (n_cand + 1)
        logits.append(math.log(w / (1 - w)))
    lg = np.array(logits)
    return {"pbo": float(np.mean(lg <= 0)), "splits": splits, "combinations": len(logits),
            "logits": [round(float(x), 4) for x in lg]}


def _norm_ppf(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _norm_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def deflated_sharpe(best: np.ndarray, all_sharpes: list[float]) -> dict[str, Any]:
    """DSR of the best candidate.

    Args:
        best: its block stats (blocks, 5), summed over the whole series.
        all_sharpes: the per-bar Sharpe of every candidate tried (the trials).
    """
    tot = best.sum(axis=0)
    n, s1, s2, s3, s4 = (float(x) for x in tot)
    trials = len(all_sharpes)
    if n < 3 or trials < 1:
        return {"dsr": math.nan, "sharpe_per_bar": math.nan, "expected_max_sharpe": math.nan,
                "trials": trials}
    mean = s1 / n
    var = s2 / n - mean ** 2
    sd = math.sqrt(max(var, 0.0))
    if sd == 0:
        return {"dsr": math.nan, "sharpe_per_bar": 0.0, "expected_max_sharpe": math.nan,
                "trials": trials}
    m3 = s3 / n - 3 * mean * s2 / n + 2 * mean ** 3
    m4 = s4 / n - 4 * mean * s3 / n + 6 * mean ** 2 * s2 / n - 3 * mean ** 4
    skew = m3 / sd ** 3
    kurt = m4 / sd ** 4
    sr = mean / sd
    v = float(np.var(all_sharpes, ddof=1)) if trials > 1 else 0.0
    if trials > 1 and v > 0:
        sr0 = math.sqrt(v) * ((1 - EULER_GAMMA) * _norm_ppf(1 - 1 / trials)
                              + EULER_GAMMA * _norm_ppf(1 - 1 / (trials * math.e)))
    else:
        sr0 = 0.0
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr ** 2
    z = (sr - sr0) * math.sqrt(n - 1) / math.sqrt(max(denom, 1e-12))
    return {"dsr": _norm_cdf(z), "sharpe_per_bar": sr, "expected_max_sharpe": sr0,
            "trials": trials, "skew": skew, "kurtosis": kurt}


def per_bar_sharpe(blocks: list[list[float]]) -> float:
    if not blocks:
        return math.nan
    return float(_sharpe(np.asarray(blocks, dtype=np.float64).sum(axis=0)))
