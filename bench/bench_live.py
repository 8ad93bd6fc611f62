"""Live mode (the Apex feed + the Apex broker) against the local venue: bar close to order accepted.

Workload: configs/live.yaml with the six exit strategies, each on its own Apex account
(``apex_env``: one account nets a symbol into one position), plus the CNN handler, the volume
profile and the shared signals, on real BTC/USDT 15m candles; the venue in its own process in
lockstep (``tradebot venue --speed 0 --account-env ...``, serving the six accounts), six real
apexomni clients over loopback HTTP, zk-signed orders.

Measured, in the same run:

- bar close to order accepted (the local venue's one-time zk warm-up paid before the run): from
  the ``BarClosed`` being made (the feed has the closed candle)
  to the venue's answer to each order placed on that bar by any of the six accounts (entries
  with their worst-price guard, looked up once per bar for all six, the orders placed on their
  fills, stop moves placed new-first; to this loopback venue the brokers send one after another:
  sending at once is for a venue across the network, ``adapters/apex/broker.py``, "Sending"),
  p50/p99 (target p99 < 50 ms);
- the time one order request takes (signing + HTTP round trip), p50;
- live vs paper bars per second over the same bars (the broker's per-bar fills poll is the cost).

Run alone: ``python bench/bench_live.py [--bars N]``.
"""

from __future__ import annotations

import argparse
import contextlib
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
from engine.bars import Bars

BARS = 800
START = 30_000
SIX = ("poc_target", "vah_exit", "lvn_acceleration", "multi_tier", "trailing_stop",
       "volume_divergence")


def _prefix(name: str) -> str:
    return f"APEX_BENCH_{name.upper()}"


def _strategies() -> list[dict[str, object]]:
    return [{"name": n, "kind": n, "apex_env": _prefix(n),
             "params": {"min_lock_pct": 0.0} if n == "trailing_stop" else {}} for n in SIX]


def _accounts_env() -> None:
    """Six accounts' keys in the environment (the venue process reads the same variables)."""
    from adapters.apex.client import ApexCredentials

    for i, name in enumerate(SIX):
        c = ApexCredentials(f"bench-key-{i}", f"bench-secret-{i}", f"bench-pass-{i}",
                            f"{i + 1:02x}" * 64)
        for k, v in (("API_KEY", c.key), ("API_SECRET", c.secret),
                     ("API_PASSPHRASE", c.passphrase), ("ZK_SEEDS", c.zk_seeds)):
            os.environ.setdefault(f"{_prefix(name)}_{k}", v)


def _six_account_venue(bars: Bars, out: Path) -> contextlib.AbstractContextManager[str]:
    """``tradebot venue`` in its own process serving the six accounts: its URL."""
    return _venue_process(bars, out, tuple(a for n in SIX for a in ("--account-env", _prefix(n))))


def _run(mode: str, url: str, out: Path, n: int) -> dict[str, object]:
    from engine.bootstrap import build_engine
    from engine.bus import PRIORITY_BROKER
    from engine.config import load_config
    from engine.events import BarClosed

    cfg = load_config(REPO / "configs" / "live.yaml", {
        "mode": mode, "data.venue": url, "data.warmup_bars": 0, "data.poll_interval_s": 0.001,
        "output.dir": str(out / mode), "output.report": False, "risk": None,
        "account.initial_cash": 5_000.0, "account.position_size_frac": 0.5,
        "strategies": _strategies()})
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
        from engine.errors import OrderRejected

        for broker in eng.brokers.values():
            client = getattr(broker, "inner", broker).client
            create = client.create_order

            def timed(create: object = create, **kw: object) -> object:
                t0 = time.time_ns()
                r = create(**kw)  # type: ignore[operator]
                t1 = time.time_ns()
                request.append(t1 - t0)
                to_accept.append(t1 - bar_ns[0])
                return r

            # warm the local venue's zk signature check for this account (a one-time cost of the
            # venue, ~0.15 s, not of the broker): an order below the minimum size, verified then
            # refused, changes nothing
            worst = client.worst_price("BTC-USDT", "BUY", "0.001")["worstPrice"]
            try:
                create(symbol="BTC-USDT", side="BUY", type="MARKET", size="0.0001", price=worst,
                       clientId="1")
            except OrderRejected:
                pass
            client.create_order = timed
    import gc

    gc.collect()
    gc.freeze()  # as `tradebot run` does before its bar loop (engine.run_command.settle_heap)
    t0 = time.perf_counter()
    eng.run()
    dt = time.perf_counter() - t0
    trades = {n: len(a.trades) for n, a in eng.accounts.items()}
    return {"s": dt, "trades": trades, "accept": to_accept, "request": request}


