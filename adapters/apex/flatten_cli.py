"""``tradebot flatten CONFIG``: a live account's kill switch (``adapters.apex.broker.flatten``).

Cancels every open order of the config's symbol on its venue, then closes every position with a
reduce-only market order. Registered under ``tradebot.commands``; imports nothing heavy at module
level (apexomni loads inside the command).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``flatten`` to the ``tradebot`` command line."""
    p = sub.add_parser(
        "flatten", help="kill switch: cancel every open order and close every position "
                        "(reduce-only) on a live config's Apex account",
        description="Cancel every open order of CONFIG's symbol on its ApeX Omni venue "
                    "(data.venue, or --venue), then close every position with a reduce-only "
                    "MARKET order at the worst-price guard, on every strategy's account. "
                    "Credentials: APEX_API_KEY, APEX_API_SECRET, APEX_API_PASSPHRASE, "
                    "APEX_ZK_SEEDS (or a strategy's apex_env prefix; environment or .env). "
                    "Stop the live run first, or it may trade again. See docs/apex.md.")
    p.add_argument("config", type=Path, help="the live run's YAML config")
    p.add_argument("--venue", metavar="URL", help="ApeX Omni base URL instead of data.venue "
                   "(main, test or a local venue's http://127.0.0.1:PORT)")
    p.set_defaults(func=cmd_flatten)


def cmd_flatten(args: argparse.Namespace) -> int:
    from adapters.apex.broker import flatten
    from adapters.apex.client import ApexClient
    from engine.config import load_config
    from engine.errors import ConfigError

    cfg = load_config(args.config, {"data.venue": args.venue} if args.venue else None)
    venue = cfg.data.venue
    if not venue or not cfg.data.symbol:
        raise ConfigError(f"{args.config}: flatten needs data.venue (or --venue URL) and "
                          "data.symbol")
    if len(cfg.strategies) == 1 and cfg.strategies[0].apex_env is None:
        for line in flatten(ApexClient(venue, timeout=cfg.data.timeout_s), cfg.data.symbol):
            print(f"flatten: {line}", flush=True)
        return 0
    from adapters.apex.broker import account_clients

    for name, client in account_clients(cfg).items():  # every strategy's own account
        for line in flatten(client, cfg.data.symbol):
            print(f"flatten [{name}]: {line}", flush=True)
    return 0
