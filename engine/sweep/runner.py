"""A whole sweep: candidates, walk-forward windows, execution, store, selection, diagnostics.

``run_sweep(plan)`` validates every candidate (grid, random) or every range end (TPE) before
anything runs, then runs what the results store does not hold yet, streaming each finished task
into it, and writes the report (``engine.sweep.report``). Rerunning the same sweep reuses every
stored result (resume); ``max_candidates`` stops after the first N candidates, and a rerun
without it goes on from there.
"""

from __future__ import annotations

import hashlib
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
from engine.sweep.execute import (
    ModelJob,
    data_key,
    load_bars,
    make_executor,
    make_tasks,
    share_registries,
)
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
        d = c.resolved["data"]
        k = data_key(d)
        if k not in self.n_bars and k not in self.data_errors:
            try:
                self.n_bars[k] = len(load_bars(d))
            except DataError as exc:
                self.data_errors[k] = f"DataError: {exc}"
            self.ex.preload([d])
        return self.n_bars.get(k)

    def data_error(self, c: Candidate) -> str:
        return self.data_errors[data_key(c.resolved["data"])]

    # -- execution ----------------------------------------------------------------------------
    def evaluate(self, jobs: list[tuple[Candidate, int, int]]) -> dict[str, Result]:
        """Run the jobs the store lacks (grouped into tasks); return every job's result."""
        todo: dict[str, tuple[Candidate, int, int]] = {}
        fresh: dict[str, Result] = {}  # what ran now: not read back (and decoded) from the store
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
                    fresh.update((r.key, r) for r in results)
                    self.ran += len(results)
                    if bar is not None:
                        bar.update(len(results))
            finally:
                if bar is not None:
                    bar.close()
        out = {}
        for c, lo, hi in jobs:
            k = result_key(c.key, lo, hi)
            r = fresh.get(k) or self.store.get(k)
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
    from engine.results import check_output_folder

    out_dir = check_output_folder(out_dir, "--out")  # before any work: a folder we can write
    t0 = time.perf_counter()
    share_registries(plan.registries)  # before the workers fork: they inherit the plugins
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
    failed = store.count_failed()  # counted in SQL: decoding every stored result took longer
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
    if plan.spec.search.method == "tpe":
        results = _plain_tpe(run, limit)
    else:
        results = _plain_grid(run, cands)
    rows = sorted((_row(c, r, result_score(r, obj)) for c, r in results.values()), key=_rank)
    best_row = next((x for x in rows if x["score"] is not None), None)
    best = results[best_row["cand"]][0] if best_row else None
    ok = [(c, r) for c, r in results.values() if r.status == "ok" and r.blocks]
    diag = _plain_diagnostics(run, ok, results[best.key][1] if best else None)
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


def _plain_tpe(run: _Runner, limit: int | None) -> dict[str, tuple[Candidate, Result]]:
    plan = run.plan
    results: dict[str, tuple[Candidate, Result]] = {}
    for f, n in _files(run, plan):
        if n is None:
            continue
        trials = tpe_optimise(plan, 0, n, run.evaluate,
                              n_trials=_cap(plan.spec.search.n_trials, limit) or 1,
                              batch=plan.spec.search.batch or 2 * run.ex.workers,
                              fixed={"data.file": f} if "data.file" in plan.dims else None,
                              on_invalid=_invalid(run))
        for c, _ in trials:
            r = run.store.get(result_key(c.key, 0, n))
            if r is not None:
                results[c.key] = (c, r)
    return results


def _plain_grid(run: _Runner, cands: list[Candidate]) -> dict[str, tuple[Candidate, Result]]:
    jobs, bad = [], []
    for c in cands:
        n = run.bars_of(c)
        (jobs if n is not None else bad).append((c, 0, n or 0))
    for c, lo, hi in bad:
        run.record_failures([(c, lo, hi)], run.data_error(c))
    got = run.evaluate(jobs)
    results = {}
    for c, lo, hi in jobs + bad:
        r = got.get(result_key(c.key, lo, hi)) or run.store.get(result_key(c.key, lo, hi))
        if r is not None:
            results[c.key] = (c, r)
    return results


