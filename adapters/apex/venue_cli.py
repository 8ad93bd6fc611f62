"""``tradebot venue``: run the local ApeX Omni venue (``adapters/apex/venue.py``) on loopback.

Registered under the ``tradebot.commands`` entry-point group. Imports nothing heavy at module
level: apexomni and the venue load inside the command.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def _speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (lockstep) or positive, got {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``venue`` to the ``tradebot`` command line."""
    p = sub.add_parser(
        "venue",
        help="serve a candle file as a local ApeX Omni exchange (REST v3) for paper/live runs",
        description=(
            "Replay a SYMBOL_TF_data.csv as a local ApeX Omni venue that the real apexomni "
            "client (and `tradebot run --venue URL`) talks to: market data, account, orders "
            "matched against the replayed candles with the engine's intrabar policy. "
            "Credentials: APEX_API_KEY, APEX_API_SECRET, APEX_API_PASSPHRASE, APEX_ZK_SEEDS "
            "(environment or .env), else test-key/test-secret/test-pass and seeds 'ab'*64. "
            "See docs/apex.md."),
    )
    p.add_argument("--data", type=Path, required=True, metavar="FILE",
                   help="candle file to replay (SYMBOL_TIMEFRAME_data.csv)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8888,
                   help="port (default 8888; 0 = any free port, printed on start)")
    p.add_argument("--ws-port", type=int, metavar="N",
                   help="also serve the websocket API (candles, account pushes) on this port "
                        "(0 = any free port; default: no websocket)")
    p.add_argument("--start", metavar="TIME",
                   help="virtual start time, UTC ('2024-01-01 06:00' or epoch ms); candles "
                        "before it are history (default: the file's first candle)")
    p.add_argument("--speed", type=_speed, default=0.0,
                   help="virtual seconds per wall second (900 = a 15m candle per second); 0 = "
                        "lockstep: the next candle closes once a client has fetched the newest "
                        "closed one (default 0)")
    p.add_argument("--symbol", help="symbol to serve it as (default: from the file name)")
    p.add_argument("--timeframe", help="timeframe, when the file name does not give it")
    p.add_argument("--gaps", choices=("fail", "keep", "fill"), default="fail",
                   help="gap policy when loading the file (default fail)")
    p.add_argument("--balance", type=float, default=10_000.0,
                   help="starting USDT balance (default 10000)")
    p.add_argument("--taker-fee-bps", type=float, default=5.0, help="default 5")
    p.add_argument("--maker-fee-bps", type=float, default=2.0, help="default 2")
    p.add_argument("--slippage-bps", type=float, default=0.0, help="default 0")
    p.add_argument("--account-env", action="append", default=[], metavar="PREFIX",
                   help="serve one more account, whose keys are PREFIX_API_KEY, "
                        "PREFIX_API_SECRET, PREFIX_API_PASSPHRASE, PREFIX_ZK_SEEDS (environment "
                        "or .env; a live strategy's apex_env); repeat for several")
    p.add_argument("--intrabar", choices=("stop_first", "target_first", "ohlc_path"),
                   default="stop_first", help="intrabar fill policy (default stop_first)")
    p.set_defaults(func=cmd_venue)


def cmd_venue(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from adapters.apex.venue import LocalVenue, _iso
    from engine.datafile import load_bars

    bars = load_bars(args.data, symbol=args.symbol, timeframe=args.timeframe, gaps=args.gaps)
    accounts = []
    for prefix in args.account_env:
        from adapters.apex.broker import account_credentials
        from engine.errors import ConfigError

        cred = account_credentials(prefix)
        if cred is None:
            raise ConfigError(f"--account-env {prefix}: {prefix}_API_KEY is not set; export "
                              f"{prefix}_API_KEY, {prefix}_API_SECRET, {prefix}_API_PASSPHRASE "
                              f"and {prefix}_ZK_SEEDS or add them to .env")
        accounts.append(cred)
    venue = LocalVenue(
        bars, speed=args.speed, start=args.start, host=args.host, port=args.port,
        symbol=args.symbol, balance=args.balance, taker_fee=args.taker_fee_bps / 1e4,
        maker_fee=args.maker_fee_bps / 1e4, slippage=args.slippage_bps / 1e4,
        policy=args.intrabar, record_requests=False, websocket=args.ws_port is not None,
        ws_port=args.ws_port or 0, accounts=accounts,
    )
    try:
        venue.start()
    except OSError as exc:
        from engine.errors import ConfigError

        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}; choose another "
                          "--port (0 = any free port)") from exc
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: other machines can reach this venue and trade "
              "its account (with the test credentials unless APEX_* are set)", file=sys.stderr,
              flush=True)
    mode = "lockstep" if venue.speed == 0 else f"speed {venue.speed:g}x"
    print(f"local Apex venue at {venue.url}", flush=True)
    if venue.ws_url:
        print(f"websocket at {venue.ws_url}", flush=True)
    print(f"replaying {venue.symbol} {bars.timeframe}: {venue.n} candles, "
          f"{venue.k0} before the start ({_iso(venue.t0_ms)} UTC), {mode}, "
          f"{len(venue.accounts)} account(s); Ctrl-C stops",
          flush=True)
    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        venue.stop()
        print(f"venue stopped at {_iso(venue.now_ms())} UTC, {venue.n_closed()} candles closed",
              file=sys.stderr, flush=True)
    return 0
