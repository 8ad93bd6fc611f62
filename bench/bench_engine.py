"""The benchmark workload through the full event-driven engine vs backtesting.py.

Workload (configs/default.yaml runs the same strategy): long when stochastic %K(14,3) crosses
above 20, short when it crosses below 80, exit at a 2·ATR(14) stop or the opposite signal, 50 %
of equity per trade, 0.05 % fee per side, market orders filled at the next bar's open.

Ours runs through everything: feed -> bus -> bar store -> indicator handlers -> strategy ->
simulated broker -> portfolio. backtesting.py gets the same indicator arrays (the comparison is
of engines, not indicators) and runs as ``FractionalBacktest`` (whole units of ``UNIT`` BTC; its
own integer sizing), so quantities differ by its unit rounding while entries, exits and prices
must agree.

Run alone: ``python bench/bench_engine.py [--bars N] [--skip-peer] [--repeat R]``. With
``--repeat R`` ours and the peer run alternately R times and the best time of each counts, so a
burst of load on a shared machine moves both or neither (the ratio is the number to compare).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import warnings

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from bench.common import REPO, real_bars, tiled
from engine.bars import Bars
from engine.bootstrap import build_engine
from engine.config import RunConfig

FEE_BPS = 5.0
# The workload pays 0.1 % of half its equity in fees on each of ~60k trades over 1M bars, so
# equity falls by about 1e-17. backtesting.py trades whole units: with 10k cash and satoshi
# units its positions round to 0 units after ~25k trades and it skips trades ours takes. A
# large cash and a 1e-10 BTC unit keep its positions above ~10 units to the end; quantities then
# agree to its unit rounding (UNIT_RTOL) while sides, bars and prices agree exactly.
CASH = 1e12
UNIT = 1e-10
UNIT_RTOL = 1e-3
STRATEGY = {"name": "stoch_cross", "kind": "stoch_cross", "params": {}}


def run_config() -> RunConfig:
    return RunConfig.model_validate({
        "name": "bench",
        "data": {"file": "unused.csv"},
        "account": {"initial_cash": CASH, "position_size_frac": 0.5},
        "costs": {"taker_fee_bps": FEE_BPS, "maker_fee_bps": FEE_BPS, "slippage_bps": 0.0},
        "execution": {"close_at_end": False},
        "strategies": [STRATEGY],
    })


def run_ours(bars: Bars, *, precompute: bool = True):
    from adapters.csv_feed import CsvFeed

    eng = build_engine(run_config(), feed=CsvFeed.from_bars(bars), precompute=precompute)
    t0 = time.perf_counter()
    eng.run()
    return time.perf_counter() - t0, eng


def run_peer(bars: Bars):
    """The same strategy in backtesting.py; returns (seconds, trades DataFrame)."""
    import pandas as pd
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    import indicators

    k, _ = indicators.stochastic(bars.high, bars.low, bars.close, 14, 3, 3)
    atr = indicators.atr(bars.high, bars.low, bars.close, 14, method="wilder")
    unit = UNIT
    df = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
         "Volume": bars.volume},
        index=pd.to_datetime(bars.ts_open_ns, unit="ns"),
    )
    atr_scaled = atr * unit

    class StochCrossBT(Strategy):
        def init(self) -> None:
            self.k = self.I(lambda: k, name="k", overlay=False)
            self.atr = self.I(lambda: atr_scaled, name="atr", overlay=False)

        def next(self) -> None:
            k0, k1 = self.k[-2], self.k[-1]
            if k0 <= 20 < k1:
                self._enter(True)
            elif k0 >= 80 > k1:
                self._enter(False)

        def _enter(self, is_long: bool) -> None:
            pos = self.position
            if (pos.is_long and is_long) or (pos.is_short and not is_long):
                return
            if pos:
                pos.close()
            a = self.atr[-1]
            if not a > 0:
                return
            c = self.data.Close[-1]
            if is_long:
                self.buy(size=0.5, sl=c - 2 * a)
            else:
                self.sell(size=0.5, sl=c + 2 * a)

    bt = FractionalBacktest(df, StochCrossBT, cash=CASH, commission=FEE_BPS / 1e4,
                            fractional_unit=unit, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = bt.run()
        dt = time.perf_counter() - t0
    return dt, stats["_trades"], stats


def compare_trades(eng, peer_trades, bars: Bars) -> dict[str, object]:
    acct = eng.accounts["stoch_cross"]
    ours = [t for t in acct.trades if t.exit_reason != "END_OF_DATA"]
    idx = peer_trades["EntryBar"].to_numpy(), peer_trades["ExitBar"].to_numpy()
    n = min(len(ours), len(peer_trades))
    first_diff = None
    for i in range(n):
        t = ours[i]
        p = peer_trades.iloc[i]
        same = (
            t.entry_seq == idx[0][i] and t.exit_seq == idx[1][i]
            and (t.side == "long") == (p["Size"] > 0)
            and math.isclose(t.entry_price, p["EntryPrice"], rel_tol=1e-9)
            and math.isclose(t.exit_price, p["ExitPrice"], rel_tol=1e-9)
            and math.isclose(t.qty, abs(p["Size"]), rel_tol=UNIT_RTOL, abs_tol=2 * UNIT)
        )
        if not same:
            first_diff = {"index": i, "ours": [t.side, t.entry_seq, t.exit_seq, t.entry_price,
                                               t.exit_price, t.qty],
                          "peer": [float(p["Size"]), int(idx[0][i]), int(idx[1][i]),
                                   float(p["EntryPrice"]), float(p["ExitPrice"])]}
            break
    return {"ours_trades": len(ours), "peer_trades": len(peer_trades),
            "identical": first_diff is None and len(ours) == len(peer_trades),
            "first_difference": first_diff}


def child_memory(n: int) -> dict[str, float]:
    """Peak RSS of a fresh process that loads the data and runs our engine on n bars."""
    code = (
        f"import sys,json,resource;sys.path.insert(0,{str(REPO)!r});"
        "from bench.bench_engine import *;from bench.common import *;"
        f"b=tiled(real_bars(),{n:d});dt,e=run_ours(b);"
        "print(json.dumps({'seconds':dt,"
        "'peak_rss_mb':resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(n_bars: int = 1_000_000, skip_peer: bool = False, repeat: int = 1) -> dict[str, object]:
    bars = tiled(real_bars(), n_bars)
    run_ours(bars.slice(0, 5000))  # warm numba caches
    t_ours, eng = run_ours(bars)
    t_peer, peer_trades = math.inf, None
    for i in range(repeat):
        if not skip_peer:
            t, trades, _ = run_peer(bars)
            if t < t_peer:
                t_peer, peer_trades = t, trades
        if i + 1 < repeat:
            t_ours = min(t_ours, run_ours(bars)[0])
    t_perbar, eng2 = run_ours(bars, precompute=False)
    same_perbar = [t.exit_seq for t in eng.accounts["stoch_cross"].trades] == [
        t.exit_seq for t in eng2.accounts["stoch_cross"].trades]
    res: dict[str, object] = {
        "bars": n_bars,
        "ours_seconds": t_ours,
        "ours_us_per_bar": 1e6 * t_ours / n_bars,
        "ours_bars_per_s": n_bars / t_ours,
        "ours_perbar_indicators_us_per_bar": 1e6 * t_perbar / n_bars,
        "perbar_path_same_trades": same_perbar,
        "trades": len(eng.accounts["stoch_cross"].trades),
        "repeat": repeat,
    }
    if not skip_peer:
        res.update({
            "peer": "backtesting.py " + __import__("backtesting").__version__,
            "peer_seconds": t_peer,
            "peer_us_per_bar": 1e6 * t_peer / n_bars,
            "peer_bars_per_s": n_bars / t_peer,
            "speedup_vs_peer": t_peer / t_ours,
            **compare_trades(eng, peer_trades, bars),
        })
    res.update({f"child_{k}": v for k, v in child_memory(n_bars).items()})
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run ours and the peer alternately this many times; best of each")
    a = ap.parse_args()
    r = run(a.bars, a.skip_peer, a.repeat)
    for k, v in r.items():
        print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
