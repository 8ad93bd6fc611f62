"""Sweeps end to end on ~3,000 synthetic bars: results equal runs by hand, failures are
recorded, an interrupted sweep resumes without redoing work, TPE and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from engine.bootstrap import build_engine
from engine.cli import main
from engine.results import all_metrics
from engine.sweep.execute import Member, Task, make_tasks, run_task
from engine.sweep.runner import run_sweep
from engine.sweep.search import points
from engine.sweep.space import validate_all
from engine.sweep.store import Store

from .conftest import GAPPY, SMALL_END, SMALL_SPACE, SYNTH, sweep_dict, write_sweep

# metrics compared: everything an objective or the table reads
KEYS = ("total_return_pct", "sharpe", "profit_factor", "max_drawdown_pct", "trades",
        "win_rate_pct", "final_equity", "fees_paid", "bars")


def _same(a: dict, b: dict) -> None:
    for k in KEYS:
        # the same code on the same bars in the same order: bit-identical, no tolerance
        assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), (k, a[k], b[k])


def _by_hand(cand) -> dict:
    eng = build_engine(cand.config)
    eng.run()
    return all_metrics(eng.accounts, eng.store)[cand.strategy]


def test_grid_equals_each_candidate_run_by_hand(plan_of, tmp_path):
    plan = plan_of(sweep_dict())
    out = run_sweep(plan, tmp_path / "o", progress=False)
    cands = {c.key: c for c in validate_all(plan, points(plan))}
    assert len(out.rows) == len(cands) == 8
    assert out.failed == 0 and out.ran == 8
    store = Store(tmp_path / "o" / "results.sqlite")
    results = store.all()
    assert len(results) == 8
    # exit-only variants shared a pass: 8 candidates in 2 engine runs (one per stop_atr_mult)
    assert len(make_tasks([(c, 0, 1) for c in cands.values()], 0, 8)) == 2
    for r in results:
        _same(r.metrics, _by_hand(cands[r.cand]))
        assert r.seen_bars == r.metrics["bars"] == 2000
    # ranking by the objective, best first
    scores = [x["score"] for x in out.rows if x["score"] is not None]
    assert scores == sorted(scores, reverse=True)
    assert out.best is not None and out.best.key == out.rows[0]["cand"]


def test_best_yaml_runs_with_tradebot_run(plan_of, tmp_path, capsys):
    plan = plan_of(sweep_dict())
    out = run_sweep(plan, tmp_path / "o", progress=False)
    best = tmp_path / "o" / "best.yaml"
    assert best in out.paths
    assert main(["run", str(best), "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    got = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert list(got) == [out.best.strategy]
    m = got[out.best.strategy]
    assert m["sharpe"] == pytest.approx(out.rows[0]["sharpe"], rel=1e-12)
    assert m["trades"] == out.rows[0]["trades"]
    html = (tmp_path / "o" / "sweep.html").read_text()
    assert "Top 20" in html and "plotly.min.js" in html and "Parameter importance" in html
    assert (tmp_path / "o" / "plotly.min.js").stat().st_size > 1_000_000
    assert (tmp_path / "o" / "sweep.png").stat().st_size > 10_000


def test_cli_sweep_prints_table_and_writes_report(tmp_path, capsys):
    p = write_sweep(tmp_path, sweep_dict(space={"signals.params.stop_atr_mult": [3.5, 4.5]}))
    assert main(["sweep", str(p), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4 candidates, 4 runs executed, 0 reused, 0 failed" in text
    assert "PBO (CSCV)" in text and "deflated Sharpe" in text
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert 0.0 <= summary["diagnostics"]["pbo"]["pbo"] <= 1.0


def test_resume_after_stopping_runs_nothing_twice(plan_of, tmp_path):
    plan = plan_of(sweep_dict(space=SMALL_SPACE))
    first = run_sweep(plan, tmp_path / "o", max_candidates=3, progress=False, write_report=False)
    assert first.ran == 3 and len(first.rows) == 3
    second = run_sweep(plan, tmp_path / "o", progress=False, write_report=False)
    assert second.ran == 3 and second.reused == 3  # only the missing three ran
    third = run_sweep(plan, tmp_path / "o", progress=False, write_report=False)
    assert third.ran == 0 and third.reused == 6
    fresh = run_sweep(plan, tmp_path / "fresh", progress=False, write_report=False)

    def table(o):
        return [(r["cand"], r["score"], r["trades"]) for r in o.rows]

    assert table(second) == table(third) == table(fresh)


def test_resume_after_a_killed_sweep(tmp_path):
    """A sweep killed mid-way (SIGKILL) resumes from what its store holds."""
    import os
    import signal
    import subprocess
    import sys
    import time

    d = sweep_dict(execution={"workers": 1, "per_task": 1}, space=SMALL_SPACE)
    p = write_sweep(tmp_path, d)
    db = tmp_path / "o" / "results.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sweep", str(p), "--out",
                             str(tmp_path / "o"), "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    done = Store(db).count()
                except Exception:
                    done = 0
                if done >= 2:
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = Store(db).count()
    if before >= 6:
        pytest.skip("the sweep finished before it could be killed (machine too fast)")
    assert before >= 2
    from engine.sweep.space import load_sweep

    again = run_sweep(load_sweep(p), tmp_path / "o", progress=False, write_report=False)
    assert again.ran == 6 - before and again.reused == before
    assert Store(db).count() == 6


def test_failing_candidate_recorded_and_sweep_goes_on(plan_of, tmp_path):
    d = sweep_dict(space={"data.file": [str(SYNTH), str(GAPPY)],
                          "signals.params.stop_atr_mult": [3.5, 4.5]})
    d["run"]["data"].pop("end")
    d["run"]["data"]["end"] = SMALL_END
    plan = plan_of(d)
    out = run_sweep(plan, tmp_path / "o", progress=False, write_report=False)
    bad = [r for r in out.rows if r["status"] == "failed"]
    good = [r for r in out.rows if r["status"] == "ok"]
    assert len(bad) == 4 and len(good) == 4
    assert all("GAPPY" in r["error"] and "DataError" in r["error"] for r in bad)
    assert all(r["params"]["data.file"] == str(GAPPY) for r in bad)
    assert out.best is not None and str(out.best.config.data.file) == str(SYNTH)
    # recorded, so a rerun does not retry them
    assert run_sweep(plan, tmp_path / "o", progress=False, write_report=False).ran == 0


def test_a_failing_member_does_not_sink_its_group(plan_of):
    plan = plan_of(sweep_dict(space={"signals.params.stop_atr_mult": [4.5]}))
    c = validate_all(plan, points(plan))[0]
    good = Member(c.key, c.strategy, c.param_dict, c.config.resolved_dict()["strategies"][0])
    broken = Member("bad", "x", {}, {"name": "x", "kind": "no_such_exit", "params": {}})
    t = Task(c.config.resolved_dict(), 0, 1500, [good, broken])
    res = {r.cand: r for r in run_task(t)}
    assert res["bad"].status == "failed" and "no_such_exit" in res["bad"].error
    assert res[c.key].status == "ok" and res[c.key].metrics["bars"] == 1500


def test_walk_forward_never_shows_a_test_bar_to_its_optimisation(plan_of, tmp_path):
    from engine.datafile import load_bars
    from engine.sweep.walkforward import windows

    wf = {"mode": "rolling", "train_bars": 800, "test_bars": 350}
    d = sweep_dict(walk_forward=wf, space=SMALL_SPACE)
    d["run"]["data"]["end"] = "2024-01-24 23:45:00"  # 2,304 bars: 4 windows of 800 + 350
    plan = plan_of(d)
    out = run_sweep(plan, tmp_path / "o", progress=False)
    bars = load_bars(SYNTH)
    n = int(np.searchsorted(bars.ts_open_ns,
                            np.datetime64("2024-01-24 23:45:00", "ns").astype(np.int64),
                            side="right"))
    ws = windows(n, plan.spec.walk_forward)
    assert len(ws) == 4 and len(out.summary["windows"]) == 4
    ts = bars.ts_open_ns
    results = Store(tmp_path / "o" / "results.sqlite").all()
    for w in ws:
        train = [r for r in results if (r.seg_lo, r.seg_hi) == (w.train_lo, w.train_hi)]
        test = [r for r in results if (r.seg_lo, r.seg_hi) == (w.test_lo, w.test_hi)]
        assert len(train) == 6 and len(test) == 6  # test_all: every candidate traded too
        for r in train:
            # the bars the engine saw: exactly the train window, ending before the test window
            assert r.seen_first_ns == ts[w.train_lo] and r.seen_last_ns == ts[w.train_hi - 1]
            assert r.seen_last_ns < ts[w.test_lo] and r.seen_bars == w.train_hi - w.train_lo
        for r in test:
            assert r.seen_first_ns == ts[w.test_lo] and r.seen_last_ns == ts[w.test_hi - 1]
    # the choice of each window is the best train score, whatever the test scores say
    for row in out.summary["windows"]:
        w = ws[row["window"]]
        train = [r for r in results if (r.seg_lo, r.seg_hi) == (w.train_lo, w.train_hi)]
        from engine.sweep.search import result_score

        scores = {r.cand: result_score(r, plan.spec.objective) for r in train}
        top = max(v for v in scores.values() if v is not None)
        assert row["train_score"] == top and scores[row["cand"]] == top
    eq = out.summary["equity"]
    oos = eq["walk-forward out-of-sample"]
    assert oos["t"][0] == int(ts[ws[0].test_lo]) and oos["t"][-1] == int(ts[ws[-1].test_hi - 1])
    assert "in-sample best (all bars)" in eq
    # stitched return = compounded test-window returns
    rets = [1 + row["test_return_pct"] / 100 for row in out.summary["windows"]]
    assert oos["e"][-1] / 10_000 == pytest.approx(np.prod(rets), rel=1e-6)  # 4-decimal equity
    best_yaml = yaml.safe_load((tmp_path / "o" / "best.yaml").read_text())
    last = out.summary["windows"][-1]
    assert best_yaml["strategies"][0]["name"] == last["strategy"]


def test_anchored_windows():
    from engine.sweep.space import WalkForwardConfig
    from engine.sweep.walkforward import windows

    ws = windows(1000, WalkForwardConfig(mode="anchored", train_bars=400, test_bars=200))
    assert [(w.train_lo, w.train_hi, w.test_lo, w.test_hi) for w in ws] == [
        (0, 400, 400, 600), (0, 600, 600, 800), (0, 800, 800, 1000)]
    ws = windows(1000, WalkForwardConfig(mode="rolling", train_bars=400, test_bars=200))
    assert [(w.train_lo, w.train_hi) for w in ws] == [(0, 400), (200, 600), (400, 800)]
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="fewer than train_bars"):
        windows(500, WalkForwardConfig(train_bars=400, test_bars=200))


def test_tpe_search_with_pruning(plan_of, tmp_path):
    d = sweep_dict(space={
        "signals.params.stop_atr_mult": {"low": 3.0, "high": 5.0, "step": 0.5},
        "strategies[trailing_stop].params.trail_buffer_pct": {"low": 0.5, "high": 2.0},
    }, search={"method": "tpe", "n_trials": 8, "batch": 4, "seed": 3, "prune": True})
    plan = plan_of(d)
    out = run_sweep(plan, tmp_path / "o", progress=False, write_report=False)
    results = Store(tmp_path / "o" / "results.sqlite").all()
    full = [r for r in results if (r.seg_lo, r.seg_hi) == (0, 2000)]
    stage = [r for r in results if (r.seg_lo, r.seg_hi) == (0, 800)]  # prune_stage_frac 0.4
    assert len(full) + len(stage) == len(results)
    assert len(stage) == len({r.cand for r in stage}) >= 4  # the first stage of every trial
    assert 1 <= len(out.rows) <= 8 and len(full) == len(out.rows)
    assert out.best is not None and out.best_score == max(
        r["score"] for r in out.rows if r["score"] is not None)
    # seeded: the same trials again (all reused from the store)
    again = run_sweep(plan, tmp_path / "o", progress=False, write_report=False)
    assert again.ran == 0 and [r["cand"] for r in again.rows] == [r["cand"] for r in out.rows]


def test_cli_exits_1_when_every_candidate_failed(tmp_path, capsys):
    d = sweep_dict(space={"signals.params.stop_atr_mult": [3.5, 4.5]})
    d["run"]["data"] = {"file": str(GAPPY)}
    p = write_sweep(tmp_path, d)
    assert main(["sweep", str(p), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "every candidate failed" in err and "DataError" in err and "GAPPY" in err
    assert not (tmp_path / "o" / "best.yaml").exists()


def test_candidates_never_change_the_base_config_and_long_tasks_go_first(plan_of):
    import copy

    plan = plan_of(sweep_dict())
    before = copy.deepcopy(plan.base_raw)
    cands = validate_all(plan, points(plan))
    # copy-on-write along the swept paths: the shared base is untouched, each candidate has
    # its own value
    assert plan.base_raw == before
    bufs = {c.config.strategies[0].params.get("trail_buffer_pct") for c in cands
            if c.strategy == "trailing_stop"}
    assert bufs == {0.5, 1.0, 1.5}
    tasks = make_tasks([(c, 0, 800) for c in cands[:2]] + [(c, 0, 2000) for c in cands[2:4]],
                       0, 8)
    assert [(t.lo, t.hi) for t in tasks][0] == (0, 2000)  # the longest segment first
    assert sorted((t.hi for t in tasks), reverse=True) == [t.hi for t in tasks]


def test_two_local_workers_store_what_one_process_stores(plan_of, tmp_path):
    """Forked workers encode their results' rows themselves (``Result.row``): the store then
    holds, column for column, what a one-process sweep stores; every candidate's key is its
    run config's hash (the key a rerun and ``tradebot run`` compute)."""
    plan = plan_of(sweep_dict(space=SMALL_SPACE))
    one = run_sweep(plan, tmp_path / "one", workers=1, progress=False, write_report=False)
    two = run_sweep(plan, tmp_path / "two", workers=2, progress=False, write_report=False)
    assert two.ran == one.ran == 6 and two.failed == 0
    assert [(r["cand"], r["score"]) for r in two.rows] == [(r["cand"], r["score"])
                                                           for r in one.rows]

    def rows(name):
        db = Store(tmp_path / name / "results.sqlite")
        got = {r[0]: r[:14] for r in db.db.execute("SELECT * FROM results")}  # all but times
        db.close()
        return got

    assert rows("two") == rows("one")
    for c in validate_all(plan, points(plan)):
        assert c.key == c.config.config_hash()
        assert c.resolved == c.config.resolved_dict()


