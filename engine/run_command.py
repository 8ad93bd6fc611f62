"""``tradebot run CONFIG [--data FILE] [--out DIR]``: run a config and write its results."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.bootstrap import build_engine
from engine.config import load_config
from engine.results import all_metrics, table, write_results


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run a YAML config (backtest, paper or live)")
    p.add_argument("config", type=Path, help="YAML run config, e.g. configs/default.yaml")
    p.add_argument("--data", type=Path, help="bar CSV to use instead of data.file")
    p.add_argument("--out", type=Path, help="output folder instead of output.dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.data is not None:
        overrides["data.file"] = str(args.data)
    if args.out is not None:
        overrides["output.dir"] = str(args.out)
    cfg = load_config(args.config, overrides)
    t0 = time.perf_counter()
    engine = build_engine(cfg)
    total = engine.store.loaded if engine.replay else None
    bar = None
    progress = None
    if (cfg.output.progress and not args.no_progress and (total or 0) > 20_000
            and sys.stderr.isatty()):
        from tqdm import tqdm

        bar = tqdm(total=total, unit="bar", unit_scale=True, desc=cfg.name, leave=False)
        done = [0]

        def progress(n: int) -> None:
            bar.update(n - done[0])
            done[0] = n

    engine.run(on_progress=progress)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    metrics = all_metrics(engine.accounts, engine.store)
    paths = write_results(cfg.output.dir, cfg, engine.accounts, engine.store, metrics)
    n = engine.store.count
    print(f"{cfg.name}: {engine.store.symbol} {engine.store.timeframe}, {n:,} bars, "
          f"{len(engine.accounts)} strateg{'y' if len(engine.accounts) == 1 else 'ies'}, "
          f"{elapsed:.2f} s")
    print(table(metrics))
    print(f"results: {', '.join(str(p) for p in paths)}")
    return 0


def register_lookahead(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check-lookahead",
        help="run a config on truncated copies of its data and report any component whose "
             "output at a bar changes when later bars exist",
    )
    p.add_argument("config", type=Path)
    p.add_argument("--data", type=Path, help="bar CSV to use instead of data.file")
    p.add_argument("--bars", type=int, default=0,
                   help="use only the first N bars (faster; 0 = all)")
    p.set_defaults(func=cmd_check_lookahead)


def cmd_check_lookahead(args: argparse.Namespace) -> int:
    from engine.lookahead import check_lookahead
    from engine.registry import FEEDS, Registry

    overrides: dict[str, object] = {"execution.close_at_end": True}
    if args.data is not None:
        overrides["data.file"] = str(args.data)
    cfg = load_config(args.config, overrides)
    feed_cls = Registry.installed(FEEDS).load("csv")
    bars = feed_cls.from_config(cfg.data).history()
    if args.bars:
        bars = bars.slice(0, min(args.bars, len(bars)))

    def build(c, b):  # type: ignore[no-untyped-def]
        return build_engine(c, feed=feed_cls.from_bars(b))

    report = check_lookahead(cfg, bars, build)
    print(report.summary())
    return 0 if report.ok else 1
