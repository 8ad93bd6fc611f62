"""The six exit strategies over the whole real data set with shared signals.

Measured in one run on ``../shared/data/BTCUSDT_15m_data.csv`` (69,122 bars) with
``configs/default.yaml`` (rule-based signals, the close-only volume profile, all six plugins):

- **six, one process** (``execution.workers: 1``) and **six, worker processes** (``workers: 0``,
  one per core), wall time from config to results including the shared features and signals;
- **one strategy alone** (``poc_target``), the same way: the target is six < 2x one;
- **the reference bot's way**, reimplemented as a baseline: for every signal, a per-trade loop
  over a pandas DataFrame (``df.iloc[j]`` per bar, up to 672 bars) with the 80-bin close-only
  profile recomputed by ``numpy.histogram`` from a DataFrame slice on every trailing tick
  (strategy 1, POC target, its rules as section 6 of the reference describes them). It runs on
  the same signals; it is timed on the first ``ref_signals`` of them and scaled to all, per
  strategy, then times six (the reference ran its six the same way, in threads, under the GIL).

Run alone: ``python bench/bench_strategies.py``; ``bench/run_all.py`` calls ``run()``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REAL_DATA, REPO
from engine.bootstrap import build_engine
from engine.config import RunConfig
from engine.events import SignalRaised


def _config(workers: int, only: str | None = None) -> RunConfig:
    raw = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    raw["data"]["file"] = str(REAL_DATA)
    raw["execution"]["workers"] = workers
    raw["output"]["progress"] = False
    if only is not None:
        raw["strategies"] = [s for s in raw["strategies"] if s["name"] == only]
    return RunConfig.model_validate(raw)


def _timed(cfg: RunConfig, record: bool = False):
    t0 = time.perf_counter()
    eng = build_engine(cfg)
    signals: list[SignalRaised] = []
    if record:
        eng.bus.subscribe(SignalRaised, signals.append, priority=10_000, name="bench-record")
    eng.run()
    return time.perf_counter() - t0, eng, signals


# -- the reference bot's way ----------------------------------------------------------------------
def _ref_profile(df, start: int, stop: int, bins: int = 80):
    """Close-only 80-bin profile of df rows [start, stop) from a DataFrame slice (reference)."""
    w = df.iloc[max(0, start):stop]
    lo, hi = w["low"].min(), w["high"].max()
    edges = np.linspace(lo, hi, bins + 1)
    vols, _ = np.histogram(w["close"].to_numpy(), bins=edges, weights=w["volume"].to_numpy())
    prices = (edges[:-1] + edges[1:]) / 2
    return prices, vols


def _ref_levels(prices, vols):
    poc_i = int(np.argmax(vols))
    total = vols.sum()
    lo_i = hi_i = poc_i
    acc = vols[poc_i]
    while acc < 0.7 * total and (lo_i > 0 or hi_i < len(vols) - 1):
        up = vols[hi_i + 1] if hi_i < len(vols) - 1 else -1
        dn = vols[lo_i - 1] if lo_i > 0 else -1
        if up >= dn:
            hi_i += 1
            acc += up
        else:
            lo_i -= 1
            acc += dn
    thr = np.percentile(vols, 75)
    hvns = prices[(vols >= thr) & (vols > 0)]
    return prices[poc_i], prices[hi_i], prices[lo_i], hvns


def _ref_poc_trade(df, idx: int, long: bool, entry: float, stop: float, hold: int = 672) -> float:
    """One trade of the reference bot's strategy 1 with its per-bar DataFrame loop; returns pnl%."""
    prices, vols = _ref_profile(df, idx - 200, idx)
    poc, vah, val, _ = _ref_levels(prices, vols)
    if long:
        ppt = poc if poc > entry * 1.01 else vah if vah > entry * 1.01 else entry * 1.04
    else:
        ppt = poc if poc < entry * 0.99 else val if val < entry * 0.99 else entry * 0.96
    size, realised, hit_ppt, last_tick = 1.0, 0.0, False, -10**9
    end = min(len(df), idx + hold)
    for j in range(idx + 1, end):
        row = df.iloc[j]
        if (long and row["low"] <= stop) or (not long and row["high"] >= stop):
            return realised + size * ((stop - entry) if long else (entry - stop)) / entry * 100
        if not hit_ppt and ((long and row["high"] >= ppt) or (not long and row["low"] <= ppt)):
            realised += 0.5 * ((ppt - entry) if long else (entry - ppt)) / entry * 100
            size, hit_ppt, stop = 0.5, True, entry
        if hit_ppt and j - last_tick >= 10:
            last_tick = j
            p, v = _ref_profile(df, j - 200, j)
            hvns = _ref_levels(p, v)[3]
            c = row["close"]
            if long:
                cand = hvns[hvns < c * 0.99]
                if cand.size and cand.max() > stop:
                    stop = float(cand.max())
            else:
                cand = hvns[hvns > c * 1.01]
                if cand.size and cand.min() < stop:
                    stop = float(cand.min())
    last = df.iloc[end - 1]["close"]
    return realised + size * ((last - entry) if long else (entry - last)) / entry * 100


def reference_loop(signals: list[SignalRaised], ref_signals: int) -> dict[str, float]:
    import pandas as pd

    from engine.datafile import load_bars

    b = load_bars(REAL_DATA)
    df = pd.DataFrame({"open": b.open, "high": b.high, "low": b.low, "close": b.close,
                       "volume": b.volume})
    some = signals[:ref_signals]
    t0 = time.perf_counter()
    for s in some:
        _ref_poc_trade(df, s.seq, s.side == "long", s.entry_price, s.stop_price)
    dt = time.perf_counter() - t0
    per_signal = dt / max(1, len(some))
    return {"ref_signals_timed": len(some), "ref_seconds_timed": dt,
            "ref_seconds_one_strategy_all_signals": per_signal * len(signals),
            "ref_seconds_six_strategies": 6 * per_signal * len(signals)}


def run(ref_signals: int = 300) -> dict[str, object]:
    if not REAL_DATA.is_file():
        raise SystemExit(f"needs the real data at {REAL_DATA}")
    _timed(_config(1, "poc_target"))  # warm caches (numba, data)
    t_one, _, signals = _timed(_config(1, "poc_target"), record=True)
    t_six1, eng6, _ = _timed(_config(1))
    t_six, engp, _ = _timed(_config(0))
    n = eng6.store.count
    same = all(
        [(t.entry_seq, t.exit_seq, t.pnl) for t in eng6.accounts[k].trades]
        == [(t.entry_seq, t.exit_seq, t.pnl) for t in engp.accounts[k].trades]
        for k in eng6.accounts)
    res: dict[str, object] = {
        "bars": n,
        "signals": len(signals),
        "trades_per_strategy": {k: len(a.trades) for k, a in engp.accounts.items()},
        "one_strategy_seconds": t_one,
        "six_one_process_seconds": t_six1,
        "six_workers_seconds": t_six,
        "workers": min(6, len(__import__("os").sched_getaffinity(0))),
        "six_over_one_one_process": t_six1 / t_one,
        "six_over_one_workers": t_six / t_one,
        "workers_same_trades": same,
        "six_workers_bars_per_s": n / t_six,
    }
    ref = reference_loop(signals, ref_signals)
    res.update(ref)
    res["speedup_six_vs_reference_six"] = ref["ref_seconds_six_strategies"] / t_six
    return res


def main() -> None:
    for k, v in run().items():
        print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
