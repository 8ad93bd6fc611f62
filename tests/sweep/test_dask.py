"""A real Dask cluster on loopback: ``dask scheduler`` and two ``dask worker`` processes started
here, on free 127.0.0.1 ports, one thread each, torn down after. The sweep's results must equal
the local run's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.sweep.runner import run_sweep

from .conftest import SMALL_SPACE, sweep_dict

DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def loopback_cluster(tmp_path):
    if not DASK.exists():
        pytest.fail(f"the dask command is missing beside {sys.executable} (dask[distributed] "
                    "is a dependency: setup.cfg)")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    logs = []
    procs = []

    def start(*args: str) -> None:
        log = (tmp_path / f"dask-{len(procs)}.log").open("w")
        logs.append(log)
        procs.append(subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                      env=env, cwd=tmp_path, start_new_session=True))

    start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    for i in range(2):
        start("worker", addr, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
              "--no-dashboard", "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}"))
    from distributed import Client

    client = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                client = client or Client(addr, timeout="5s")
                if len(client.scheduler_info()["workers"]) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            text = "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("dask-*.log"))
            pytest.fail(f"the loopback Dask cluster did not come up in 90 s:\n{text}")
        yield addr
    finally:
        if client is not None:
            client.close()
        _stop(procs)
        for log in logs:
            log.close()


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the workers, then the scheduler (each its own process group); SIGKILL what is
    still there after 15 s."""
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_dask_cluster_gives_the_local_results(plan_of, tmp_path, loopback_cluster):
    plan = plan_of(sweep_dict(space=SMALL_SPACE))
    remote = run_sweep(plan, tmp_path / "dask", scheduler=loopback_cluster, progress=False,
                       write_report=False)
    assert "Dask cluster tcp://127.0.0.1" in remote.summary["executor"]
    assert "(2 workers)" in remote.summary["executor"]
    assert remote.ran == 6 and remote.failed == 0
    local = run_sweep(plan, tmp_path / "local", workers=1, progress=False, write_report=False)

    def table(o):
        return [(r["cand"], r["score"], r["trades"], r["total_return_pct"]) for r in o.rows]

    # the same code on the same bars: identical numbers, no tolerance
    assert table(remote) == table(local)
    assert remote.best.key == local.best.key
