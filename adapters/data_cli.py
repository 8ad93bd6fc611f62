"""``tradebot data validate FILE``, ``tradebot data synth`` and ``tradebot data download``.

Registered under the ``tradebot.commands`` entry-point group (see ``engine/cli.py``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from adapters.synth_data import (
    DEFAULT_BARS,
    DEFAULT_SEED,
    DEFAULT_SYMBOL,
    TIMEFRAME,
    SynthParams,
    calibrate,
    compare_facts,
    format_params,
    generate,
    rounded,
    stylised_facts,
    write_csv,
)
from engine.errors import DataError

# engine.datafile (pandas) is imported inside the commands: building the CLI stays fast
GAP_POLICIES = ("fail", "keep", "fill")

DEFAULT_SYNTH = Path("data") / f"{DEFAULT_SYMBOL}_{TIMEFRAME}_data.csv"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``data validate``, ``data synth`` and ``data download`` to the command line."""
    p = sub.add_parser("data", help="validate bar files; regenerate the bundled synthetic data; "
                                    "download ApeX Omni candles")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True

    v = actions.add_parser("validate", help="check a SYMBOL_TIMEFRAME_data.csv and summarise it")
    v.add_argument("file", type=Path)
    v.add_argument("--symbol", help="symbol, when the file name does not give it (BTCUSDT)")
    v.add_argument("--timeframe", help="timeframe, when the file name does not give it (15m)")
    v.add_argument("--gaps", choices=GAP_POLICIES, default="fail",
                   help="gap policy to judge by: fail (gaps are invalid, the default), keep or "
                        "fill (gaps are reported but accepted)")
    v.set_defaults(func=cmd_validate)

    s = actions.add_parser("synth", help="(re)generate the seeded synthetic dataset")
    s.add_argument("--out", type=Path, default=DEFAULT_SYNTH, help=f"default: {DEFAULT_SYNTH}")
    s.add_argument("--bars", type=_positive_int, default=DEFAULT_BARS,
                   help=f"default: {DEFAULT_BARS:,}")
    s.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default: {DEFAULT_SEED}")
    s.add_argument("--calibrate", type=Path, metavar="REAL_CSV",
                   help="also calibrate on this real 15m file and compare stylised facts")
    s.add_argument("--from-calibration", action="store_true",
                   help="generate with the fresh calibration instead of the stored defaults")
    s.add_argument("--print-params", action="store_true",
                   help="print the fresh calibration as Python source for adapters/synth_data.py")
    s.set_defaults(func=cmd_synth)

    d = actions.add_parser(
        "download", help="download ApeX Omni candles into SYMBOL_TIMEFRAME_data.csv (resumable)")
    d.add_argument("--symbol", required=True, help="e.g. BTC-USDT")
    d.add_argument("--timeframe", required=True, help="e.g. 15m (1m 5m 15m 30m 1h 2h 4h 6h 12h "
                   "1d 1w)")
    d.add_argument("--start", required=True, help="first candle open time, UTC: YYYY-MM-DD "
                   "or 'YYYY-MM-DD HH:MM:SS'")
    d.add_argument("--end", help="last candle open time, UTC (default: the newest closed one)")
    d.add_argument("--out", type=Path, default=Path("data"),
                   help="folder for SYMBOL_TIMEFRAME_data.csv, or a .csv path (default: data/)")
    d.add_argument("--venue", default="main",
                   help="main (default), test, or a local venue's http://127.0.0.1:PORT")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_download)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the verdict and summary; 0 when valid, 1 when not."""
    from engine.datafile import validate_file

    report = validate_file(args.file, symbol=args.symbol, timeframe=args.timeframe,
                           gaps=args.gaps)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_download(args: argparse.Namespace) -> int:
    """Download (or resume), validate, summarise; 0 when the file is valid (gaps allowed)."""
    from adapters.apex.download import download

    res = download(args.symbol, args.timeframe, args.start, args.end, args.out, args.venue,
                   progress=not args.no_progress)
    what = "resumed" if res.existing else "downloaded"
    print(f"{what} {res.path}: {res.appended:,} new candles appended to {res.existing:,} rows"
          + (f" ({res.retries} retries)" if res.retries else ""))
    print(res.report.summary())
    return 0 if res.report.ok else 1


def cmd_synth(args: argparse.Namespace) -> int:
    """Write the synthetic file, check it with the validator, and compare it with real data."""
    if (args.from_calibration or args.print_params) and args.calibrate is None:
        raise DataError("--from-calibration and --print-params need --calibrate REAL_CSV")
    from engine.datafile import load_bars, parse_name, validate_file
    from engine.results import check_output_file, replace_file

    # before the work: a folder, an unwritable place or the calibration input is refused
    check_output_file(args.out, inputs=(args.calibrate,) if args.calibrate else ())
    real = load_bars(args.calibrate) if args.calibrate is not None else None
    fresh = calibrate(real) if real is not None else None
    params = rounded(fresh) if args.from_calibration and fresh is not None else SynthParams()
    bars = generate(args.bars, seed=args.seed, params=params)
    replace_file(args.out, lambda tmp: write_csv(bars, tmp))  # whole or not at all
    report = validate_file(args.out, symbol=DEFAULT_SYMBOL, timeframe=TIMEFRAME)
    if not report.ok:  # a bug in the generator, never the user's fault
        print(report.summary())
        return 1
    source = "fresh calibration" if args.from_calibration else "stored parameters"
    print(f"wrote {len(bars):,} SYNTHETIC bars (seed {args.seed}, {source}) to {args.out}; "
          "this is not market data")
    try:
        parse_name(args.out)
    except DataError:
        print(f"note: {args.out.name} does not say its symbol and timeframe; load it with "
              f"--symbol {DEFAULT_SYMBOL} --timeframe {TIMEFRAME}")
    if fresh is not None and real is not None:
        _print_params(SynthParams(), fresh)
        _print_facts(compare_facts(real, bars))
        if args.print_params:
            print("\n# paste into adapters/synth_data.py (SynthParams defaults and the tables):")
            print(format_params(fresh))
    else:
        facts = stylised_facts(bars)
        _print_facts([(k, None, float(v)) for k, v in facts.items() if k != "volume_profile"])
    return 0


def _print_params(stored: SynthParams, fresh: SynthParams) -> None:
    print(f"\n{'parameter':18s} {'stored':>12s} {'calibrated':>12s}")
    for f in fields(stored):
        a, b = getattr(stored, f.name), getattr(fresh, f.name)
        if isinstance(a, float):
            print(f"{f.name:18s} {a:12.5g} {b:12.5g}")


def _print_facts(rows: Sequence[tuple[str, float | None, float]]) -> None:
    with_real = any(real is not None for _, real, _ in rows)
    print(f"\n{'stylised fact':22s}" + (f" {'real':>10s}" if with_real else "")
          + f" {'synthetic':>10s}")
    for name, real, synthetic in rows:
        shown = f" {real:10.4g}" if real is not None else ""
        print(f"{name:22s}{shown} {synthetic:10.4g}")
