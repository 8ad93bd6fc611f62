"""``tradebot indicators --data FILE --out FILE.csv``: every indicator column next to the bars."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from engine.datafile import load_bars
from indicators.api import atr, linreg, multi_stochastic, slope_rule, stochastic


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("indicators", help="write every indicator column next to the bars")
    p.add_argument("--data", type=Path, required=True, help="SYMBOL_TIMEFRAME_data.csv")
    p.add_argument("--out", type=Path, required=True, help="output CSV")
    p.add_argument("--gaps", choices=("fail", "keep", "fill"), default="fail")
    p.set_defaults(func=cmd_indicators)


def indicator_table(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """Every indicator with its default parameters, by column name (stochastics 0-100)."""
    cols: dict[str, np.ndarray] = {}
    k, d = stochastic(h, lo, c, 14, 3, 3)
    cols["stoch_14_3_3_k"], cols["stoch_14_3_3_d"] = k, d
    for name, v in multi_stochastic(h, lo, c, "model").items():
        cols[f"{name}_model"] = v
    for name, v in multi_stochastic(h, lo, c, "chart").items():
        cols[f"{name}_chart"] = v
    cols["atr_14_wilder"] = atr(h, lo, c, 14, "wilder")
    cols["atr_14_sma"] = atr(h, lo, c, 14, "sma")
    lr = linreg(c, 100)
    cols["linreg_100_slope"] = lr.slope
    cols["linreg_100_intercept"] = lr.intercept
    cols["linreg_100_mid"] = lr.mid
    cols["linreg_100_r2"] = lr.r2
    cols["linreg_100_std"] = lr.resid_std
    cols["slope_20"] = slope_rule(c, 20)
    return cols


def cmd_indicators(args: argparse.Namespace) -> int:
    bars = load_bars(args.data, gaps=args.gaps)
    df = pd.DataFrame({
        "timestamp": pd.to_datetime(bars.ts_open_ns, unit="ns").strftime("%Y-%m-%d %H:%M:%S"),
        "open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
        "volume": bars.volume,
    })
    for name, col in indicator_table(bars.high, bars.low, bars.close).items():
        df[name] = col
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False, float_format="%.10g")
    print(f"wrote {len(df):,} rows x {df.shape[1]} columns to {args.out}")
    return 0
