"""``make demo``: the whole system in a minute, on this machine, offline.

Starts, as three processes of the real CLI:

1. a local ApeX Omni venue replaying the real candles at speed (``tradebot venue``),
2. the engine in paper mode against it, publishing on ZeroMQ
   (``tradebot run configs/paper.yaml --venue URL --publish``),
3. the Dash UI subscribed to it (``tradebot ui``),

prints the URL to open, and stops all three together on Ctrl-C (each gets SIGINT, so the engine
writes its results; anything still running after a few seconds is killed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "BTCUSDT_15m_data.csv"
BUNDLED = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"


def _wait_port(port: int, timeout: float, procs: list[subprocess.Popen]) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.poll() is not None for p in procs):
            return False
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REAL if REAL.is_file() else BUNDLED,
                    help="candles the venue replays (default: the real BTC/USDT 15m data if "
                         "present, else the bundled synthetic file)")
    ap.add_argument("--start", default="2024-01-01 00:00",
                    help="virtual start (candles before it are the engine's warm-up history)")
    ap.add_argument("--speed", type=float, default=3600.0,
                    help="venue seconds per wall second (3600 = four 15m candles a second)")
    ap.add_argument("--venue-port", type=int, default=8888)
    ap.add_argument("--ui-port", type=int, default=8050)
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="stop by itself after this long (0 = until Ctrl-C)")
    args = ap.parse_args(argv)
    exe = shutil.which("tradebot", path=str(Path(sys.executable).parent)) or "tradebot"
    venue_url = f"http://127.0.0.1:{args.venue_port}"
    out = ROOT / "runs" / "demo"
    cmds = [
        ("venue", [exe, "venue", "--data", str(args.data), "--port", str(args.venue_port),
                   "--start", args.start, "--speed", f"{args.speed:g}", "--gaps", "fill"]),
        ("engine", [exe, "run", str(ROOT / "configs" / "paper.yaml"), "--venue", venue_url,
                    "--publish", "--out", str(out), "--no-progress"]),
        ("ui", [exe, "ui", "--port", str(args.ui_port)]),
    ]
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for name, cmd in cmds:
            print(f"demo: starting the {name}: {' '.join(cmd)}", flush=True)
            # own process group: the terminal's Ctrl-C reaches us, and we stop them in order
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True))
            if name == "venue" and not _wait_port(args.venue_port, 30, procs):
                print("demo: the venue did not start (see its output above)", file=sys.stderr)
                return 1
            if name == "ui" and not _wait_port(args.ui_port, 60, procs):
                print("demo: the UI did not start (see its output above)", file=sys.stderr)
                return 1
        print(f"\n  open http://127.0.0.1:{args.ui_port}/   (Ctrl-C stops the venue, the engine "
              "and the UI)\n", flush=True)
        end = time.monotonic() + args.seconds if args.seconds > 0 else float("inf")
        while time.monotonic() < end:
            for (name, _), p in zip(cmds, procs, strict=False):
                if p.poll() is not None:
                    print(f"demo: the {name} exited ({p.returncode}); stopping the rest",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
        return 0
    finally:
        # one at a time, the UI first and the venue last: the engine finishes its bar and writes
        # its results while the venue still answers
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)

if __name__ == "__main__":
    sys.exit(main())
