"""``tradebot run CONFIG [--data FILE] [--out DIR] ...``: run a config and write its results.

Paper and live runs (``mode: paper|live``, ``--venue URL``) run until ``--max-bars N`` closed
bars or Ctrl-C: the first Ctrl-C stops after the current bar and writes the same results as a
backtest of the bars run, plus ``journal.sqlite``; a second one aborts.

Also ``tradebot check-lookahead``. Heavy modules (the engine, numba kernels, pandas) are imported
inside the commands, so that building the command line stays fast (``engine/cli.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, DataError

if TYPE_CHECKING:
    from engine.bootstrap import Engine
    from engine.config import RunConfig

GAP_CHOICES = ("fail", "keep", "fill")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all bars) or a positive number of bars, "
                                         f"got {value}")
    return value


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="bar CSV to use instead of data.file")
    p.add_argument("--symbol", help="symbol instead of data.symbol / the file name (BTCUSDT)")
    p.add_argument("--timeframe", help="timeframe instead of data.timeframe / the file name (15m)")
    p.add_argument("--gaps", choices=GAP_CHOICES,
                   help="missing bars in the file instead of data.gaps: fail, keep or fill "
                        "(docs/data.md)")


def _data_overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for flag, key in (("data", "data.file"), ("symbol", "data.symbol"),
                      ("timeframe", "data.timeframe"), ("gaps", "data.gaps")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = str(value)
    return overrides


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run a YAML config (backtest, paper or live)")
    p.add_argument("config", type=Path, help="YAML run config, e.g. configs/default.yaml")
    _data_flags(p)
    p.add_argument("--out", type=Path,
                   help="output folder instead of output.dir (replaced as a whole when the run "
                        "completes; see README 'Results')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--venue", metavar="URL",
                   help="paper/live: ApeX Omni base URL instead of data.venue (main, test or a "
                        "local venue's http://127.0.0.1:PORT)")
    p.add_argument("--max-bars", type=_positive_int, metavar="N",
                   help="paper/live: stop after N closed bars (Ctrl-C also stops cleanly and "
                        "writes the results)")
    p.add_argument("--publish", nargs="?", const="", metavar="ADDR",
                   help="publish events to the UI / alert front ends (the ZeroMQ bridge, "
                        "docs/ui.md) on ADDR (default publish.pub, tcp://127.0.0.1:5555); "
                        "snapshots and commands on publish.commands")
    p.set_defaults(func=cmd_run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# -- checks before a run -----------------------------------------------------------------------


def mode_unavailable(mode: str, feeds: list[str] | None = None,
                     brokers: list[str] | None = None) -> str | None:
    """Why ``mode`` cannot run with what is installed (None when it can): what each mode needs.

    backtest needs the ``csv`` feed and ``sim`` broker; paper the Apex market-data feed (``apex``
    in ``tradebot.feeds``) with the ``sim`` broker; live the Apex feed and the Apex broker
    (``apex`` in ``tradebot.brokers``). Checked from the installed entry points, so a mode works
    as soon as its adapters are installed.

    Args:
        feeds, brokers: the installed names (default: the ``tradebot.feeds`` and
            ``tradebot.brokers`` entry points).
    """
    from engine.registry import BROKERS, FEEDS, Registry

    if feeds is None:
        feeds = Registry.installed(FEEDS).names()
    if brokers is None:
        brokers = Registry.installed(BROKERS).names()
    if mode == "paper" and "apex" not in feeds:
        return ("mode: paper trades simulated orders on live market data, which needs the Apex "
                "market-data feed ('apex' in the tradebot.feeds entry points, "
                "adapters/apex/feed.py), which is not registered in this install: run "
                "`pip install -e .` again (it registers the entry points), or use mode: backtest")
    if mode == "live":
        missing = [what for what, ok in (
            ("the Apex market-data feed ('apex' in tradebot.feeds)", "apex" in feeds),
            ("the Apex broker ('apex' in tradebot.brokers, adapters/apex/broker.py)",
             "apex" in brokers)) if not ok]
        if missing:
            return (f"mode: live needs {' and '.join(missing)}; not installed yet. Use "
                    "mode: backtest (or mode: paper once its feed is installed)")
    return None


def warmup_needed(engine: Engine) -> tuple[int, str]:
    """(bars a replay needs, what needs them): the longest feature warm-up plus two bars (one
    bar to decide on after the warm-up, one to fill the order at)."""
    worst, who = 0, "the strategies"
    for fid, h in engine.handlers.items():
        w = int(getattr(h, "warmup_bars", 0) or 0)
        if w > worst:
            kind = next((f.kind for f in engine.config.features if f.id == fid), None)
            worst, who = w, f"feature {fid!r}" + (f" ({kind})" if kind else "")
    return worst + 2, (f"{who} has a warm-up of {worst} bars" if worst else
                       "a strategy needs a bar to decide on and one to fill at")


def check_enough_bars(engine: Engine, source: str) -> None:
    """Refuse a replay too short for the config's warm-up (it would only print zeros).

    Raises:
        DataError: naming the bars needed, the bars present and the feature that needs them.
    """
    if not engine.replay:
        return
    need, why = warmup_needed(engine)
    have = engine.store.loaded
    if have < need:
        raise DataError(
            f"{source}: {have:,} bar{'s' * (have != 1)}, but this config needs at least "
            f"{need:,} ({why}, plus one bar to decide and one to fill); use a longer file or "
            "a wider data.start .. data.end")


def check_features_have_values(engine: Engine, source: str) -> None:
    """Refuse a replay on which a feature's value (its first output column) is NaN on every bar
    after its warm-up (e.g. a volume profile on a file whose volume is zero everywhere): every
    decision that reads it would read NaN.

    Checked after the run, on the bars run (``store.count``).

    Raises:
        DataError: naming the feature and, for zero volume, the cause.
    """
    import numpy as np

    if not engine.replay:
        return
    n = engine.store.count
    no_volume = not np.any(engine.store.column("volume")[:n] > 0)
    names = set(engine.features.names())
    for fid, h in engine.handlers.items():
        # the first output is the feature's value (the volume profile's POC); later ones may be
        # counts that stay 0
        outs = tuple(getattr(h, "outputs", ()))[:1]
        cols = [c for o in outs for c in (o, f"{fid}_{o}") if c in names]
        if not cols:
            continue
        start = min(int(getattr(h, "warmup_bars", 0) or 0), max(n - 1, 0))
        filled = [engine.features.column(c)[start:n] for c in cols]
        if any(col.size and np.isfinite(col).any() for col in filled):
            continue
        if not any(col.size for col in filled):
            continue
        kind = next((f.kind for f in engine.config.features if f.id == fid), "?")
        cause = (" The volume is zero on every bar of the file, and a volume profile (or any "
                 "feature computed from volume) needs traded volume: use a file that has it."
                 if no_volume else "")
        raise DataError(f"{source}: feature {fid!r} ({kind}) has no value on any of the "
                        f"{n - start:,} bars after its warm-up (all NaN), so no strategy could "
                        f"use it.{cause}")


def _source(cfg: RunConfig) -> str:
    return str(cfg.data.file)


# -- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import load_config

    overrides = _data_overrides(args)
    if args.out is not None:
        overrides["output.dir"] = str(args.out)
    if getattr(args, "venue", None) is not None:
        overrides["data.venue"] = args.venue
    if getattr(args, "publish", None) is not None:
        overrides["publish.enabled"] = True
        if args.publish:
            overrides["publish.pub"] = args.publish
    cfg = load_config(args.config, overrides)
    if cfg.telegram.enabled and not cfg.publish.enabled:  # the bot listens to the bridge
        overrides["publish.enabled"] = True
        cfg = load_config(args.config, overrides)
    if cfg.execution.confirm != "none" and not cfg.publish.enabled:
        raise ConfigError(
            f"{args.config}: execution.confirm: {cfg.execution.confirm} waits for taps that come "
            "through the bridge: set telegram.enabled: true (the run starts the bot), or run "
            "with --publish and `tradebot telegram CONFIG` beside it")
    why = mode_unavailable(cfg.mode)
    if why:
        raise ConfigError(f"{args.config}: {why}")
    if getattr(args, "max_bars", None) is not None and cfg.mode == "backtest":
        raise ConfigError("--max-bars stops a paper or live run; for a backtest set data.end "
                          "(or data.start) in the config")

    from engine.results import claim_output

    with claim_output(cfg.output.dir) as out:  # refused now, not after the run
        return _run(cfg, out, args)


_settled = False


def settle_heap() -> None:
    """Take every object alive now (the modules, the engine just built) out of the garbage
    collector's sight, once per process, right before the bar loop (``tradebot run``,
    ``tradebot replay``). A full collection walked all of them: with numba, pandas and scipy
    loaded, about 156,000 objects and 100 to 300 ms with the bar loop stopped, several times a
    minute in a paced or live run, where it held up the bar's orders and what the bridge
    publishes (docs/telegram.md, speed). Objects made later are collected as before."""
    global _settled
    if not _settled:
        _settled = True
        import gc

        gc.freeze()


def _run(cfg: RunConfig, out: Any, args: argparse.Namespace) -> int:
    from engine.bootstrap import build_engine
    from engine.results import all_metrics, table, write_results

    t0 = time.perf_counter()
    # paper/live journal into the staged folder: it lands in output.dir with the results
    engine = build_engine(cfg, journal_path=Path(out.path) / "journal.sqlite")
    check_enough_bars(engine, _source(cfg))
    bot = None
    for sink in engine.sinks:  # the ZeroMQ bridge says where to connect
        if hasattr(sink, "pub_addr"):
            print(f"publishing events on {sink.pub_addr}, snapshots and commands on "
                  f"{sink.commands_addr}", file=sys.stderr)
            if cfg.telegram.enabled:  # the bot as a child process (engine/telegram_child.py)
                from engine.telegram_child import BotProcess

                bot = BotProcess(args.config, sink.pub_addr, sink.commands_addr).start()
    if getattr(args, "max_bars", None) is not None:
        engine.feed.max_bars = args.max_bars  # type: ignore[attr-defined]
    if not engine.replay and cfg.output.progress and not args.no_progress:
        from engine.bus import PRIORITY_SINK
        from engine.events import BarClosed

        engine.bus.subscribe(BarClosed, _print_bar, priority=PRIORITY_SINK, name="progress")
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

    settle_heap()
    try:
        with _stop_on_sigint(engine.feed):
            engine.run(on_progress=progress)
    finally:
        if bar is not None:
            bar.close()
        if bot is not None:
            bot.stop()
        engine.close()
    elapsed = time.perf_counter() - t0
    check_features_have_values(engine, _source(cfg))
    stats = getattr(engine.feed, "stats", None) if not engine.replay else None
    if stats is not None:  # paper/live: what the venue feed did
        print(f"feed: {stats.delivered} bars after {stats.warmup} of history, {stats.polls} "
              f"polls, {stats.backfilled} back-filled, {stats.duplicates} duplicates, "
              f"{stats.revised} revised, {stats.gaps} gaps ({stats.filled} filled), "
              f"{stats.errors} venue errors", file=sys.stderr)
    metrics = all_metrics(engine.accounts, engine.store)
    paths = write_results(out.path, cfg, engine.accounts, engine.store, metrics)
    target = out.commit()
    n = engine.store.count
    print(f"{cfg.name}: {engine.store.symbol} {engine.store.timeframe}, {n:,} bars, "
          f"{len(engine.accounts)} strateg{'y' if len(engine.accounts) == 1 else 'ies'}, "
          f"{elapsed:.2f} s")
    print(table(metrics))
    from engine.metrics import cagr_note

    note = cagr_note(metrics)
    if note:
        print(note)
    print(f"results in {target}/: {', '.join(p.name for p in paths)}")
    return 0


@contextlib.contextmanager
def _stop_on_sigint(feed: object) -> Iterator[None]:
    """Paper/live: the first Ctrl-C asks the feed to stop after the current bar (a wait on the
    venue ends at once), so the run ends cleanly and writes its results like a backtest of the
    bars run; a second Ctrl-C aborts (exit 130, no results)."""
    request_stop = getattr(feed, "request_stop", None)
    if request_stop is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    hits = [0]

    def handler(signum: int, frame: object) -> None:
        hits[0] += 1
        if hits[0] > 1:
            raise KeyboardInterrupt
        print("\nstopping after the current bar; results follow (Ctrl-C again aborts)",
              file=sys.stderr)
        request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_bar(bar: Any) -> None:
    """Paper/live: one line per closed bar on stderr."""
    t = time.strftime("%Y-%m-%d %H:%M", time.gmtime(bar.ts_event_ns // 1_000_000_000))
    print(f"bar {bar.seq}: {bar.symbol} {bar.timeframe} closed {t} UTC  o={bar.open:g} "
          f"h={bar.high:g} l={bar.low:g} c={bar.close:g} v={bar.volume:g}", file=sys.stderr)


# -- lookahead ---------------------------------------------------------------------------------


def register_lookahead(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check-lookahead",
        help="run a config on truncated copies of its data and report any component whose "
             "output at a bar changes when later bars exist",
    )
    p.add_argument("config", type=Path)
    _data_flags(p)
    p.add_argument("--bars", type=_non_negative_int, default=0,
                   help="use only the first N bars (faster; 0 = all)")
    p.set_defaults(func=cmd_check_lookahead)


def cmd_check_lookahead(args: argparse.Namespace) -> int:
    from engine.bootstrap import build_engine
    from engine.config import load_config
    from engine.lookahead import check_lookahead
    from engine.registry import FEEDS, Registry

    overrides: dict[str, object] = {"execution.close_at_end": True, **_data_overrides(args)}
    cfg = load_config(args.config, overrides)
    feed_cls = Registry.installed(FEEDS).load("csv")
    bars = feed_cls.from_config(cfg.data).history()
    if args.bars:
        bars = bars.slice(0, min(args.bars, len(bars)))

    def build(c, b):  # type: ignore[no-untyped-def]
        engine = build_engine(c, feed=feed_cls.from_bars(b))
        return engine

    report = check_lookahead(cfg, bars, build)
    print(report.summary())
    return 0 if report.ok else 1