def _plain_diagnostics(run: _Runner, ok: list[tuple[Candidate, Result]],
                       best: Result | None) -> dict[str, Any]:
    """PBO over the candidates that ran on the same file (the most), DSR of the best."""
    diag: dict[str, Any] = {}
    if not ok:
        return diag
    by_file: dict[str, list[Result]] = {}
    for c, r in ok:
        by_file.setdefault(str(c.config.data.file), []).append(r)
    f, members = max(by_file.items(), key=lambda kv: len(kv[1]))
    blocks = np.asarray([r.blocks for r in members], dtype=np.float64)
    diag["pbo"] = {"file": f, **overfit.pbo_cscv(blocks, run.plan.spec.diagnostics.cscv_splits)}
    if best is not None:
        diag["deflated_sharpe"] = overfit.deflated_sharpe(
            np.asarray(best.blocks, dtype=np.float64),
            [overfit.per_bar_sharpe(r.blocks) for _, r in ok])
    return diag


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
def _fkey(plan: SweepPlan, c: Candidate) -> str:
    """The data file a walk-forward candidate belongs to ("None" when not swept)."""
    return str(c.config.data.file) if "data.file" in plan.dims else "None"


@dataclass
class _WF:
    """A walk-forward's state: windows per data file, the candidates of each window, choices."""

    win_of: dict[str, list[Window]] = field(default_factory=dict)
    by_file: dict[str, list[Candidate]] = field(default_factory=dict)
    n_of: dict[str, int] = field(default_factory=dict)
    per_window: dict[tuple[str, int], list[Candidate]] = field(default_factory=dict)
    chosen: dict[tuple[str, int], tuple[Candidate, float]] = field(default_factory=dict)

    def pick(self, fk: str, k: int) -> Candidate | None:
        got = self.chosen.get((fk, k))
        return got[0] if got else None


def _walk_forward(run: _Runner, cands: list[Candidate], limit: int | None
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], Candidate | None,
                             float | None]:
    plan = run.plan
    wf = plan.spec.walk_forward
    assert wf is not None
    st = _WF()
    if plan.spec.search.method == "tpe":
        _wf_tpe(run, st, limit)
    else:
        _wf_grid(run, st, cands)
    _wf_choose(run, st)
    rows, scatter = _wf_rows(run, st)
    cash = float(plan.base_raw.get("account", {}).get("initial_cash", 10_000.0))
    equity = _wf_equity(run, st, cash)
    retrain = _wf_retrain(run, st, cash, equity) if plan.model_train is not None else None
    in_best_row = next((x for x in rows if x["score"] is not None), None)
    diag: dict[str, Any] = {}
    if in_best_row is not None:
        in_best = next(c for cs in st.per_window.values() for c in cs
                       if c.key == in_best_row["cand"])
        _wf_in_sample_best(run, st, in_best, equity, diag)
    if wf.test_all and plan.spec.search.method != "tpe":
        _wf_pbo(run, st, diag)
    # best.yaml: the params chosen on the last window (what to trade next)
    last = max(st.chosen.items(), key=lambda kv: kv[0][1])[1] if st.chosen else None
    oos_ret = [(e["e"][-1] / cash - 1) * 100 for k, e in equity.items()
               if k.startswith("walk-forward") and e.get("e")]
    summary = {"mode": "walk_forward", "walk_forward": wf.model_dump(),
               "windows": _wf_window_rows(run, st), "diagnostics": diag, "scatter": scatter,
               "scatter_label": "objective on the train window vs the next test window",
               "equity": equity, "best": in_best_row,
               "oos_return_pct": oos_ret[0] if len(oos_ret) == 1 else oos_ret,
               "best_yaml_from": "the params chosen on the last window"}
    if retrain is not None:
        summary["retrain_model"] = retrain
    return summary, rows, (last[0] if last else None), (last[1] if last else None)


def _wf_tpe(run: _Runner, st: _WF, limit: int | None) -> None:
    """A TPE study per window (and data file) on its train bars; with ``test_all`` every trial
    then trades the test window too."""
    plan = run.plan
    wf = plan.spec.walk_forward
    assert wf is not None
    for f, n in _files(run, plan):
        if n is not None:
            st.n_of[str(f)] = n
            st.win_of[str(f)] = windows(n, wf, f"walk_forward ({f})")
    _check_retrain(run, st)
    batch = plan.spec.search.batch or 2 * run.ex.workers
    for fk, ws in st.win_of.items():
        fixed = {"data.file": _file_value(plan, fk)} if "data.file" in plan.dims else None
        for w in ws:
            trials = tpe_optimise(plan, w.train_lo, w.train_hi, run.evaluate,
                                  n_trials=_cap(plan.spec.search.n_trials, limit) or 1,
                                  batch=batch, fixed=fixed, on_invalid=_invalid(run))
            st.per_window[(fk, w.k)] = [c for c, _ in trials]
    if wf.test_all:
        run.evaluate([(c, w.test_lo, w.test_hi) for fk, ws in st.win_of.items() for w in ws
                      for c in st.per_window[(fk, w.k)]])