def _run_orders(bars: int = BARS) -> dict[str, object]:
    from adapters.apex.venue import TEST_CREDENTIALS as C

    for k, v in (("APEX_API_KEY", C.key), ("APEX_API_SECRET", C.secret),
                 ("APEX_API_PASSPHRASE", C.passphrase), ("APEX_ZK_SEEDS", C.zk_seeds)):
        os.environ.setdefault(k, v)  # the venue process reads the same variables
    _accounts_env()
    data = real_bars().slice(START, START + bars)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with _six_account_venue(data, out) as url:
            live = _run("live", url, out, len(data))
        with _six_account_venue(data, out) as url:
            paper = _run("paper", url, out, len(data))
    acc = np.asarray(live["accept"], dtype=np.float64) / 1e6
    req = np.asarray(live["request"], dtype=np.float64) / 1e6
    return {
        "bars": len(data),
        "strategies (one account each)": len(SIX),
        "trades per strategy (live)": live["trades"],
        "orders placed": len(acc),
        "bar close to order accepted p50 ms": float(np.percentile(acc, 50)) if len(acc) else None,
        "bar close to order accepted p99 ms": float(np.percentile(acc, 99)) if len(acc) else None,
        "p99 < 50 ms": bool(len(acc) and np.percentile(acc, 99) < 50.0),
        "one order request p50 ms": float(np.percentile(req, 50)) if len(req) else None,
        "live bars/s": len(data) / float(live["s"]),  # type: ignore[arg-type]
        "paper bars/s": len(data) / float(paper["s"]),  # type: ignore[arg-type]
        "live / paper time": float(live["s"]) / float(paper["s"]),  # type: ignore[arg-type]
        "same trades per strategy (live == paper)": live["trades"] == paper["trades"],
    }


RESTART_EVENTS = 100_000


