"""``tradebot telegram CONFIG``: the Telegram front end of an engine (docs/telegram.md).

Reads the config's ``telegram:`` section and the bridge addresses of its ``publish:`` section;
the bot token and the allowed chats come only from ``TELEGRAM_BOT_TOKEN`` and
``TELEGRAM_ALLOWED_CHAT_IDS`` (environment or ``.env``). Without an allowlist it refuses to start
(exit 2). The engine runs elsewhere (``tradebot run --publish``, ``tradebot replay``); this process
survives its restarts. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("telegram", help="Telegram alerts and commands for a running engine")
    p.add_argument("config", type=Path, metavar="CONFIG", help="the run config (YAML)")
    p.add_argument("--env-file", type=Path, default=Path(".env"), metavar="FILE",
                   help="dotenv file read for TELEGRAM_* when not in the environment "
                        "(default .env)")
    p.add_argument("--pub", metavar="ADDR", help="the bridge's event address instead of "
                   "publish.pub (`tradebot run` passes the address it bound)")
    p.add_argument("--commands", metavar="ADDR", help="the bridge's command address instead of "
                   "publish.commands")
    # the Bot API server (tests: a fake); also TELEGRAM_API_URL (a local Bot API server)
    p.add_argument("--api-url", metavar="URL", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_telegram)


def cmd_telegram(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os
    import sys

    from adapters.telegram.security import install_redaction, load_secrets
    from engine.config import load_config

    # the engine first: on a machine with no idle core, this process yields the CPU to it
    os.nice(5)
    secrets = load_secrets(dotenv=args.env_file)
    install_redaction(secrets.token)
    cfg = load_config(args.config)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll otherwise

    from adapters.telegram.bot import FrontEnd

    api = (args.api_url or os.environ.get("TELEGRAM_API_URL") or "").rstrip("/")
    pub = args.pub or cfg.publish.pub
    commands = args.commands or cfg.publish.commands

    async def main() -> None:
        stop = asyncio.Event()
        fe = FrontEnd(cfg.telegram, secrets, pub, commands,
                      base_url=f"{api}/bot" if api else None,
                      base_file_url=f"{api}/file/bot" if api else None)
        print(f"telegram front end: {len(secrets.allowed)} allowed chat(s); engine events "
              f"{pub}, commands {commands}; Ctrl-C stops", file=sys.stderr, flush=True)
        await fe.run(stop)

    import signal

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it like Ctrl-C: the outbox closes cleanly

    signal.signal(signal.SIGTERM, _term)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("telegram front end stopped", file=sys.stderr)
    return 0
