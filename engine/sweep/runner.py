"""A whole sweep: candidates, walk-forward windows, execution, store, selection, diagnostics.

``run_sweep(plan)`` validates every candidate (grid, random) or every range end (TPE) before
anything runs, then runs what the results store does not hold yet, streaming each finished task
into it, and writes the report (``engine.sweep.report``). Rerunning the same sweep reuses every
stored result (resume); ``max_candidates`` stops after the first N candidates, and a rerun
without it goes on from there.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError, DataError
from engine.sweep import overfit
from engine.sweep.execute import data_key, load_bars, make_executor, make_tasks
from engine.sweep.search import points, result_score, tpe_optimise
from engine.sweep.space import Candidate, SweepPlan, space_hash, validate_all, validate_ranges
from engine.sweep.store import Result, Store, result_key
from engine.sweep.walkforward import Window, stitch, windows


@dataclass
class SweepOutcome:
    out_dir: Path
    rows: list[dict[str, Any]]
    best: Candidate | None
    best_score: float | None
    summary: dict[str, Any]
    ran: int = 0
    reused: int = 0
    failed: int = 0
    paths: list[Path] = field(default_factory=list)


class _Runner:
    def __init__(self, plan: SweepPlan, out_dir: Path, executor: Any, progress: bool,
                 store: Store) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.ex = executor
        self.progress = progress
        self.store = store
        self.done = store.done_keys()
        self.ran = 0
        self.reused = 0
        self.per_task = plan.spec.execution.per_task
        self.blocks = plan.spec.diagnostics.blocks
        self.n_bars: dict[str, int] = {}
        self.data_errors: dict[str, str] = {}

    # -- data ---------------------------------------------------------------------------------
    def bars_of(self, c: Candidate) -> int | None:
        d = c.config.resolved_dict()["data"]
        k = data_key(d)
        if k not in self.n_bars and k not in self.data_errors:
            try:
                self.n_bars[k] = len(load_bars(d))
            except DataError as exc:
                self.data_errors[k] = f"DataError: {exc}"
            self.ex.preload([d])
        return self.n_bars.get(k)

    def data_error(self, c: Candidate) -> str:
        return self.data_errors[data_key(c.config.resolved_dict()["data"])]

    # -- execution ----------------------------------------------------------------------------
    def evaluate(self, jobs: list[tuple[Candidate, int, int]]) -> dict[str, Result]:
        """Run the jobs the store lacks (grouped into tasks); return every job's result."""
        todo: dict[str, tuple[Candidate, int, int]] = {}
        for c, lo, hi in jobs:
            k = result_key(c.key, lo, hi)
            if k in self.done:
                self.reused += 1
            else:
                todo.setdefault(k, (c, lo, hi))
        if todo:
            tasks = make_tasks(todo.values(), self.per_task, self.blocks,
                               min_tasks=1 if self.ex.workers <= 1 else 2 * self.ex.workers)
            bar = None
            if self.progress:
                from tqdm import tqdm

                tqdm.monitor_interval = 0
                bar = tqdm(total=len(todo), unit="cand", desc=self.plan.spec.name, leave=False,
                           file=sys.stderr)
            try:
                for results in self.ex.run(tasks):
                    self.store.put_many(results)
                    self.done.update(r.key for r in results)
                    self.ran += len(results)
                    if bar is not None:
                        bar.update(len(results))
            finally:
                if bar is not None:
                    bar.close()
        out = {}
        for c, lo, hi in jobs:
            k = result_key(c.key, lo, hi)
            r = self.store.get(k)
            if r is not None:
                out[k] = r
        return out

    def record_failures(self, cands: list[tuple[Candidate, int, int]], error: str) -> None:
        rows = [Result(c.key, lo, hi, c.strategy, c.param_dict, "failed", error)
                for c, lo, hi in cands if result_key(c.key, lo, hi) not in self.done]
        self.store.put_many(rows)
        self.done.update(r.key for r in rows)


def _cap(n: int | None, cap: int | None) -> int | None:
    return cap if n is None else (n if cap is None else min(n, cap))


