"""``tradebot ui``: the Dash monitor, subscribed to a running engine's ZeroMQ bridge.

Imports nothing heavy at module level (``tradebot --help`` stays fast): Dash, plotly and zmq are
imported when the command runs.
"""

from __future__ import annotations

import argparse

DEFAULT_CONNECT = "tcp://127.0.0.1:5555"
DEFAULT_COMMANDS = "tcp://127.0.0.1:5556"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ui", help="the Dash monitoring UI for an engine publishing on ZeroMQ")
    p.add_argument("--connect", default=DEFAULT_CONNECT, metavar="ADDR",
                   help=f"the engine's PUB address (default {DEFAULT_CONNECT})")
    p.add_argument("--commands", default=DEFAULT_COMMANDS, metavar="ADDR",
                   help=f"the engine's snapshot/command ROUTER (default {DEFAULT_COMMANDS})")
    p.add_argument("--port", type=int, default=8050, help="HTTP port (default 8050)")
    p.add_argument("--host", default="127.0.0.1",
                   help="HTTP interface (default 127.0.0.1; the UI can send trading commands)")
    p.add_argument("--bars", type=int, default=2000, metavar="N",
                   help="bars asked for in a snapshot (default 2000)")
    p.add_argument("--max-bars", type=int, default=10_000, metavar="N",
                   help="most bars the chart keeps (default 10000)")
    p.add_argument("--visible", type=int, default=300, metavar="N",
                   help="bars in view when following the last bar (default 300)")
    p.add_argument("--webgl", choices=("auto", "on", "off"), default="auto",
                   help="draw the price chart with WebGL: auto (default) when the browser has "
                        "it, on, or off (SVG)")
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    import logging
    import sys

    from engine.errors import ConfigError

    for name in ("connect", "commands"):
        addr = getattr(args, name)
        if not addr.startswith(("tcp://", "ipc://", "inproc://")):
            raise ConfigError(f"--{name} {addr!r}: give a ZeroMQ address such as "
                              f"{DEFAULT_CONNECT if name == 'connect' else DEFAULT_COMMANDS}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: give a TCP port between 1 and 65535")
    if args.bars < 1 or args.max_bars < args.bars or args.visible < 10:
        raise ConfigError("--bars must be >= 1, --max-bars >= --bars and --visible >= 10")
    from ui.app import create_app
    from ui.state import UiState
    from ui.subscriber import Subscriber

    state = UiState(max_bars=args.max_bars)
    sub = Subscriber(state, args.connect, args.commands, bars=args.bars)
    sub.start()
    gl = {"auto": None, "on": True, "off": False}[args.webgl]
    app = create_app(state, args.commands, n_visible=args.visible, webgl=gl)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"tradebot ui: open http://{args.host}:{args.port}/  (engine events {args.connect}, "
          f"commands {args.commands}); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        app.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=True)
    finally:
        sub.stop()
    return 0
