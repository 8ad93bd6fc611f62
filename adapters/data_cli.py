"""``tradebot data validate FILE`` and ``tradebot data synth``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from adapters.synth_data import calibrate, generate, stylised_facts, write_csv
from engine.datafile import load_bars, validate_file

DEFAULT_SYNTH = Path("data/SYNTH-BTCUSDT_15m_data.csv")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("data", help="validate bar files, regenerate the bundled synthetic data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    v = dsub.add_parser("validate", help="check a SYMBOL_TIMEFRAME_data.csv and summarise it")
    v.add_argument("file", type=Path)
    v.add_argument("--symbol", help="symbol, if the file name does not give it")
    v.add_argument("--timeframe", help="timeframe, if the file name does not give it")
    v.set_defaults(func=cmd_validate)
    s = dsub.add_parser("synth", help="(re)generate the seeded synthetic dataset")
    s.add_argument("--out", type=Path, default=DEFAULT_SYNTH)
    s.add_argument("--bars", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--calibrate", type=Path, metavar="REAL_CSV",
                   help="print parameters calibrated on real data and compare stylised facts")
    s.set_defaults(func=cmd_synth)


def cmd_validate(args: argparse.Namespace) -> int:
    report = validate_file(args.file, symbol=args.symbol, timeframe=args.timeframe)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_synth(args: argparse.Namespace) -> int:
    bars = generate(args.bars, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(bars, str(args.out))
    print(f"wrote {len(bars):,} synthetic bars to {args.out} (seed {args.seed}); "
          "this is NOT market data")
    if args.calibrate is not None:
        real = load_bars(args.calibrate)
        params = calibrate(real)
        print("calibrated parameters:", {k: v for k, v in vars(params).items()
                                         if k not in ("volume_profile", "seasonal_vol")})
        fr, fs = stylised_facts(real), stylised_facts(bars)
        print(f"{'statistic':24s} {'real':>10s} {'synthetic':>10s}")
        for k in fr:
            if k == "volume_profile":
                corr = float(np.corrcoef(fr[k], fs[k])[0, 1])
                print(f"{'intraday volume corr':24s} {'':>10s} {corr:10.3f}")
            else:
                print(f"{k:24s} {fr[k]:10.4g} {fs[k]:10.4g}")
    return 0