def run_sweep(plan: SweepPlan, out: Path | None = None, *, max_candidates: int | None = None,
              workers: int | None = None, scheduler: Any = None, progress: bool = True,
              write_report: bool = True) -> SweepOutcome:
    """Run (or resume) a sweep and write its report; see the module docstring.

    Raises:
        ConfigError: an invalid candidate or range (before anything runs).
    """
    spec = plan.spec
    out_dir = Path(out or spec.out or Path("runs") / f"sweep-{spec.name}")
    limit = _cap(spec.max_candidates, max_candidates)
    method = spec.search.method
    if method == "tpe":
        validate_ranges(plan)
        cands: list[Candidate] = []
    else:
        cands = validate_all(plan, points(plan))
        if limit is not None:
            cands = cands[:limit]
    t0 = time.perf_counter()
    ex = make_executor(spec.execution.workers if workers is None else workers,
                       scheduler or spec.execution.scheduler)
    executor = ex.describe()
    store = Store(out_dir / "results.sqlite")
    store.set_meta("space_hash", space_hash(plan))
    run = _Runner(plan, out_dir, ex, progress, store)
    try:
        if spec.walk_forward is None:
            summary, rows, best, best_score = _plain(run, cands, limit)
        else:
            summary, rows, best, best_score = _walk_forward(run, cands, limit)
    finally:
        ex.close()
        elapsed = time.perf_counter() - t0
    failed = sum(1 for r in store.all() if r.status == "failed")
    summary.update({"name": spec.name, "method": method, "objective": spec.objective.model_dump(),
                    "executed": run.ran, "reused": run.reused, "failed_results": failed,
                    "elapsed_s": round(elapsed, 3), "executor": executor,
                    "candidates_per_s": round(run.ran / elapsed, 4) if elapsed > 0 else None})
    outcome = SweepOutcome(out_dir, rows, best, best_score, summary, run.ran, run.reused, failed)
    if write_report:
        from engine.sweep.report import write_all

        outcome.paths = write_all(outcome, plan)
    store.close()
    return outcome


# -- plain sweep (one segment: all the bars) ----------------------------------------------------
def _plain(run: _Runner, cands: list[Candidate], limit: int | None
           ) -> tuple[dict[str, Any], list[dict[str, Any]], Candidate | None, float | None]:
    plan = run.plan
    obj = plan.spec.objective
    results: dict[str, tuple[Candidate, Result]] = {}
    if plan.spec.search.method == "tpe":
        for c0, n in _files(run, plan):
            if n is None:
                continue
            batch = plan.spec.search.batch or 2 * run.ex.workers
            fixed = {"data.file": c0} if "data.file" in plan.dims else None
            trials = tpe_optimise(plan, 0, n, run.evaluate,
                                  n_trials=_cap(plan.spec.search.n_trials, limit) or 1,
                                  batch=batch, fixed=fixed, on_invalid=_invalid(run))
            for c, _ in trials:
                r = run.store.get(result_key(c.key, 0, n))
                if r is not None:
                    results[c.key] = (c, r)
    else:
        jobs, bad = [], []
        for c in cands:
            n = run.bars_of(c)
            (jobs if n is not None else bad).append((c, 0, n or 0))
        for c, lo, hi in bad:
            run.record_failures([(c, lo, hi)], run.data_error(c))
        got = run.evaluate(jobs)
        for c, lo, hi in jobs + bad:
            r = got.get(result_key(c.key, lo, hi)) or run.store.get(result_key(c.key, lo, hi))
            if r is not None:
                results[c.key] = (c, r)
    rows = []
    for c, r in results.values():
        rows.append(_row(c, r, result_score(r, obj)))
    rows.sort(key=_rank)
    best_row = next((x for x in rows if x["score"] is not None), None)
    best = results[best_row["cand"]][0] if best_row else None
    # diagnostics: PBO over candidates that ran on the same file, DSR of the best
    diag: dict[str, Any] = {}
    ok = [(c, r) for c, r in results.values() if r.status == "ok" and r.blocks]
    if ok:
        by_file: dict[str, list[tuple[Candidate, Result]]] = {}
        for c, r in ok:
            by_file.setdefault(str(c.config.data.file), []).append((c, r))
        f, members = max(by_file.items(), key=lambda kv: len(kv[1]))
        blocks = np.asarray([r.blocks for _, r in members], dtype=np.float64)
        diag["pbo"] = {"file": f, **overfit.pbo_cscv(blocks, plan.spec.diagnostics.cscv_splits)}
        if best is not None:
            sharpes = [overfit.per_bar_sharpe(r.blocks) for _, r in ok]
            diag["deflated_sharpe"] = overfit.deflated_sharpe(
                np.asarray(results[best.key][1].blocks, dtype=np.float64), sharpes)
    # in-sample vs out-of-sample without walk-forward: first half of the bars vs second half
    scatter = []
    for c, r in ok:
        b = np.asarray(r.blocks, dtype=np.float64)
        h = b.shape[0] // 2
        scatter.append({"cand": c.key, "is": float(overfit._sharpe(b[:h].sum(axis=0))),
                        "oos": float(overfit._sharpe(b[h:].sum(axis=0))),
                        "chosen": best is not None and c.key == best.key})
    summary = {"mode": "plain", "diagnostics": diag, "scatter": scatter,
               "scatter_label": "per-bar Sharpe, first half of the bars vs second half",
               "best": best_row, "equity": ({"in-sample best": results[best.key][1].equity}
                                            if best is not None else {})}
    return summary, rows, best, (best_row or {}).get("score")