def _wf_grid(run: _Runner, st: _WF, cands: list[Candidate]) -> None:
    """Every candidate on every train window (and test window with ``test_all``), one batch."""
    plan = run.plan
    wf = plan.spec.walk_forward
    assert wf is not None
    for c in cands:
        n = run.bars_of(c)
        if n is None:
            run.record_failures([(c, 0, 0)], run.data_error(c))
            continue
        fk = _fkey(plan, c)
        st.n_of[fk] = n
        st.win_of.setdefault(fk, windows(n, wf, f"walk_forward ({c.config.data.file})"))
        st.by_file.setdefault(fk, []).append(c)
    _check_retrain(run, st)
    jobs = []
    for fk, ws in st.win_of.items():
        for w in ws:
            st.per_window[(fk, w.k)] = st.by_file[fk]
            jobs += [(c, w.train_lo, w.train_hi) for c in st.by_file[fk]]
            if wf.test_all:
                jobs += [(c, w.test_lo, w.test_hi) for c in st.by_file[fk]]
    run.evaluate(jobs)


def _wf_choose(run: _Runner, st: _WF) -> None:
    """Each window's choice: the best train score (test results are never read here); then
    the chosen candidate trades the test window."""
    obj = run.plan.spec.objective
    for fk, ws in st.win_of.items():
        for w in ws:
            scored = [(result_score(run.store.get(result_key(c.key, w.train_lo, w.train_hi)),
                                    obj), i, c) for i, c in enumerate(st.per_window[(fk, w.k)])]
            ok = [(v, -i, c) for v, i, c in scored if v is not None]
            if ok:
                v, _, c = max(ok, key=lambda t: (t[0], t[1]))  # ties: the first candidate
                st.chosen[(fk, w.k)] = (c, v)
    run.evaluate([(c, w.test_lo, w.test_hi) for fk, ws in st.win_of.items() for w in ws
                  if (c := st.pick(fk, w.k)) is not None])


def _wf_rows(run: _Runner, st: _WF) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per candidate: mean train score, mean test score, windows chosen; and the scatter."""
    plan = run.plan
    obj = plan.spec.objective
    all_c = {c.key: c for cs in st.per_window.values() for c in cs}
    rows, scatter = [], []
    for key, c in all_c.items():
        fk = _fkey(plan, c)
        tr, te, n_chosen = [], [], 0
        status, err = "ok", None
        for w in st.win_of.get(fk, []):
            r = run.store.get(result_key(key, w.train_lo, w.train_hi))
            if r is None:
                continue
            if r.status != "ok":
                status, err = r.status, r.error
            v = result_score(r, obj)
            vt = result_score(run.store.get(result_key(key, w.test_lo, w.test_hi)), obj)
            chosen = st.pick(fk, w.k) is c
            n_chosen += chosen
            tr += [v] if v is not None else []
            te += [vt] if vt is not None else []
            if v is not None and vt is not None:
                scatter.append({"cand": key, "window": w.k, "is": v, "oos": vt,
                                "chosen": chosen})
        rows.append({"cand": key, "strategy": c.strategy, "params": c.param_dict,
                     "score": float(np.mean(tr)) if tr else None,
                     "oos_score": float(np.mean(te)) if te else None,
                     "windows": len(tr), "windows_chosen": n_chosen, "status": status,
                     "error": err})
    rows.sort(key=_rank)
    return rows, scatter


def _wf_window_rows(run: _Runner, st: _WF) -> list[dict[str, Any]]:
    obj = run.plan.spec.objective
    out = []
    for (fk, k), (c, v) in sorted(st.chosen.items()):
        w = st.win_of[fk][k]
        rt = run.store.get(result_key(c.key, w.test_lo, w.test_hi))
        out.append({
            "file": fk, "window": k, "train": [w.train_lo, w.train_hi],
            "test": [w.test_lo, w.test_hi], "cand": c.key, "strategy": c.strategy,
            "params": c.param_dict, "train_score": v, "test_score": result_score(rt, obj),
            "test_return_pct": rt.metrics.get("total_return_pct") if rt else None,
            "test_trades": rt.metrics.get("trades") if rt else None})
    return out


def _wf_equity(run: _Runner, st: _WF, cash: float) -> dict[str, dict[str, list[float]]]:
    """The chosen candidates' test windows stitched, per data file."""
    equity = {}
    for fk, ws in st.win_of.items():
        curves = []
        for w in ws:
            c = st.pick(fk, w.k)
            r = run.store.get(result_key(c.key, w.test_lo, w.test_hi)) if c else None
            if r is not None and r.status == "ok":
                curves.append(r.equity)
        label = "" if fk == "None" else f" ({Path(fk).name})"
        equity[f"walk-forward out-of-sample{label}"] = stitch(curves, cash)
    return equity