def test_local_workers_return_every_task_failures_included(plan_of):
    """2 and 3 local workers (this process and 1 or 2 forked, each forked one with a task
    queued behind its running one): every task's results come back exactly once, a task that
    fails in a forked worker or in this process included, each equal to running it here."""
    from engine.sweep.execute import LocalExecutor

    plan = plan_of(sweep_dict(space={"signals.params.stop_atr_mult": [3.5, 4.5, 5.5]}))
    cands = validate_all(plan, points(plan))
    broken = Member("bad", "x", {}, {"name": "x", "kind": "no_such_exit", "params": {}})
    tasks = []
    for i, c in enumerate(cands):
        m = Member(c.key, c.strategy, c.param_dict, c.resolved["strategies"][0])
        tasks.append(Task(c.resolved, 0, 1200, [m] + ([broken] if i % 3 == 1 else [])))
    def table(results):
        return sorted((r.cand, r.status, json.dumps(r.metrics, sort_keys=True)) for r in results)

    alone = table(r for t in tasks for r in run_task(t))
    assert len(alone) == len(cands) + 2 and sum(x[1] == "failed" for x in alone) == 2
    for workers in (2, 3):
        ex = LocalExecutor(workers)
        try:
            got = [r for rs in ex.run(tasks) for r in rs]
        finally:
            ex.close()
        assert table(got) == alone
        assert all(r.row is not None and r.row[0] == r.key for r in got)