def _rank(row: dict[str, Any]) -> tuple[int, float]:
    s = row.get("score")
    return (0, -s) if s is not None else (1 if row["status"] == "ok" else 2, 0.0)


def _row(c: Candidate, r: Result, s: float | None) -> dict[str, Any]:
    m = r.metrics
    return {"cand": c.key, "strategy": c.strategy, "params": c.param_dict, "score": s,
            "status": r.status, "error": r.error,
            **{k: m.get(k) for k in ("total_return_pct", "sharpe", "profit_factor",
                                     "max_drawdown_pct", "trades", "win_rate_pct")},
            "bars": r.seen_bars}


def _invalid(run: _Runner) -> Any:
    def on_invalid(strategy: str, params: dict[str, Any], error: str) -> None:
        key = "invalid-" + str(abs(hash((strategy, json.dumps(params, sort_keys=True,
                                                               default=str)))))
        run.store.put_many([Result(key, 0, 0, strategy, params, "failed", error)])

    return on_invalid


def _files(run: _Runner, plan: SweepPlan) -> list[tuple[Any, int | None]]:
    """(data.file value, bar count) per data file the sweep covers."""
    files = plan.dims["data.file"].grid("data.file") if "data.file" in plan.dims else [None]
    out = []
    for f in files:
        params = {p: d.ends()[0] for p, d in plan.dims_for(plan.strategies[0]).items()}
        if f is not None:
            params["data.file"] = f
        c = plan.make(plan.strategies[0], params, validate=False)
        out.append((f, run.bars_of(c)))
    return out


