"""Live mode (the Apex feed + the Apex broker) against the local venue: bar close to order accepted.

Workload: configs/live.yaml (one strategy, ``trailing_stop``, trailing from its first bar: a live
run trades one strategy per Apex account) plus the CNN handler, the volume profile and the shared
signals, on real BTC/USDT 15m candles; the venue in its own process in lockstep
(``tradebot venue --speed 0``), the real apexomni client over loopback HTTP, zk-signed orders.

Measured, in the same run:

- bar close to order accepted (the local venue's one-time zk warm-up paid before the run): from
  the ``BarClosed`` being made (the feed has the closed candle)
  to the venue's answer to each order placed on that bar (entries with their worst-price guard
  lookup, stops, stop moves placed new-first), p50/p99 (target p99 < 50 ms);
- the time one order request takes (signing + HTTP round trip), p50;
- live vs paper bars per second over the same bars (the broker's per-bar fills poll is the cost).

Run alone: ``python bench/bench_live.py [--bars N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.bench_paper import _venue_process
from bench.common import REPO, real_bars

BARS = 800
START = 30_000


def _run(mode: str, url: str, out: Path, n: int) -> dict[str, object]:
    from engine.bootstrap import build_engine
    from engine.bus import PRIORITY_BROKER
    from engine.config import load_config
    from engine.events import BarClosed

    cfg = load_config(REPO / "configs" / "live.yaml", {
        "mode": mode, "data.venue": url, "data.warmup_bars": 0, "data.poll_interval_s": 0.001,
        "output.dir": str(out / mode), "output.report": False, "risk": None,
        "account.initial_cash": 5_000.0, "account.position_size_frac": 0.5,
        "strategies": [{"name": "trailing_stop", "kind": "trailing_stop",
                        "params": {"min_lock_pct": 0.0}}]})
    feats = [f.model_dump() for f in cfg.features] + [{"id": "cnn", "kind": "cnn"}]
    cfg = type(cfg).model_validate({**cfg.model_dump(), "features": feats})
    eng = build_engine(cfg, journal_path=out / f"{mode}.sqlite")
    eng.feed.max_bars = n  # type: ignore[attr-defined]
    bar_ns = [0]
    to_accept: list[int] = []
    request: list[int] = []
    eng.bus.subscribe(BarClosed, lambda b: bar_ns.__setitem__(0, b.ts_init_ns),
                      priority=PRIORITY_BROKER - 1, name="bench-bar")
    if mode == "live":
        broker = next(iter(eng.brokers.values()))
        client = broker.client  # type: ignore[attr-defined]
        create = client.create_order

        def timed(**kw: object) -> object:
            t0 = time.time_ns()
            r = create(**kw)
            t1 = time.time_ns()
            request.append(t1 - t0)
            to_accept.append(t1 - bar_ns[0])
            return r

        # warm the local venue's zk signature check (a one-time cost of the venue, ~0.15 s, not
        # of the broker): an order below the minimum size, verified then refused, changes nothing
        from engine.errors import OrderRejected

        worst = client.worst_price("BTC-USDT", "BUY", "0.001")["worstPrice"]
        try:
            create(symbol="BTC-USDT", side="BUY", type="MARKET", size="0.0001", price=worst,
                   clientId="1")
        except OrderRejected:
            pass
        client.create_order = timed
    t0 = time.perf_counter()
    eng.run()
    dt = time.perf_counter() - t0
    acct = next(iter(eng.accounts.values()))
    return {"s": dt, "trades": len(acct.trades), "accept": to_accept, "request": request}


def run(bars: int = BARS) -> dict[str, object]:
    from adapters.apex.venue import TEST_CREDENTIALS as C

    for k, v in (("APEX_API_KEY", C.key), ("APEX_API_SECRET", C.secret),
                 ("APEX_API_PASSPHRASE", C.passphrase), ("APEX_ZK_SEEDS", C.zk_seeds)):
        os.environ.setdefault(k, v)  # the venue process reads the same variables
    data = real_bars().slice(START, START + bars)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with _venue_process(data, out) as url:
            live = _run("live", url, out, len(data))
        with _venue_process(data, out) as url:
            paper = _run("paper", url, out, len(data))
    acc = np.asarray(live["accept"], dtype=np.float64) / 1e6
    req = np.asarray(live["request"], dtype=np.float64) / 1e6
    return {
        "bars": len(data),
        "orders placed": len(acc),
        "bar close to order accepted p50 ms": float(np.percentile(acc, 50)) if len(acc) else None,
        "bar close to order accepted p99 ms": float(np.percentile(acc, 99)) if len(acc) else None,
        "p99 < 50 ms": bool(len(acc) and np.percentile(acc, 99) < 50.0),
        "one order request p50 ms": float(np.percentile(req, 50)) if len(req) else None,
        "live bars/s": len(data) / float(live["s"]),  # type: ignore[arg-type]
        "paper bars/s": len(data) / float(paper["s"]),  # type: ignore[arg-type]
        "live / paper time": float(live["s"]) / float(paper["s"]),  # type: ignore[arg-type]
        "same number of trades (live == paper)": live["trades"] == paper["trades"],
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=BARS)
    print(json.dumps(run(ap.parse_args().bars), indent=2))
