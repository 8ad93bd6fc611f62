"""``tradebot indicators --data FILE --out FILE.csv [--variant model|chart]``.

Writes the bars (timestamp + OHLCV, as read) and every indicator column next to them, computed
by the array API with its default parameters. All stochastic columns are on 0-100.

Columns: ``stoch_14_3_3_k``, ``stoch_14_3_3_d``; the reference bot's four stochastics as
``s9_model`` .. ``s60_model`` and / or ``s9_chart`` .. ``s60_chart`` (``--variant``; both when
not given); ``atr_14_wilder``, ``atr_14_sma``; ``linreg_100_slope``, ``linreg_100_intercept``
(fitted value at the bar), ``linreg_100_r2``, ``linreg_100_std``; ``slope_20``; ``poc``,
``vah``, ``val``: the volume profile of the 200 bars before each bar, 80 bins, volume placed
by ``--profile-mode`` (``close``, the default: at each bar's close; ``range``: spread evenly over
its low..high), NaN for the first 200 bars (docs/volume-profile.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numba, pandas: imported when the command runs (engine/cli.py start-up)
    import numpy as np

    from indicators.api import Variant
    from indicators.profile import Mode


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``indicators`` sub-command (entry point ``tradebot.commands``)."""
    p = sub.add_parser(
        "indicators",
        help="write every indicator column next to the bars",
        description="Read a bar CSV and write it back with every indicator column added.",
    )
    p.add_argument("--data", type=Path, required=True, help="bar file, SYMBOL_TIMEFRAME_data.csv")
    p.add_argument("--out", type=Path, required=True,
                   help="output CSV (parent dirs are made; written in full or not at all; "
                        "never the input file)")
    p.add_argument("--symbol", help="symbol, when the file name does not give it (BTCUSDT)")
    p.add_argument("--timeframe", help="timeframe, when the file name does not give it (15m)")
    p.add_argument(
        "--variant",
        choices=("model", "chart"),
        default=None,
        help="which definition of the reference bot's S9/S14/S40/S60 to write (default: both)",
    )
    p.add_argument(
        "--profile-mode",
        choices=("close", "range"),
        default="close",
        help="volume profile (poc, vah, val): each bar's volume at its close (default) or spread "
        "evenly over its low..high",
    )
    p.add_argument(
        "--gaps",
        choices=("fail", "keep", "fill"),
        default="fail",
        help="missing bars in the file: fail, keep them missing, or fill (see docs/data.md)",
    )
    p.set_defaults(func=cmd_indicators)


def indicator_table(
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    variants: tuple[Variant, ...] = ("model", "chart"),
    v: np.ndarray | None = None,
    profile_mode: Mode = "close",
) -> dict[str, np.ndarray]:
    """Every indicator with its default parameters, by output column name (stochastics 0-100).

    Args:
        h, lo, c: high, low and close columns.
        variants: which multi-stochastic definitions to include.
        v: volume column; when given, the volume profile's ``poc``, ``vah`` and ``val``.
        profile_mode: how the profile places a bar's volume, ``"close"`` or ``"range"``.

    Returns:
        Column name -> float64 array aligned with the bars.
    """
    from indicators.api import atr, linreg, multi_stochastic, slope_rule, stochastic
    from indicators.profile import profile_columns

    cols: dict[str, np.ndarray] = {}
    cols["stoch_14_3_3_k"], cols["stoch_14_3_3_d"] = stochastic(h, lo, c, 14, 3, 3)
    for variant in variants:
        for name, line in multi_stochastic(h, lo, c, variant).items():
            cols[f"{name}_{variant}"] = line
    cols["atr_14_wilder"] = atr(h, lo, c, 14, "wilder")
    cols["atr_14_sma"] = atr(h, lo, c, 14, "sma")
    lr = linreg(c, 100)
    cols["linreg_100_slope"] = lr.slope
    cols["linreg_100_intercept"] = lr.intercept
    cols["linreg_100_r2"] = lr.r2
    cols["linreg_100_std"] = lr.resid_std
    cols["slope_20"] = slope_rule(c, 20)
    if v is not None:
        cols.update(profile_columns(h, lo, c, v, mode=profile_mode))
    return cols


def cmd_indicators(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code (``DataError`` reaches ``engine.cli``)."""
    import pandas as pd

    from engine.datafile import load_bars
    from engine.results import check_output_file, replace_file

    check_output_file(args.out, inputs=(args.data,))  # before the work: never the input
    bars = load_bars(args.data, symbol=args.symbol, timeframe=args.timeframe, gaps=args.gaps)
    variants: tuple[Variant, ...] = (args.variant,) if args.variant else ("model", "chart")
    df = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(bars.ts_open_ns, unit="ns").strftime("%Y-%m-%d %H:%M:%S"),
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume,
        }
    )
    table = indicator_table(bars.high, bars.low, bars.close, variants, bars.volume,
                            args.profile_mode)
    for name, col in table.items():
        df[name] = col
    replace_file(args.out, lambda tmp: df.to_csv(tmp, index=False, float_format="%.10g"))
    print(f"wrote {len(df):,} bars x {df.shape[1]} columns to {args.out}")
    return 0