def _check_retrain(run: _Runner, st: _WF) -> None:
    """``retrain_model``: refuse train windows too short for the training split up front."""
    mt = run.plan.model_train
    if mt is None:
        return
    from engine.sweep.space import model_trainer

    check = getattr(model_trainer(mt["trainer"]), "check_bars", None)
    for ws in st.win_of.values():
        for n in sorted({w.train_hi - w.train_lo for w in ws}):
            if check is not None:
                check(mt["config"], n, f"{run.plan.source}: walk_forward.retrain_model")


def _model_key(mt: dict[str, Any], data: dict[str, Any], w: Window) -> str:
    blob = json.dumps({"trainer": mt["trainer"], "config": mt["config"], "data": data,
                       "train": [w.train_lo, w.train_hi]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_OOS_KEYS = ("total_return_pct", "sharpe", "profit_factor", "max_drawdown_pct", "trades",
             "win_rate_pct")


def _oos(r: Result | None, obj: Any) -> dict[str, Any]:
    if r is None:
        return {"status": "missing"}
    return {"status": r.status, "error": r.error, "score": result_score(r, obj),
            **{k: r.metrics.get(k) for k in _OOS_KEYS}}


def _diff(a: Any, b: Any) -> float | None:
    ok = all(isinstance(x, int | float) and math.isfinite(x) for x in (a, b))
    return float(a - b) if ok else None


def _wf_retrain(run: _Runner, st: _WF, cash: float,
                equity: dict[str, Any]) -> dict[str, Any]:
    """``walk_forward.retrain_model``: per window, a model trained on that window's train bars
    only (the trainer is handed exactly those bars: no test bar exists for it); the window's
    chosen candidate then trades the test window with ``signals.params.mode: hybrid`` on that
    model, beside the same candidate in ``mode: rules`` (the walk-forward's own test run)."""
    plan = run.plan
    mt = plan.model_train
    assert mt is not None
    obj = plan.spec.objective
    models_dir = (run.out_dir / "models").resolve()
    picks = [(fk, w, c) for fk, ws in st.win_of.items() for w in ws
             if (c := st.pick(fk, w.k)) is not None]
    keys: dict[tuple[str, int], str] = {}
    jobs: dict[str, ModelJob] = {}
    for fk, w, c in picks:
        data = c.resolved["data"]
        k = _model_key(mt, data, w)
        keys[(fk, w.k)] = k
        info = run.store.model(k)
        if info is not None and (info.get("status") != "ok" or Path(info["weights"]).is_file()):
            continue  # trained before (a failure is not retried, as a failed candidate)
        jobs.setdefault(k, ModelJob(k, mt["trainer"], mt["config"], data, w.train_lo,
                                    w.train_hi, str(models_dir), f"w{w.k:02d}-{k}"))
    if jobs:
        models_dir.mkdir(parents=True, exist_ok=True)
        for info in run.ex.map_models(list(jobs.values())):
            run.store.put_model(info["key"], info)
    base_nn = (plan.base_raw["signals"].get("params") or {}).get("nn_handler_params") or {}
    hybrid: dict[tuple[str, int], Candidate] = {}
    for fk, w, c in picks:
        info = run.store.model(keys[(fk, w.k)]) or {}
        if info.get("status") == "ok":
            hybrid[(fk, w.k)] = plan.make(c.strategy, {
                **c.param_dict, "signals.params.mode": "hybrid",
                "signals.params.nn_handler_params": {**base_nn, **info["handler_params"]}})
    run.evaluate([(hybrid[(fk, w.k)], w.test_lo, w.test_hi) for fk, w, _ in picks
                  if (fk, w.k) in hybrid])
    rows = []
    curves: dict[str, list[dict[str, list[float]]]] = {}
    for fk, w, c in picks:
        info = run.store.model(keys[(fk, w.k)]) or {"status": "missing"}
        rk = result_key(c.key, w.test_lo, w.test_hi)
        h = hybrid.get((fk, w.k))
        hk = result_key(h.key, w.test_lo, w.test_hi) if h is not None else None
        rr, rh = run.store.get(rk), (run.store.get(hk) if hk else None)
        rules, hyb = _oos(rr, obj), _oos(rh, obj)
        if rh is not None and rh.status == "ok":
            curves.setdefault(fk, []).append(rh.equity)
        rows.append({
            "file": fk, "window": w.k, "train": [w.train_lo, w.train_hi],
            "test": [w.test_lo, w.test_hi], "cand": c.key, "strategy": c.strategy,
            "params": c.param_dict, "model_key": keys[(fk, w.k)],
            "model": {k: v for k, v in info.items() if k not in ("key", "handler_params")},
            "rules_key": rk, "hybrid_key": hk, "rules": rules, "hybrid": hyb,
            "diff": {k: _diff(hyb.get(k), rules.get(k))
                     for k in ("score", "total_return_pct", "sharpe", "trades")}})
    run.store.put_model_windows(rows)
    out: dict[str, Any] = {"trainer": mt["trainer"], "config": mt["source"], "windows": rows}
    for fk, cs in curves.items():
        label = "" if fk == "None" else f" ({Path(fk).name})"
        equity[f"hybrid, CNN retrained per window{label}"] = stitch(cs, cash)
    both = [r for r in rows if r["diff"]["total_return_pct"] is not None]
    if both:
        out["compounded_return_pct"] = {
            side: float((np.prod([1 + r[side]["total_return_pct"] / 100 for r in both]) - 1)
                        * 100) for side in ("rules", "hybrid")}
        out["hybrid_better_windows"] = sum(r["diff"]["total_return_pct"] > 0 for r in both)
        out["compared_windows"] = len(both)
        out["mean_diff_return_pct"] = float(np.mean([r["diff"]["total_return_pct"]
                                                     for r in both]))
    return out


def _wf_in_sample_best(run: _Runner, st: _WF, best: Candidate,
                       equity: dict[str, Any], diag: dict[str, Any]) -> None:
    """The best mean train score, run on all the bars of its file (in-sample for most of them),
    beside the out-of-sample curve; its deflated Sharpe over every candidate's train Sharpe."""
    fk = _fkey(run.plan, best)
    n = st.n_of[fk]
    r = run.evaluate([(best, 0, n)]).get(result_key(best.key, 0, n))
    if r is None or r.status != "ok":
        return
    equity["in-sample best (all bars)"] = r.equity
    sharpes = []
    for c in {c.key: c for cs in st.per_window.values() for c in cs}.values():
        got = [run.store.get(result_key(c.key, w.train_lo, w.train_hi))
               for w in st.win_of.get(_fkey(run.plan, c), [])]
        v = [overfit.per_bar_sharpe(g.blocks) for g in got
             if g is not None and g.status == "ok" and g.blocks]
        if v:
            sharpes.append(float(np.mean(v)))
    diag["deflated_sharpe"] = overfit.deflated_sharpe(
        np.asarray(r.blocks, dtype=np.float64),
        [s for s in sharpes if math.isfinite(s)] or [0.0])
    diag["deflated_sharpe"]["note"] = "in-sample best over all bars"


def _wf_pbo(run: _Runner, st: _WF, diag: dict[str, Any]) -> None:
    """PBO over the test windows, for the candidates traded on every one of them."""
    if not st.by_file:
        return
    fk, cs = max(st.by_file.items(), key=lambda kv: len(kv[1]))
    mats = []
    for c in cs:
        rs = [run.store.get(result_key(c.key, w.test_lo, w.test_hi)) for w in st.win_of[fk]]
        if all(r is not None and r.status == "ok" for r in rs):
            mats.append([b for r in rs for b in r.blocks])  # type: ignore[union-attr]
    if len(mats) >= 2:
        diag["pbo"] = {"file": fk, "over": "test windows", **overfit.pbo_cscv(
            np.asarray(mats, dtype=np.float64), run.plan.spec.diagnostics.cscv_splits)}


def _file_value(plan: SweepPlan, fk: str) -> Any:
    for v in plan.dims["data.file"].grid("data.file"):
        if str(v) == fk or str(Path(str(v))) == fk:
            return v
    raise ConfigError(f"data.file {fk} is not in the space")