# -- walk-forward --------------------------------------------------------------------------------
def _walk_forward(run: _Runner, cands: list[Candidate], limit: int | None
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], Candidate | None,
                             float | None]:
    plan = run.plan
    wf = plan.spec.walk_forward
    assert wf is not None
    obj = plan.spec.objective
    win_of: dict[str, list[Window]] = {}
    by_file: dict[str, list[Candidate]] = {}
    n_of: dict[str, int] = {}
    tpe = plan.spec.search.method == "tpe"
    if tpe:
        for f, n in _files(run, plan):
            if n is not None:
                fk = str(f)
                n_of[fk] = n
                win_of[fk] = windows(n, wf, f"walk_forward ({f})")
    else:
        for c in cands:
            n = run.bars_of(c)
            fk = str(c.config.data.file) if "data.file" in plan.dims else "None"
            if n is None:
                run.record_failures([(c, 0, 0)], run.data_error(c))
                continue
            n_of[fk] = n
            win_of.setdefault(fk, windows(n, wf, f"walk_forward ({c.config.data.file})"))
            by_file.setdefault(fk, []).append(c)
    # train (and, with test_all, test) results of every candidate in every window
    per_window: dict[tuple[str, int], list[Candidate]] = {}
    if tpe:
        batch = plan.spec.search.batch or 2 * run.ex.workers
        for fk, ws in win_of.items():
            fixed = {"data.file": _file_value(plan, fk)} if "data.file" in plan.dims else None
            for w in ws:
                trials = tpe_optimise(plan, w.train_lo, w.train_hi, run.evaluate,
                                      n_trials=_cap(plan.spec.search.n_trials, limit) or 1,
                                      batch=batch, fixed=fixed, on_invalid=_invalid(run))
                per_window[(fk, w.k)] = [c for c, _ in trials]
        if wf.test_all:
            run.evaluate([(c, w.test_lo, w.test_hi) for fk, ws in win_of.items() for w in ws
                          for c in per_window[(fk, w.k)]])
    else:
        jobs = []
        for fk, ws in win_of.items():
            for w in ws:
                per_window[(fk, w.k)] = by_file[fk]
                for c in by_file[fk]:
                    jobs.append((c, w.train_lo, w.train_hi))
                    if wf.test_all:
                        jobs.append((c, w.test_lo, w.test_hi))
        run.evaluate(jobs)
    # selection on train scores only; then the chosen params trade the test window
    chosen: dict[tuple[str, int], tuple[Candidate, float]] = {}
    for fk, ws in win_of.items():
        for w in ws:
            best = None
            for c in per_window[(fk, w.k)]:
                v = result_score(run.store.get(result_key(c.key, w.train_lo, w.train_hi)), obj)
                if v is not None and (best is None or v > best[1]):
                    best = (c, v)
            if best is not None:
                chosen[(fk, w.k)] = best
    run.evaluate([(c, w.test_lo, w.test_hi) for fk, ws in win_of.items() for w in ws
                  if (c := chosen.get((fk, w.k), (None,))[0]) is not None])
    # per-candidate table: mean train score, mean test score, windows chosen
    all_c: dict[str, Candidate] = {c.key: c for cs in per_window.values() for c in cs}
    rows = []
    scatter = []
    window_rows = []
    for key, c in all_c.items():
        fk = str(c.config.data.file) if "data.file" in plan.dims else "None"
        ws = win_of.get(fk, [])
        tr, te, status, err, n_chosen = [], [], "ok", None, 0
        last_metrics: dict[str, Any] = {}
        for w in ws:
            r = run.store.get(result_key(key, w.train_lo, w.train_hi))
            if r is None:
                continue
            if r.status != "ok":
                status, err = r.status, r.error
            v = result_score(r, obj)
            rt = run.store.get(result_key(key, w.test_lo, w.test_hi))
            vt = result_score(rt, obj)
            is_chosen = chosen.get((fk, w.k), (None,))[0] is c
            n_chosen += is_chosen
            if v is not None:
                tr.append(v)
            if vt is not None:
                te.append(vt)
            if v is not None and vt is not None:
                scatter.append({"cand": key, "window": w.k, "is": v, "oos": vt,
                                "chosen": is_chosen})
            last_metrics = r.metrics
        row = {"cand": key, "strategy": c.strategy, "params": c.param_dict,
               "score": float(np.mean(tr)) if tr else None,
               "oos_score": float(np.mean(te)) if te else None, "windows_chosen": n_chosen,
               "status": status, "error": err,
               **{k: last_metrics.get(k) for k in ("total_return_pct", "sharpe", "trades")}}
        rows.append(row)
    for (fk, k), (c, v) in sorted(chosen.items()):
        w = win_of[fk][k]
        rt = run.store.get(result_key(c.key, w.test_lo, w.test_hi))
        window_rows.append({
            "file": fk, "window": k, "train": [w.train_lo, w.train_hi],
            "test": [w.test_lo, w.test_hi], "cand": c.key, "strategy": c.strategy,
            "params": c.param_dict, "train_score": v, "test_score": result_score(rt, obj),
            "test_return_pct": (rt.metrics.get("total_return_pct") if rt else None),
            "test_trades": (rt.metrics.get("trades") if rt else None)})
    rows.sort(key=_rank)
    # the stitched out-of-sample equity beside the in-sample best (best mean train score, run
    # on all the bars of its file: in-sample for most of them)
    equity: dict[str, dict[str, list[float]]] = {}
    cash = plan.spec and float(plan.base_raw.get("account", {}).get("initial_cash", 10_000.0))
    for fk, ws in win_of.items():
        curves = []
        for w in ws:
            pick = chosen.get((fk, w.k))
            r = run.store.get(result_key(pick[0].key, w.test_lo, w.test_hi)) if pick else None
            if r is not None and r.status == "ok":
                curves.append(r.equity)
        label = "" if fk == "None" else f" ({Path(fk).name})"
        equity[f"walk-forward out-of-sample{label}"] = stitch(curves, cash)
    in_best_row = next((x for x in rows if x["score"] is not None), None)
    in_best = all_c[in_best_row["cand"]] if in_best_row else None
    diag: dict[str, Any] = {}
    if in_best is not None:
        fk = str(in_best.config.data.file) if "data.file" in plan.dims else "None"
        full = run.evaluate([(in_best, 0, n_of[fk])])
        r = full.get(result_key(in_best.key, 0, n_of[fk]))
        if r is not None and r.status == "ok":
            equity["in-sample best (all bars)"] = r.equity
            # the trials: every candidate's mean per-bar Sharpe over its train windows
            sharpes = []
            for c in all_c.values():
                ws = win_of.get(str(c.config.data.file) if "data.file" in plan.dims
                                else "None", [])
                got = [run.store.get(result_key(c.key, w.train_lo, w.train_hi)) for w in ws]
                v = [overfit.per_bar_sharpe(g.blocks) for g in got
                     if g is not None and g.status == "ok" and g.blocks]
                if v:
                    sharpes.append(float(np.mean(v)))
            diag["deflated_sharpe"] = overfit.deflated_sharpe(
                np.asarray(r.blocks, dtype=np.float64),
                [s for s in sharpes if math.isfinite(s)] or [0.0])
            diag["deflated_sharpe"]["note"] = "in-sample best over all bars"
    # PBO over the test windows, for candidates traded on every one of them
    if wf.test_all and not tpe:
        fk, cs = max(by_file.items(), key=lambda kv: len(kv[1]), default=("", []))
        mats = []
        for c in cs:
            rs = [run.store.get(result_key(c.key, w.test_lo, w.test_hi)) for w in win_of[fk]]
            if all(r is not None and r.status == "ok" for r in rs):
                mats.append([b for r in rs for b in r.blocks])  # type: ignore[union-attr]
        if len(mats) >= 2:
            diag["pbo"] = {"file": fk, "over": "test windows", **overfit.pbo_cscv(
                np.asarray(mats, dtype=np.float64), plan.spec.diagnostics.cscv_splits)}
    # best.yaml: the params chosen on the last window (what to trade next)
    last = None
    for (_fk, _k), (c, v) in sorted(chosen.items(), key=lambda kv: kv[0][1]):
        last = (c, v)
    oos_curves = [e for k, e in equity.items() if k.startswith("walk-forward")]
    oos_ret = [(e["e"][-1] / cash - 1) * 100 for e in oos_curves if e.get("e")]
    summary = {"mode": "walk_forward", "walk_forward": wf.model_dump(), "windows": window_rows,
               "diagnostics": diag, "scatter": scatter,
               "scatter_label": "objective on the train window vs the next test window",
               "equity": equity, "best": in_best_row,
               "oos_return_pct": oos_ret[0] if len(oos_ret) == 1 else oos_ret,
               "best_yaml_from": "the params chosen on the last window"}
    return summary, rows, (last[0] if last else None), (last[1] if last else None)


def _file_value(plan: SweepPlan, fk: str) -> Any:
    for v in plan.dims["data.file"].grid("data.file"):
        if str(v) == fk or str(Path(str(v))) == fk:
            return v
    raise ConfigError(f"data.file {fk} is not in the space")
