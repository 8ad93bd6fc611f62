"""Telegram front end: signal-to-message latency at the fake Bot API, and the engine's speed
with the front end attached (a separate `tradebot telegram` process subscribed to the bridge)
vs detached (the bridge publishing the same messages to a subscriber that does not read them,
so the difference is the front end's own cost: its CPU beside the engine's). Same run.

Every part runs where it runs in production: the engine (with the bridge) in this process, the
front end as a `tradebot telegram` process, and the fake Bot API in a third process (Telegram is
not in the engine's process). The fake prints the time it accepted each message.

Latency: a real engine replays real candles at 100 bars/s through the bridge; a bus subscriber
stamps each SignalRaised / OrderFilled as the engine raises it; latency = the fake's acceptance
of the alert - the raise. A signal's alert is its text (with the bridge's ``setup`` answer); its
chart follows as a second message and is not counted. A fill's alert is text. 8,000 bars (80 s,
about 190 signals and 250 fills) so that the p99 is not simply the slowest alert (with the 1,200
bars of before, 28 signals, it was). The front end runs with ``TRADEBOT_TG_TRACE``: it stamps
each alert's steps (received on the SUB socket, its setup answered, queued in the outbox, picked
by the sender, accepted), so the bench also reports where the time of the slowest alerts went.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO, real_bars, tiled

# the fake Bot API, in a process of its own: prints "url token", then one JSON line per message
# it accepted: [time, method, text or caption]
# (one line at a time: the lanes' requests are answered on threads of their own, and two
# print()s could interleave into a line that is not JSON, losing both messages' samples)
_FAKE = """
import json, sys, threading, time
sys.path.insert(0, '.')
from tests.telegram.fake_tg import FakeTelegram
f = FakeTelegram()
answer = f._answer
lock = threading.Lock()
def logged(method, p):
    out = answer(method, p)
    if method in ('sendMessage', 'sendPhoto'):
        line = json.dumps([time.time(), method, p.get('text') or p.get('caption') or ''])
        with lock:
            sys.stdout.write(line + '\\n')
            sys.stdout.flush()
    return out
