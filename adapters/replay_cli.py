"""``tradebot replay RUN_DIR [--speed N] [--publish ADDR]``: replay a finished run to the UI.

Re-runs the run's resolved config (``RUN_DIR/config.resolved.yaml``, written by ``tradebot run``)
in backtest mode with the ZeroMQ bridge on (``adapters/zmq_bridge.py``), at N bars per second, so
the Dash UI (``tradebot ui``) and its browser tests have an engine replaying real candles. A
replay is not live: it accepts ``pause``/``resume`` (entries; journaled on the wire as
``command`` events) and refuses trading commands. It writes no results and no journal (the run's
own are in RUN_DIR). Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_SPEED = 10.0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "replay", help="replay a finished run's bars to the UI through the ZeroMQ bridge")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="a run's output folder (has config.resolved.yaml)")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED, metavar="N",
                   help=f"bars per second (default {DEFAULT_SPEED:g}; 0 = as fast as possible)")
    p.add_argument("--publish", metavar="ADDR",
                   help="PUB address for events (default publish.pub, tcp://127.0.0.1:5555)")
    p.add_argument("--commands", metavar="ADDR",
                   help="ROUTER address for snapshots and commands (default publish.commands, "
                        "tcp://127.0.0.1:5556)")
    p.add_argument("--data", type=Path, help="bar CSV instead of the run's data.file")
    p.add_argument("--bars", type=int, metavar="N", help="replay only the first N bars")
    p.add_argument("--hold", action="store_true",
                   help="after the last bar keep answering snapshots until Ctrl-C")
    p.set_defaults(func=cmd_replay)


def replay_config(run_dir: Path, *, speed: float, publish: str | None = None,
                  commands: str | None = None, data: Path | None = None) -> Any:
    """The run's resolved config as a paced, publishing, journal-free backtest.

    Raises:
        ConfigError: no such run folder / resolved config, a negative speed, or the data file is
            missing (the message says to pass --data).
    """
    import yaml

    from engine.config import RunConfig, validate_config
    from engine.errors import ConfigError

    path = run_dir / "config.resolved.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no config.resolved.yaml here; give the output folder of a "
                          "`tradebot run` (output.dir, e.g. runs/default)")
    if speed < 0:
        raise ConfigError(f"--speed {speed:g}: bars per second must be >= 0 (0 = as fast as "
                          "possible)")
    raw = yaml.safe_load(path.read_text()) or {}
    raw.pop("config_hash", None)
    raw["mode"] = "backtest"  # a replay is not live, whatever the run was
    raw.setdefault("journal", {})["enabled"] = False
    raw.setdefault("output", {})["progress"] = False
    pub = raw.setdefault("publish", {})
    pub.update({"enabled": True, "speed": float(speed)})
    if publish:
        pub["pub"] = publish
    if commands:
        pub["commands"] = commands
    if data is not None:
        raw.setdefault("data", {})["file"] = str(data)
    cfg = validate_config(RunConfig, raw, path)
    if cfg.data.file is None or not Path(cfg.data.file).is_file():
        raise ConfigError(f"{path}: the run's data file {cfg.data.file} is not there (relative "
                          "paths are from the working directory); pass --data FILE")
    return cfg


def cmd_replay(args: argparse.Namespace) -> int:
    import sys
    import time

    from engine.bootstrap import build_engine
    from engine.errors import ConfigError

    if args.bars is not None and args.bars < 1:
        raise ConfigError(f"--bars {args.bars}: give a positive number of bars")
    cfg = replay_config(args.run_dir, speed=args.speed, publish=args.publish,
                        commands=args.commands, data=args.data)
    feed = None
    if args.bars is not None:
        from adapters.csv_feed import CsvFeed

        history = CsvFeed.from_config(cfg.data).history()
        feed = CsvFeed.from_bars(history.slice(0, min(args.bars, len(history))))
    engine = build_engine(cfg, feed=feed)
    bridge = engine.sinks[0]
    n = engine.store.loaded
    pace = f"{args.speed:g} bars/s" if args.speed else "full speed"
    print(f"replaying {cfg.name}: {engine.store.symbol} {engine.store.timeframe}, {n:,} bars at "
          f"{pace}; events on {bridge.pub_addr}, snapshots and commands on "
          f"{bridge.commands_addr} (run {bridge.run_id}); Ctrl-C stops", file=sys.stderr,
          flush=True)
    from engine.run_command import settle_heap

    settle_heap()
    try:
        engine.run()
        print(f"replay finished after {engine.store.count:,} bars", file=sys.stderr, flush=True)
        if args.hold:
            print("holding: snapshots still answered; Ctrl-C stops", file=sys.stderr, flush=True)
            while True:
                bridge.idle()
                time.sleep(0.25)
    except KeyboardInterrupt:
        print("replay stopped", file=sys.stderr)
    finally:
        engine.close()
    return 0
