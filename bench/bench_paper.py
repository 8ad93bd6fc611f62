"""Paper mode through the whole engine against the local Apex venue, vs a backtest of the same bars.

Workload: configs/paper.yaml (the six exit strategies on the shared signals, the volume profile)
plus the CNN handler (``features: [{id: cnn, kind: cnn}]``), on real BTC/USDT 15m candles. The
local venue replays them from their first candle in lockstep (``--speed 0``: full speed, the next
candle closes as soon as the feed has seen the last one); the feed asks the venue's clock, fetches
the closed candle with the real apexomni client over loopback HTTP (the venue in its own process,
as ``tradebot venue`` runs), and the loop runs every
handler per bar (the live path: no precompute).

Measured, in the same run:

- paper: bars per second through the whole engine (feed + handlers + journal);
- latency from a bar's arrival (the ``BarClosed`` is made as the feed has the closed candle) to the
  last ``BarClosed`` handler done (features, CNN, signals, six strategies, brokers, journal),
  p50/p99 (target p99 < 20 ms);
- the CPU time of the handlers per bar (this thread's, p50/p99): the part of the latency that a
  machine shared with other work does not inflate;
- the same bars as a backtest on the per-bar path (``precompute=False``: what paper runs) and with
  precompute (what a backtest runs): seconds per bar; the feed's overhead per bar is paper minus
  the per-bar backtest.

Run alone: ``python bench/bench_paper.py [--bars N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import REPO, real_bars
from engine.bars import Bars

BARS = 1_200
START = 20_000  # a stretch of the real data with trades


def _config(mode: str, venue: str | None, out: Path) -> object:
    from engine.config import load_config

    cfg = load_config(REPO / "configs" / "paper.yaml", {
        "mode": mode, "data.venue": venue, "data.warmup_bars": 0, "data.poll_interval_s": 0.001,
        "data.file": str(out / "unused_15m_data.csv") if mode == "backtest" else None,
        "output.dir": str(out / mode), "output.report": False, "execution.workers": 1,
    })
    feats = [f.model_dump() for f in cfg.features] + [{"id": "cnn", "kind": "cnn"}]
    return type(cfg).model_validate({**cfg.model_dump(), "features": feats})


def _backtest(bars: Bars, out: Path, precompute: bool) -> tuple[float, int]:
    from adapters.csv_feed import CsvFeed
    from engine.bootstrap import build_engine

    cfg = _config("backtest", None, out)
    t0 = time.perf_counter()
    eng = build_engine(cfg, feed=CsvFeed.from_bars(bars),  # type: ignore[arg-type]
                       precompute=precompute)
    eng.run()
    dt = time.perf_counter() - t0
    return dt, sum(len(a.trades) for a in eng.accounts.values())


@contextlib.contextmanager
def _venue_process(bars: Bars, out: Path, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """``tradebot venue`` in its own process (as a user runs it), with ``extra`` arguments
    (e.g. ``--account-env PREFIX``): its URL."""
    from adapters.synth_data import write_csv

    path = out / "BTCUSDT_15m_data.csv"
    write_csv(bars, path)
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "venue", "--data", str(path),
                          "--port", "0", "--speed", "0", *extra], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        if "venue at " not in line:
            raise RuntimeError(f"tradebot venue did not start: {line!r}")
        yield line.split("venue at ", 1)[1].split()[0]
    finally:
        p.terminate()
        p.wait(30)


def _paper(bars: Bars, out: Path) -> dict[str, float]:
    from engine.bootstrap import build_engine
    from engine.bus import PRIORITY_SINK
    from engine.events import BarClosed

    lat: list[int] = []
    cpu: list[int] = []
    cpu0 = [0]

    def first(bar: BarClosed) -> None:
        cpu0[0] = time.thread_time_ns()

    def done(bar: BarClosed) -> None:
        lat.append(time.time_ns() - bar.ts_init_ns)
        cpu.append(time.thread_time_ns() - cpu0[0])

    with _venue_process(bars, out) as url:
        cfg = _config("paper", url, out)
        eng = build_engine(cfg, journal_path=out / "journal.sqlite")  # type: ignore[arg-type]
        eng.feed.max_bars = len(bars)  # type: ignore[attr-defined]
        eng.bus.subscribe(BarClosed, first, priority=-10**6, name="latency-start")
        eng.bus.subscribe(BarClosed, done, priority=PRIORITY_SINK + 1, name="latency")
        t0 = time.perf_counter()
        last = eng.run()
        dt = time.perf_counter() - t0
        requests = eng.feed.kl.requests  # type: ignore[attr-defined]
    assert last is not None and last.seq == len(bars) - 1, "paper run ended early"
    ms = np.asarray(lat, dtype=np.float64) / 1e6
    cpu_ms = np.asarray(cpu, dtype=np.float64) / 1e6
    return {
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
        "cpu_p99_ms": float(np.percentile(cpu_ms, 99)),
        "paper_s": dt,
        "paper_trades": float(sum(len(a.trades) for a in eng.accounts.values())),
        "paper_bars_per_s": len(bars) / dt,
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
        "latency_max_ms": float(ms.max()),
        "venue_requests_per_bar": requests / len(bars),
    }


def run(bars: int = BARS) -> dict[str, object]:
    data = real_bars().slice(START, START + bars)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _backtest(data.slice(0, 300), out / "warm", precompute=False)  # compile the kernels
        p = _paper(data, out)
        bt_bar, bt_trades = _backtest(data, out / "bt1", precompute=False)
        bt_pre, _ = _backtest(data, out / "bt2", precompute=True)
    n = len(data)
    per_bar_paper = p["paper_s"] / n
    per_bar_bt = bt_bar / n
    return {
        "bars": n,
        "paper bars/s (whole engine, lockstep venue)": p["paper_bars_per_s"],
        "paper bar-to-handlers-done p50 ms": p["latency_p50_ms"],
        "paper bar-to-handlers-done p99 ms": p["latency_p99_ms"],
        "paper bar-to-handlers-done max ms": p["latency_max_ms"],
        "p99 < 20 ms": bool(p["latency_p99_ms"] < 20.0),
        "handlers CPU time per bar p50 ms": p["cpu_p50_ms"],
        "handlers CPU time per bar p99 ms": p["cpu_p99_ms"],
        "backtest per-bar path ms/bar": per_bar_bt * 1e3,
        "backtest (precompute) ms/bar": bt_pre / n * 1e3,
        "paper ms/bar": per_bar_paper * 1e3,
        "feed overhead ms/bar (paper - per-bar backtest)": (per_bar_paper - per_bar_bt) * 1e3,
        "paper / per-bar backtest time": per_bar_paper / per_bar_bt,
        "venue requests per bar": p["venue_requests_per_bar"],
        "same trades (paper == backtest)": bool(int(p["paper_trades"]) == bt_trades),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=BARS)
    print(json.dumps(run(ap.parse_args().bars), indent=2))