f._answer = logged
print(f.url, f.token, flush=True)
time.sleep(3600)
"""


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def _stats(name: str, xs: list[float]) -> dict[str, object]:
    """Count, p50, p95, p99 and max in ms (nearest rank)."""
    out: dict[str, object] = {f"{name}_alerts": len(xs)}
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        out[f"{name}_to_message_{label}_ms"] = _pct(xs, q) * 1000
    return out


# the steps of an alert's path, from the front end's trace (bot.py, TRADEBOT_TG_TRACE): the
# time from the previous step (the first: from the engine raising the event)
_STEPS = (("sub", "raised -> on the SUB"), ("answer", "-> setup answered"),
          ("queued", "-> queued"), ("pick", "-> picked by the sender"),
          ("accepted", "-> accepted by the fake"))


def _breakdown(trace: Path, raised: dict[str, float], accepted: dict[str, float],
               slowest: int = 5) -> dict[str, object]:
    """Median of each step over all signals, and the steps of the ``slowest`` signals."""
    stamps: dict[str, dict[str, float]] = {}
    gc_ms: list[float] = []
    if not trace.is_file():  # a front end without the trace (an older one)
        return {}
    for line in trace.read_text().splitlines():
        t, stage, key = json.loads(line)
        if stage == "gc":
            gc_ms.append(float(key.split()[1]) * 1000)
        elif key.startswith("signal-"):
            stamps.setdefault(key[len("signal-"):], {}).setdefault(stage, t)  # first pick
    rows = []
    for alarm, t0 in raised.items():
        st = stamps.get(alarm, {})
        if alarm not in accepted or "sub" not in st:
            continue
        st = {**st, "accepted": accepted[alarm]}
        prev, steps = t0, {}
        for stage, label in _STEPS:
            if stage in st:
                steps[label] = (st[stage] - prev) * 1000
                prev = st[stage]
        rows.append((accepted[alarm] - t0, alarm, steps))
    rows.sort()
    med = {label: statistics.median(r[2].get(label, 0.0) for r in rows) for _, label in _STEPS}
    return {
        "signal_steps_median_ms": {k: round(v, 1) for k, v in med.items()},
        "slowest_signals_steps_ms": [
            {"alarm": a, "total": round(t * 1000, 1), **{k: round(v, 1) for k, v in s.items()}}
            for t, a, s in rows[-slowest:][::-1]],
        "frontend_gc_pauses_over_2ms": len(gc_ms),
        "frontend_gc_pause_max_ms": max(gc_ms, default=0.0),
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Bot:
    """The fake Bot API process and a `tradebot telegram` process for a bridge."""

    def __init__(self, tmp: Path, mode: str, br: Any, pub: str, cmd: str,
                 rate_limit_per_min: int | None = None, trace: Path | None = None,
                 routes: dict[str, list[int]] | None = None) -> None:
        from tests.telegram.harness import run_config

        self.fake = subprocess.Popen([sys.executable, "-c", _FAKE], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        url, token = self.fake.stdout.readline().split()
        self.sent: list[tuple[float, str, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        cfg = run_config(mode).resolved_dict()
        cfg["publish"].update({"pub": pub, "commands": cmd})
        cfg["telegram"]["outbox"] = str(tmp / f"outbox-{time.time_ns()}.sqlite")
        if rate_limit_per_min is not None:
            cfg["telegram"]["rate_limit_per_min"] = rate_limit_per_min
        chats = {42}
        if routes:
            cfg["telegram"]["routes"] = routes
            chats |= {c for cs in routes.values() for c in cs}
        path = tmp / f"tg-{time.time_ns()}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": token,
               "TELEGRAM_ALLOWED_CHAT_IDS": ",".join(map(str, sorted(chats)))}
        env.pop("TRADEBOT_TG_TRACE", None)
        if trace is not None:
            env["TRADEBOT_TG_TRACE"] = str(trace)
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "telegram", str(path),
                                      "--api-url", url, "--env-file", "/nonexistent"],
                                     cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while not br._subscribed:  # the front end's SUB reached the bridge
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("the telegram front end never subscribed")
            br.idle()
            time.sleep(0.05)
        # its start-up (imports, the chart process's warm-up chart) is over: it idles
        last, end = _cpu_s(self.proc.pid), time.monotonic() + 60
        while time.monotonic() < end:
            br.idle()
            time.sleep(0.5)
            now = _cpu_s(self.proc.pid)
            if now - last < 0.03:
                break
            last = now
        time.sleep(1.0)  # the chart process (its own CPU time) finishes its warm-up too

    def _read(self) -> None:
        assert self.fake.stdout is not None
        for line in self.fake.stdout:
            try:
                t, method, text = json.loads(line)
            except ValueError:  # not one of the fake's lines (a library's print)
                continue
            self.sent.append((t, method, text))

    def close(self) -> None:
        for p in (self.proc, self.fake):
            p.terminate()
            try:  # the bot's exit waits for the chart being drawn (seconds on a loaded machine)
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def _latency(tmp: Path, n: int = 8000, speed: float = 100.0) -> dict[str, object]:
    import msgspec

    from adapters.telegram import alerts
    from engine import wire
    from engine.events import OrderFilled, SignalRaised
    from tests.telegram.harness import EngineRun, free_addr

    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(real_bars(), n, "paper", pub, cmd, speed=speed)
    sig_raised: dict[str, float] = {}  # alarm id -> time
    fill_raised: dict[str, float] = {}  # the fill's alert text -> time

    def stamp(ev: object) -> None:
        if isinstance(ev, SignalRaised):
            sig_raised[ev.alarm_id] = time.time()
        else:
            msg = {"run": "", "seq": 0, "type": "OrderFilled", "data": msgspec.to_builtins(ev)}
            fill_raised[alerts.event_alert(wire.kind_of("OrderFilled"), msg)[2]] = time.time()

    eng.engine.bus.subscribe(SignalRaised, stamp, priority=999, name="bench-stamp-s")
    eng.engine.bus.subscribe(OrderFilled, stamp, priority=999, name="bench-stamp-f")
    # the path, not the rate limit: about 10 alerts a second (signal texts and charts, fills,
    # trades, stops) for 80 s would pass the highest per-chat limit the config allows (600 a
    # minute) and then wait by design. Signals go to one chat and the rest to another, each
    # under it; one sender still sends them all in one queue, in order, as before
    trace = tmp / "trace.jsonl"
    routes = {k: [43] for k in ("fill", "stop", "trade", "alert", "command", "summary")}
    bot = _Bot(tmp, "paper", eng.bridge, pub, cmd, rate_limit_per_min=600, trace=trace,
               routes={"signal": [42], **routes})
    sig: list[float] = []
    fill: list[float] = []
    sig_accepted: dict[str, float] = {}
    from engine.run_command import settle_heap

    settle_heap()  # as `tradebot run` and `tradebot replay` do before the bar loop
    try:
        eng.start()
        eng.thread.join(n / speed + 120)

        def tally() -> bool:
            sig.clear()
            fill.clear()
            for t, method, text in list(bot.sent):
                if method == "sendMessage" and text.startswith("🔔"):
                    alarm = text.split("\n")[1].split()[1]
                    if alarm in sig_raised:
                        sig.append(t - sig_raised[alarm])
                        sig_accepted[alarm] = t
                elif text in fill_raised:
                    fill.append(t - fill_raised[text])
            return len(sig) >= len(sig_raised) and len(fill) >= len(fill_raised)

        end = time.monotonic() + 120
        while not tally() and time.monotonic() < end:
            eng.bridge.idle()
            time.sleep(0.2)
    finally:
        bot.close()
        eng.close()
    return {
        "latency_bars": n, "latency_speed_bars_per_s": speed,
        "signals_raised": len(sig_raised), **_stats("signal", sig),
        "fills_raised": len(fill_raised), **_stats("fill", fill),
        **_breakdown(trace, sig_raised, sig_accepted),
    }


def _engine_run(bars: object, tmp: Path, attached: bool) -> tuple[float, float, float]:
    """(wall s, engine thread CPU s, front end process CPU s) of one flat-out run."""
    from adapters.csv_feed import CsvFeed
    from adapters.zmq_bridge import Settings, ZmqBridge
    from engine.bootstrap import build_engine
    from tests.telegram.harness import free_addr, run_config

    pub, cmd = free_addr(), free_addr()
    eng = build_engine(run_config("backtest"), feed=CsvFeed.from_bars(bars))
    br = ZmqBridge(eng, Settings(pub=pub, commands=cmd))
    bot = sub = None
    if not attached:  # the same publishing work: a subscriber that never reads (no GIL)
        import zmq

        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"")
        sub.connect(pub)
        end = time.monotonic() + 10
        while not br._subscribed and time.monotonic() < end:
            br.idle()
            time.sleep(0.05)
    else:  # with the default rate limit (20 alerts a minute per chat, as Telegram allows)
        bot = _Bot(tmp, "backtest", br, pub, cmd)
    try:
        bot0 = _cpu_s(bot.proc.pid) if bot is not None else 0.0
        c0, t0 = time.thread_time(), time.perf_counter()
        eng.run()  # on this thread: its CPU time is the engine's own
        took, cpu = time.perf_counter() - t0, time.thread_time() - c0
        used = _cpu_s(bot.proc.pid) - bot0 if bot is not None else 0.0
    finally:
        br.close()
        if bot is not None:
            bot.close()
        if sub is not None:
            sub.close(0)
    return took, cpu, used


def run(n_bars: int = 50_000) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = _latency(tmp)
        bars = tiled(real_bars(), n_bars)
        _engine_run(bars.slice(0, 3000), tmp, False)  # warm caches
        det, att = [], []
        for _ in range(2):
            det.append(_engine_run(bars, tmp, False))
            att.append(_engine_run(bars, tmp, True))
        d, a = min(det), min(att)  # the fastest of each: the least disturbed by other load
        res.update({
            "engine_bars": n_bars,
            "detached_bars_per_s": n_bars / d[0],
            "attached_bars_per_s": n_bars / a[0],
            "attached_slowdown": a[0] / d[0] - 1,
            "detached_median_s": statistics.median(x[0] for x in det),
            # CPU seconds do not count the time other processes held the cores: the engine
            # thread's own extra work with the front end attached (answers to its questions)
            "engine_cpu_detached_s": min(x[1] for x in det),
            "engine_cpu_attached_s": min(x[1] for x in att),
            "attached_cpu_overhead": min(x[1] for x in att) / min(x[1] for x in det) - 1,
            "frontend_cpu_s": statistics.median(x[2] for x in att),
        })
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    only_latency = "--latency" in sys.argv
    with tempfile.TemporaryDirectory() as d:
        res = _latency(Path(d)) if only_latency else run()
    for k, v in res.items():
        print(f"{k:36s} {v:.4g}" if isinstance(v, float) else f"{k:36s} {v}")
