"""The ``tradebot`` command line.

Core commands live here. Layers above ``engine/`` contribute sub-commands through the
``tradebot.commands`` entry-point group: each entry point is a function
``register(subparsers) -> None`` that adds one sub-parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). That keeps ``engine/`` free of upward
imports while ``tradebot indicators`` and ``tradebot data synth`` still appear in one CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engine.errors import EngineError
from engine.registry import COMMANDS, Registry

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradebot",
        description="Event-driven crypto trading engine: backtest, paper and live from one loop.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    reg = Registry.installed(COMMANDS)
    for name in reg.names():
        register = reg.load(name)
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
