"""Search strategies and the objective: grid, random, Optuna TPE with pruning.

- ``grid``: every combination (strategy by strategy), in a fixed order;
- ``random``: ``n_trials`` points drawn with ``seed`` (duplicates dropped);
- ``tpe``: Optuna's TPE sampler (seeded) through ask/tell in rounds of ``batch`` trials, so a
  round runs in parallel. With ``prune``, each trial first runs on the first
  ``prune_stage_frac`` of the bars; Optuna's ``MedianPruner`` stops trials whose first-stage
  score is below the median of the trials before them, and only the others run on all the
  bars. The strategy is a categorical dimension; ``strategies[NAME]`` params are only
  suggested when NAME is drawn (a conditional space).

The objective turns a run's metrics into one number (higher is better) or ``None`` when the
candidate breaks a constraint (fewer than ``min_trades`` trades, a deeper drawdown than
``max_drawdown_pct``): such candidates are recorded but never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.sweep.space import Candidate, SweepPlan, grid
from engine.sweep.store import Result

PF_CAP = 100.0  # a profit factor with no losing trade is infinite: capped to rank
INELIGIBLE = -1e6  # what TPE is told for a failed or ineligible trial


def score(metrics: dict[str, Any], objective: Any) -> float | None:
    """The objective value of a run's metrics, or None when a constraint fails."""
    if not metrics:
        return None
    if metrics.get("trades", 0) < objective.min_trades:
        return None
    dd = abs(float(metrics.get("max_drawdown_pct", 0.0)))
    if objective.max_drawdown_pct is not None and dd > objective.max_drawdown_pct:
        return None
    m = objective.metric
    if m == "sharpe":
        v = float(metrics["sharpe"])
    elif m == "return":
        v = float(metrics["total_return_pct"])
    elif m == "profit_factor":
        v = min(float(metrics["profit_factor"]), PF_CAP)
    else:
        v = float(metrics["total_return_pct"]) - objective.dd_penalty * dd
    return v if math.isfinite(v) else None


def result_score(r: Result | None, objective: Any) -> float | None:
    if r is None or r.status != "ok":
        return None
    return score(r.metrics, objective)


def points(plan: SweepPlan, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Grid or random points (strategy, params), capped at ``limit``."""
    s = plan.spec.search
    if s.method == "grid":
        pts = grid(plan)
    else:
        rng = np.random.default_rng(s.seed)
        pts = []
        seen = set()
        tries = 0
        n = s.n_trials if limit is None else min(s.n_trials, limit)
        while len(pts) < n and tries < 50 * n:
            tries += 1
            strat = plan.strategies[int(rng.integers(len(plan.strategies)))]
            p = {k: d.sample(rng) for k, d in plan.dims_for(strat).items()}
            key = (strat, tuple(sorted((k, repr(v)) for k, v in p.items())))
            if key not in seen:
                seen.add(key)
                pts.append((strat, p))
    return pts if limit is None else pts[:limit]


Evaluate = Callable[[list[tuple[Candidate, int, int]]], dict[str, Result]]


def tpe_optimise(plan: SweepPlan, lo: int, hi: int, evaluate: Evaluate, *, n_trials: int,
                 batch: int, fixed: dict[str, Any] | None = None,
                 on_invalid: Callable[[str, dict[str, Any], str], None] | None = None
                 ) -> list[tuple[Candidate, float | None]]:
    """One TPE study over bars ``lo:hi``; returns every completed trial and its score.

    Args:
        evaluate: runs ``(candidate, lo, hi)`` jobs, returns results by store key.
        fixed: paths held at a value in this study (e.g. ``data.file`` per file).
        on_invalid: called for a suggested point the models refuse (strategy, params, error).
    """
    import optuna

    from engine.errors import ConfigError
    from engine.sweep.store import result_key

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = plan.spec.search
    obj = plan.spec.objective
    sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=min(10, n_trials))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=max(5, batch), n_warmup_steps=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    fixed = fixed or {}
    stage_hi = lo + max(50, int((hi - lo) * s.prune_stage_frac))
    prune = s.prune and stage_hi < hi
    done: list[tuple[Candidate, float | None]] = []
    asked = 0
    while asked < n_trials:
        trials = []
        for _ in range(min(batch, n_trials - asked)):
            t = study.ask()
            asked += 1
            strat = (t.suggest_categorical("strategy", plan.strategies)
                     if len(plan.strategies) > 1 else plan.strategies[0])
            params = {}
            for p, d in plan.dims_for(strat).items():
                params[p] = fixed[p] if p in fixed else d.suggest(t, p)
            try:
                c = plan.make(strat, params)
            except ConfigError as exc:
                if on_invalid is not None:
                    on_invalid(strat, params, str(exc))
                study.tell(t, state=optuna.trial.TrialState.FAIL)
                continue
            trials.append((t, c))
        live = trials
        if prune:
            res = evaluate([(c, lo, stage_hi) for _, c in trials])
            live = []
            for t, c in trials:
                v = result_score(res.get(result_key(c.key, lo, stage_hi)), obj)
                t.report(INELIGIBLE if v is None else v, 0)
            for t, c in trials:
                if t.should_prune():
                    study.tell(t, state=optuna.trial.TrialState.PRUNED)
                else:
                    live.append((t, c))
        res = evaluate([(c, lo, hi) for _, c in live])
        for t, c in live:
            v = result_score(res.get(result_key(c.key, lo, hi)), obj)
            study.tell(t, INELIGIBLE if v is None else v)
            done.append((c, v))
    return done