def restart(events: int = RESTART_EVENTS) -> dict[str, object]:
    """Restart-to-trading-again time with a journal of ``events`` events (target < 2 s).

    The journal is a real run's: configs/live.yaml (``trailing_stop``, the volume profile and
    the shared signals) over real candles, its bars, signals, orders, fills, trades and one
    equity mark per bar, filed under the live run's id and cut where the account is flat (the
    local venue's account is flat too, so the reconciliation finds nothing to halt on). Timed:
    ``build_engine`` finding the journal, copying it forward, rebuilding the store, features,
    account and runner, reconciling with the local venue (in this process, lockstep), until the
    first bar after the journal reaches the strategy.
    """
    import sqlite3

    import msgspec

    from adapters.apex.venue import TEST_CREDENTIALS as C
    from adapters.apex.venue import LocalVenue
    from engine.bootstrap import build_engine, run_id
    from engine.bus import PRIORITY_STRATEGY
    from engine.config import load_config
    from engine.events import BarClosed, EquityMarked
    from engine.journal import Journal, read_events

    for k, v in (("APEX_API_KEY", C.key), ("APEX_API_SECRET", C.secret),
                 ("APEX_API_PASSPHRASE", C.passphrase), ("APEX_ZK_SEEDS", C.zk_seeds)):
        os.environ.setdefault(k, v)
    n_bars = events // 2 + 200  # a bar and its equity mark per bar, plus the trading events
    data = real_bars().slice(5_000, 5_000 + n_bars + 50)
    common = {"output.report": False, "risk": None, "account.initial_cash": 10_000.0,
              "account.position_size_frac": 0.5,
              "strategies": [{"name": "trailing_stop", "kind": "trailing_stop",
                              "params": {"min_lock_pct": 0.0}}]}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        from adapters.synth_data import write_csv

        csv = out / "BTCUSDT_15m_data.csv"
        write_csv(data.slice(0, n_bars), csv)
        bt_cfg = load_config(REPO / "configs" / "live.yaml", {
            **common, "mode": "backtest", "data.file": str(csv), "data.venue": None,
            "execution.workers": 1, "execution.close_at_end": False,
            "output.dir": str(out / "bt"), "journal.enabled": True,
            "journal.path": str(out / "bt.sqlite"), "journal.include_bars": True})
        bt = build_engine(bt_cfg, precompute=False)
        bt.run()
        acct = bt.accounts["trailing_stop"]
        cash_at, qty = acct.state_per_bar(n_bars)
        path = out / "live" / "journal.sqlite"
        j = Journal(path, "bench", include_bars=True)
        written = 0
        cut = -1
        for e in read_events(out / "bt.sqlite"):  # up to a flat bar once the count is reached
            if type(e) is BarClosed:
                e = msgspec.structs.replace(e, ts_init_ns=e.ts_event_ns)
            j(e)
            written += 1
            if type(e) is BarClosed:
                cash, q = float(cash_at[e.seq]), float(qty[e.seq])
                j(EquityMarked(ts_event_ns=e.ts_event_ns, ts_init_ns=e.ts_event_ns,
                               account="trailing_stop", seq=e.seq, cash=cash, qty=q,
                               price=e.close, equity=cash + q * e.close))
                written += 1
                if written >= events - 1 and q == 0.0:
                    cut = e.seq
                    break
        j.close()
        # the local venue's clock: one bar closed after the journal's last (the engine was down)
        with LocalVenue(data, speed=0, start=int(data.ts_open_ns[cut + 2]) // 1_000_000) as venue:
            cfg = load_config(REPO / "configs" / "live.yaml", {
                **common, "data.venue": venue.url, "data.poll_interval_s": 0.001,
                "output.dir": str(out / "live")})
            with sqlite3.connect(path) as db:  # filed under the live run's id
                db.execute("UPDATE events SET run_id = ?", (run_id(cfg),))
                n_events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            first: list[float] = []
            t0 = time.perf_counter()
            eng = build_engine(cfg, journal_path=path)
            t_built = time.perf_counter() - t0

            def at_first_bar(bar: BarClosed) -> None:
                if not first:
                    first.append(time.perf_counter() - t0)
                    eng.feed.stop()  # type: ignore[attr-defined]

            eng.bus.subscribe(BarClosed, at_first_bar, priority=PRIORITY_STRATEGY - 1,
                              name="bench-first-bar")
            eng.feed.max_bars = 1  # type: ignore[attr-defined]
            eng.run()
            eng.close()
            halted = any(getattr(b, "halted", "") for b in eng.brokers.values())
    return {
        "journal events": int(n_events),
        "journal bars": cut + 1,
        "restart: build_engine (rebuild + reconcile) s": t_built,
        "restart to the first bar it can trade s": first[0] if first else None,
        "< 2 s": bool(first and first[0] < 2.0),
        # the journal's fills are a backtest's, which the local venue never saw: the
        # reconciliation reports them (a halt); the time is the same either way
        "reconciliation halted (backtest fills the venue never saw)": halted,
    }


def run(bars: int = BARS) -> dict[str, object]:
    return {**_run_orders(bars), **restart()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=BARS)
    ap.add_argument("--restart-only", action="store_true",
                    help="only the restart-to-trading-again time (a journal of 100k events)")
    args = ap.parse_args()
    print(json.dumps(restart() if args.restart_only else run(args.bars), indent=2))
