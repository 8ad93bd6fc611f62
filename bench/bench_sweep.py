"""Parameter sweeps: candidates per second, local workers, Dask, and the shared pass.

One 200-candidate grid on the real data (``../shared/data/BTCUSDT_15m_data.csv``, its first
``bars`` bars: 10,000 by default, ``--bars 69122`` for all of it): ``signals.params.
stop_atr_mult`` x 10 values times the trailing stop's ``trail_buffer_pct`` x 20 values, so 10
groups of 20 exit-only variants. Every sweep starts from
an empty results store (nothing reused) and writes no report; measured in one run:

- **1 vs 2 local workers** (2: the sweep process and one forked from it), alternated, best
  of three each: candidates per second, and the ratio (target >= 1.8x on a machine with two
  free cores), beside what two processes get at best on this machine (a pure-Python loop, 1
  vs 2 processes);
- **Dask LocalCluster** (2 worker processes, 1 thread each, warmed up by small sweeps first)
  against 2 local processes on the same sweep, alternated, best of two each, both measured
  while the cluster exists: the overhead in % (target < 10 %);
- **sharing the pass**: one group of 20 exit-only candidates run as one engine run with 20
  strategies (indicators, volume profile and signals once) against one run per candidate
  (``execution.per_task: 1``), one process each way.

Run alone: ``python bench/bench_sweep.py [--quick]``; ``bench/run_all.py`` calls ``run()``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REAL_DATA, REPO, real_bars


def _plan(bars: int, n_atr: int = 10, n_buf: int = 20, per_task: int = 0) -> Any:
    from engine.sweep.space import SweepConfig, plan_from_spec

    b = real_bars()
    end = str(np.datetime64(int(b.ts_open_ns[min(bars, len(b)) - 1]), "ns").astype(
        "datetime64[s]")).replace("T", " ")
    spec = {
        "name": "bench",
        "base": str(REPO / "configs" / "default.yaml"),
        "run": {"data": {"file": str(REAL_DATA), "end": end},
                "strategies": [{"name": "trailing_stop", "kind": "trailing_stop"}]},
        "space": {
            "signals.params.stop_atr_mult": [round(3.0 + 0.5 * i, 2) for i in range(n_atr)],
            "strategies[trailing_stop].params.trail_buffer_pct": [
                round(0.25 + 0.1 * i, 2) for i in range(n_buf)],
        },
        "execution": {"per_task": per_task},
    }
    return plan_from_spec(SweepConfig.model_validate(spec), "bench")


def _sweep(plan: Any, **kw: Any) -> tuple[float, Any]:
    from engine.sweep.runner import run_sweep

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = run_sweep(plan, Path(d) / "o", progress=False, write_report=False, **kw)
        dt = time.perf_counter() - t0
    assert out.reused == 0 and out.failed == 0, (out.reused, out.failed)
    return dt, out


def _spin(n: int = 10_000_000) -> int:
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def machine_two_process_speedup() -> float:
    """What two processes can get here at best: one pure-Python CPU loop run twice in this
    process against the same two loops in a forked pool of 2 (best of two each). The 1 vs 2
    workers ratio reads against it (a 2-vCPU machine whose vCPUs share a core gets less)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    serial, pooled = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        _spin()
        _spin()
        serial.append(time.perf_counter() - t0)
        with ctx.Pool(2) as pool:
            t0 = time.perf_counter()
            pool.map(_spin, [10_000_000, 10_000_000])
            pooled.append(time.perf_counter() - t0)
    return min(serial) / min(pooled)


def run(bars: int = 10_000, quick: bool = False) -> dict[str, Any]:
    if quick:
        bars = min(bars, 3_000)
    plan = _plan(bars)
    n = 200
    _sweep(_plan(600, 2, 2), workers=1)  # numba kernels loaded, data cached, imports done
    # 1 and 2 workers alternated, best of three each: on a shared machine a burst of other
    # work then hits both sides alike
    t1s, t2s = [], []
    for _ in range(2 if quick else 3):
        t1, o1 = _sweep(plan, workers=1)
        t2, o2 = _sweep(plan, workers=2)
        t1s.append(t1)
        t2s.append(t2)
        assert [r["score"] for r in o1.rows] == [r["score"] for r in o2.rows]
    t1, t2 = min(t1s), min(t2s)
    res: dict[str, Any] = {
        "bars": bars, "candidates": n,
        "cands_per_s_1_worker": n / t1, "cands_per_s_2_workers": n / t2,
        "speedup_2_vs_1_workers (target >= 1.8)": t1 / t2,
        "machine_2_process_speedup_pure_cpu_loop": machine_two_process_speedup(),
    }
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for _ in range(2):  # 4 tasks twice: both workers import and load the kernels
            _sweep(_plan(600, 4, 2), scheduler=client)
        # alternated, best of two each, both while the cluster exists (its scheduler runs in
        # this process): the same machine state for both
        tds, t2bs = [], []
        for _ in range(2):
            td, od = _sweep(plan, scheduler=client)
            tds.append(td)
            t2bs.append(_sweep(plan, workers=2)[0])
    assert [r["score"] for r in od.rows] == [r["score"] for r in o1.rows]
    res["cands_per_s_dask_localcluster_2"] = n / min(tds)
    res["cands_per_s_2_workers_beside_the_cluster"] = n / min(t2bs)
    res["dask_overhead_vs_local_pct (target < 10)"] = 100.0 * (min(tds) / min(t2bs) - 1)
    group = _plan(bars, 1, 20)
    alone = _plan(bars, 1, 20, per_task=1)
    ts, _ = _sweep(group, workers=1)
    ta, _ = _sweep(alone, workers=1)
    res["exit_only_20_shared_pass_s"] = ts
    res["exit_only_20_one_pass_each_s"] = ta
    res["shared_pass_speedup"] = ta / ts
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3,000 bars instead of 10,000")
    ap.add_argument("--bars", type=int, default=10_000, help="69122 for the whole file")
    a = ap.parse_args()
    for k, v in run(a.bars, a.quick).items():
        print(f"  {k:45s} {v:.4g}" if isinstance(v, float) else f"  {k:45s} {v}")
