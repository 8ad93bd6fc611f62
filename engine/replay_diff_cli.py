"""``tradebot replay-diff JOURNAL [--config RESOLVED_YAML] [--data FILE] [--out FILE] [--json]``:
re-run a paper or live run's journaled bars as a backtest and list where the two differ
(``engine.replay_diff``; docs/apex.md "Backtest-to-live diff").

The top level imports nothing heavy: the comparison (and the engine it replays) is imported when
the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_IDENTICAL = 0
EXIT_DIFFERENT = 1

_EPILOG = """exit status: 0 when the backtest did exactly what the run did (same signals, orders,
fills and trades on the same bars, same fill prices), 1 when there are differences (listed, each
with its likely cause), 2 on bad input (not a journal, an empty one, no config found) with a
message saying what to give instead."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "replay-diff",
        help="re-run a paper/live run's journaled bars as a backtest and list bar by bar where "
             "signals, orders or fills differ, with the likely cause",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("journal", type=Path, metavar="JOURNAL",
                   help="the run's journal.sqlite (in its output folder, e.g. "
                        "runs/paper/journal.sqlite)")
    p.add_argument("--config", type=Path, metavar="RESOLVED_YAML",
                   help="the run's config (default: config.resolved.yaml beside the journal)")
    p.add_argument("--data", type=Path, metavar="FILE",
                   help="replay on this candle file's bars instead of the journaled ones, and "
                        "list every journaled bar the file has with other values (revised after "
                        "the fact)")
    p.add_argument("--run", metavar="RUN_ID",
                   help="which run of the journal (default: the most recent)")
    p.add_argument("--qty-tol", type=float, default=None, metavar="FRAC",
                   help="relative size difference of a fill still counted as equal (default "
                        "0.02: a live broker sizes at the venue's worst-price guard and step "
                        "size)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the report to FILE (the summary still goes to stdout)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--all", action="store_true",
                   help="list every difference (default: the first 20 of each stream)")
    p.set_defaults(func=cmd_replay_diff)


def cmd_replay_diff(args: argparse.Namespace) -> int:
    import json

    from engine.errors import ConfigError
    from engine.replay_diff import QTY_TOL, replay_diff

    qty_tol = QTY_TOL if args.qty_tol is None else args.qty_tol
    if not 0 <= qty_tol < 1:
        raise ConfigError(f"--qty-tol {qty_tol:g}: give a fraction from 0 to below 1 "
                          "(0.02 = 2 %)")
    if args.out is not None and args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; give a file name, e.g. "
                          f"{args.out / 'replay-diff.txt'}")
    report = replay_diff(args.journal, args.config, args.data, args.run, qty_tol)
    text = (json.dumps(report.as_dict(), indent=2) + "\n" if args.json
            else report.text(show_all=args.all))
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_name(f".{args.out.name}.tmp")
            tmp.write_text(text)
            tmp.replace(args.out)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot write it ({exc}); give a writable "
                              "place") from None
        summary = report.text().split("\n## ", 1)[0].rstrip("\n")
        print(summary)
        print(f"report in {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_IDENTICAL if report.identical else EXIT_DIFFERENT
