"""Running candidates: tasks of grouped candidates, in local processes or on a Dask cluster.

**Grouping.** Candidates whose configs are equal except for their strategy entry (they differ
only in exit-plugin params, or in which exit plugin they are) share everything the engine
computes once per run: the bars, the indicators, the volume profile and the entry signals. A task
is one such group run as one engine run with one ``strategies:`` entry per candidate (each with
its own account, as in a comparison run), so the shared pass is paid once for the whole group.
The result of each candidate is identical to running it alone (``tests/sweep``).

**Data.** A worker loads each data file once and keeps it (a module-level cache in the worker
process; forked local workers inherit the parent's copy); on Dask the client loads it once and
scatters it to every worker.

**Failures.** A task that raises is re-run candidate by candidate, so only the candidate that
fails is recorded as failed, with its error; the sweep goes on.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.sweep.store import Result, Store

EQUITY_POINTS = 400
MAX_PER_TASK = 64  # candidates in one engine run at most (memory: one account each)

_BARS: dict[str, Any] = {}
_REGISTRIES: Any = None


def share_registries(reg: Any) -> None:
    """Use ``reg`` (the sweep's, its plugins already loaded by the validation) in this process
    and in the local workers forked from it, instead of each reading the entry points again."""
    global _REGISTRIES
    if reg is not None:
        _REGISTRIES = reg


def registries() -> Any:
    """The installed plugins, read once per process (reading entry points scans every
    installed distribution's metadata: about a tenth of a second each time, per engine built)."""
    global _REGISTRIES
    if _REGISTRIES is None:
        from engine.bootstrap import Registries

        _REGISTRIES = Registries()
    return _REGISTRIES


def data_key(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def load_bars(data: dict[str, Any]) -> Any:
    """The bars of a ``data:`` section, loaded once per process."""
    k = data_key(data)
    if k not in _BARS:
        from engine.config import DataConfig

        feed_cls = registries().feeds.load("csv")
        _BARS[k] = feed_cls.from_config(DataConfig.model_validate(data)).history()
    return _BARS[k]


@dataclass
class Member:
    cand: str
    strategy: str
    params: dict[str, Any]
    entry: dict[str, Any]


@dataclass
class Task:
    """One engine run: a group of candidates on bars ``lo:hi`` of ``config['data']``."""

    config: dict[str, Any]
    lo: int
    hi: int
    members: list[Member]
    blocks: int = 8


def shared_key(c: Any) -> str:
    """What a group shares, from a candidate's swept values (dumping each whole config instead
    was most of the task building): a candidate is the sweep's base config with its values set,
    so candidates equal in every value outside ``strategies[...]`` paths are equal in
    everything but their strategy entry (values that differ but resolve alike, 3 and 3.0, only
    cost a second shared pass)."""
    return json.dumps([pv for pv in c.params if not pv[0].startswith("strategies[")],
                      sort_keys=True, default=str)


def make_tasks(jobs: Iterable[tuple[Any, int, int]], per_task: int, blocks: int,
               min_tasks: int = 1) -> list[Task]:
    """Group jobs (a ``space.Candidate`` on bars ``lo:hi``) by shared pass, split the groups
    into tasks of at most ``per_task`` candidates (0: split only as far as needed to make
    ``min_tasks`` tasks, so every worker has work; each split repeats the shared pass)."""
    groups: dict[tuple[str, int, int], list[Any]] = {}
    configs: dict[tuple[str, int, int], dict[str, Any]] = {}
    for c, lo, hi in jobs:
        k = (shared_key(c), lo, hi)
        groups.setdefault(k, []).append(c)
        configs.setdefault(k, c.resolved)
    if per_task <= 0:
        pieces = -(-min_tasks // max(1, len(groups)))
        biggest = max((len(m) for m in groups.values()), default=1)
        per_task = max(1, min(MAX_PER_TASK, -(-biggest // pieces)))
    tasks = []
    for k, members in groups.items():
        for i in range(0, len(members), per_task):
            part = members[i:i + per_task]
            tasks.append(Task(configs[k], k[1], k[2], [
                Member(c.key, c.strategy, c.param_dict, c.resolved["strategies"][0])
                for c in part], blocks))
    # longest first (a walk-forward mixes long train and short test segments): the workers
    # then finish together instead of one running a long task alone at the end
    tasks.sort(key=task_cost, reverse=True)
    return tasks


def task_cost(task: Task) -> float:
    """A task's relative cost: its bars times the shared pass plus its members' exits (the
    measured ratio: one exit-only member costs about a tenth of the shared pass)."""
    return (task.hi - task.lo) * (10 + len(task.members))


def _block_stats(rets: np.ndarray, blocks: int) -> list[list[float]]:
    """Per block of bar returns: n, sum r, sum r^2, sum r^3, sum r^4 (Sharpe, skew, kurtosis of
    any union of blocks follow from these)."""
    out = []
    for part in np.array_split(rets, blocks):
        out.append([float(part.size), float(part.sum()), float((part ** 2).sum()),
                    float((part ** 3).sum()), float((part ** 4).sum())])
    return out


def _thin(n: int, k: int = EQUITY_POINTS) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    idx = np.arange(0, n, -(-n // k))
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _run_members(task: Task, members: list[Member], bars: Any) -> list[Result]:
    from engine.bootstrap import build_engine
    from engine.config import RunConfig
    from engine.results import all_metrics

    t0 = time.perf_counter()
    names = {f"c{i}_{m.cand}": m for i, m in enumerate(members)}
    raw = dict(task.config)
    raw["strategies"] = [{**m.entry, "name": n} for n, m in names.items()]
    cfg = RunConfig.model_validate(raw)
    reg = registries()
    part = bars.slice(task.lo, task.hi)
    engine = build_engine(cfg, reg, feed=reg.feeds.load("csv").from_bars(part))
    engine.run()
    store = engine.store
    metrics = all_metrics(engine.accounts, store)
    close = store.column("close")
    ts = store.raw_column("ts_open_ns")[:store.count]
    idx = _thin(store.count)
    dt = (time.perf_counter() - t0) / len(members)
    out = []
    for n, m in names.items():
        acct = engine.accounts[n]
        eq = np.asarray(acct.equity_curve(close), dtype=np.float64)
        prev = np.concatenate(([acct.initial_cash], eq[:-1]))
        rets = eq / prev - 1.0
        out.append(Result(
            m.cand, task.lo, task.hi, m.strategy, m.params, "ok", None,
            {k: (float(v) if isinstance(v, float) else v) for k, v in metrics[n].items()},
            _block_stats(rets, task.blocks),
            {"t": [int(x) for x in ts[idx]], "e": [round(float(x), 4) for x in eq[idx]]},
            int(ts[0]), int(ts[-1]), int(store.count), dt))
    return out


def _failed(task: Task, m: Member, err: str) -> Result:
    return Result(m.cand, task.lo, task.hi, m.strategy, m.params, "failed", err)


def _short(exc: BaseException) -> str:
    from engine.errors import EngineError

    if isinstance(exc, EngineError):
        return f"{type(exc).__name__}: {exc}"
    return "".join(traceback.format_exception(exc, limit=-4)).strip()


def run_task(task: Task, bars: Any = None) -> list[Result]:
    """Run a task; never raises: failures come back as ``failed`` results, each result with
    its store row already encoded (``Result.row``: done here, in the worker, in parallel with
    the other workers, instead of in the sweep process, which then only inserts the rows)."""
    out = _run_task(task, bars)
    for r in out:
        r.row = Store.encode(r)
    return out


def _run_task(task: Task, bars: Any = None) -> list[Result]:
    try:
        if bars is None:
            bars = load_bars(task.config["data"])
        return _run_members(task, task.members, bars)
    except Exception as exc:
        if len(task.members) == 1:
            return [_failed(task, task.members[0], _short(exc))]
        first = _short(exc)
    out = []
    for m in task.members:
        try:
            if bars is None:
                raise RuntimeError(first)
            out += _run_members(task, [m], bars)
        except Exception as exc:
            out.append(_failed(task, m, _short(exc)))
    return out


# -- models retrained per walk-forward window ------------------------------------------------
@dataclass
class ModelJob:
    """Train a model (``trainer``, a ``tradebot.model_trainers`` entry point) on bars
    ``lo:hi`` of ``data`` (a run config's ``data:`` section), into ``out_dir/name.pt``."""

    key: str
    trainer: str
    config: dict[str, Any]
    data: dict[str, Any]
    lo: int
    hi: int
    out_dir: str
    name: str


def train_model(job: ModelJob, bars: Any = None) -> dict[str, Any]:
    """Run a ``ModelJob``; never raises: a failure comes back as ``status: failed``."""
    from engine.sweep.space import model_trainer

    try:
        if bars is None:
            bars = load_bars(job.data)
        part = bars.slice(job.lo, job.hi)  # the train window only: no later bar exists here
        info = model_trainer(job.trainer).train(job.config, part, job.out_dir, job.name,
                                                str(job.data["file"]))
        return {"key": job.key, "status": "ok", "error": None, **info}
    except Exception as exc:
        return {"key": job.key, "status": "failed", "error": _short(exc)}


# -- executors --------------------------------------------------------------------------------
def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def _widen_result_pipe(pool: Any) -> None:
    """Give the pool's result pipe 1 MiB (Linux; else nothing). A task's results (~330 kB
    pickled for 20 candidates) did not fit the default 64 kB: the worker sending them waited
    for this process to read each 64 kB piece, 10-30 ms per task while this process was busy
    running a task of its own; now it writes them and goes on to its next task."""
    try:
        import fcntl

        fd = pool._result_queue._writer.fileno()  # CPython's ProcessPoolExecutor internals
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (AttributeError, ImportError, OSError, ValueError):
        pass


class LocalExecutor:
    """Tasks in ``workers`` local processes: this one and ``workers - 1`` forked from it (just
    this one when ``workers`` is 1)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or cores()
        self._pools: dict[int, Any] = {}

    def describe(self) -> str:
        return f"{self.workers} local process{'es' if self.workers > 1 else ''}"

    def preload(self, datas: Iterable[dict[str, Any]]) -> None:
        # loaded before the workers fork: each inherits the bars instead of reading the file
        for d in datas:
            try:
                load_bars(d)
            except Exception:  # noqa: S112 - recorded per candidate when its task runs
                continue

    def _get_pool(self, n: int) -> Any:
        if n not in self._pools:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pools[n] = ProcessPoolExecutor(n, mp_context=ctx)
            _widen_result_pipe(self._pools[n])
        return self._pools[n]

    def map_models(self, jobs: list[ModelJob]) -> Iterator[dict[str, Any]]:
        """Train models in ``workers`` forked processes (this one never imports torch for them,
        so the workers it forks later never inherit torch's threads)."""
        if self.workers <= 1:
            for j in jobs:
                yield train_model(j)
            return
        from concurrent.futures import as_completed

        futs = [self._get_pool(self.workers).submit(train_model, j) for j in jobs]
        for f in as_completed(futs):
            yield f.result()

    def run(self, tasks: list[Task]) -> Iterator[list[Result]]:
        """Run the tasks, longest first, yielding each one's results.

        With several workers this process is one of them: the ``workers - 1`` forked ones are
        handed tasks (one running and one queued each, the last ones one at a time) from the
        pool's result thread as they return them, while this process runs the others itself
        and yields what the forked ones returned between its own tasks. Against ``workers``
        forked processes and this one waiting: one fork less (~10-25 ms of this process's time
        each, at the start), half the tasks and results not pickled, and no third process
        taking turns with the two that compute (on two cores it delayed one of them by its
        result handling)."""
        if self.workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                yield run_task(t)
            return
        import queue
        import threading
        from collections import deque

        pool = self._get_pool(self.workers - 1)
        pending = deque(tasks)
        lock = threading.Lock()
        returned: queue.SimpleQueue[Any] = queue.SimpleQueue()
        futs: list[Any] = []

        forked = self.workers - 1
        inflight = 0  # handed to the forked workers, not returned yet

        def hand_out() -> None:
            # each forked worker holds its next task queued behind the running one (handing it
            # out only when one returns left it idle 10-40 ms: the pool's threads need this
            # process's GIL and a CPU), but only while more tasks are left than workers: the
            # last ones go out one by one, so none waits queued while this process is idle
            nonlocal inflight
            with lock:
                target = forked * (2 if len(pending) > self.workers else 1)
                new = []
                while pending and inflight < target:
                    new.append(pool.submit(run_task, pending.popleft()))
                    inflight += 1
                futs.extend(new)
            for f in new:
                f.add_done_callback(returned_one)

        def returned_one(f: Any) -> None:
            nonlocal inflight
            with lock:
                inflight -= 1
            returned.put(f)
            if not f.cancelled():
                hand_out()

        taken = 0
        try:
            hand_out()
            while True:
                while not returned.empty():  # what the forked workers returned meanwhile
                    taken += 1
                    yield returned.get().result()
                with lock:
                    t = pending.popleft() if pending else None
                if t is None:
                    break
                yield run_task(t)
            while True:
                with lock:
                    if taken >= len(futs):
                        break
                taken += 1
                yield returned.get().result()
        finally:
            with lock:
                pending.clear()
            for f in futs:
                f.cancel()

    def close(self) -> None:
        for pool in self._pools.values():
            # not waiting for the workers to exit (each unmaps a copy of this process: ~20 ms
            # the sweep's end would wait for); the pool's own thread joins them
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()


class DaskExecutor:
    """Tasks on a Dask distributed cluster (``tcp://HOST:8786``), the bars scattered once."""

    def __init__(self, address: Any) -> None:
        from distributed import Client

        from engine.errors import ConfigError

        self.address = address
        try:
            self.client = address if isinstance(address, Client) else Client(
                address, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}; start one "
                              "with `dask scheduler` (see docs/sweeps.md) or drop --scheduler"
                              ) from None
        self._own = not isinstance(address, Client)
        self._scattered: dict[str, Any] = {}
        # the cluster's threads: how many tasks run at once (tasks per round, splits)
        self.workers = max(1, sum(self.client.nthreads().values()))

    def describe(self) -> str:
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster {self.client.scheduler.address} ({n} workers)"

    def preload(self, datas: Iterable[dict[str, Any]]) -> None:
        for d in datas:
            k = data_key(d)
            if k in self._scattered:
                continue
            try:
                bars = load_bars(d)
            except Exception:  # noqa: S112 - recorded per candidate when its task runs
                continue
            self._scattered[k] = self.client.scatter(bars, broadcast=True, hash=False)

    def run(self, tasks: list[Task]) -> Iterator[list[Result]]:
        from distributed import as_completed

        futs = [self.client.submit(run_task, t, self._scattered.get(data_key(t.config["data"])),
                                   pure=False) for t in tasks]
        try:
            # results gathered as the tasks finish, in the background (not one round trip to
            # a worker per ``result()`` call)
            for _, res in as_completed(futs, with_results=True):
                yield res
        finally:
            for f in futs:
                f.cancel()

    def map_models(self, jobs: list[ModelJob]) -> Iterator[dict[str, Any]]:
        """Train models on the cluster (the weights land in the sweep's output folder as the
        worker sees it: on several machines, a shared file system)."""
        from distributed import as_completed

        futs = [self.client.submit(train_model, j, self._scattered.get(data_key(j.data)),
                                   pure=False) for j in jobs]
        for f in as_completed(futs):
            yield f.result()

    def close(self) -> None:
        self._scattered.clear()
        if self._own:
            self.client.close()


def make_executor(workers: int = 0, scheduler: Any = None) -> LocalExecutor | DaskExecutor:
    if scheduler:
        return DaskExecutor(scheduler)
    return LocalExecutor(workers)
