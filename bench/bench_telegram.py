"""Telegram front end: signal-to-message latency at the fake Bot API, and the engine's speed
with the front end attached (a separate `tradebot telegram` process subscribed to the bridge)
vs detached (the bridge publishing the same messages to a subscriber that does not read them,
so the difference is the front end's own cost: its CPU beside the engine's). Same run.

Latency: a real engine replays real candles at 100 bars/s through the bridge; a bus subscriber
stamps each SignalRaised / OrderFilled as the engine raises it; the front end (in this process,
its own thread and loop) delivers the alerts to the loopback fake; latency = delivery - raise.
A signal alert includes the bridge's ``setup`` answer and drawing the chart; a fill alert is text.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO, real_bars, tiled


_FAKE = ("import sys, time; sys.path.insert(0, '.'); from tests.telegram.fake_tg import "
         "FakeTelegram; f = FakeTelegram(); print(f.url, f.token, flush=True); time.sleep(3600)")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def _latency(tmp: Path, n: int = 1200, speed: float = 100.0) -> dict[str, object]:
    from engine.events import OrderFilled, SignalRaised
    from tests.telegram.harness import EngineRun, FrontEndThread, free_addr

    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(real_bars(), n, "paper", pub, cmd, speed=speed)
    raised: dict[str, float] = {}

    def stamp(ev: object) -> None:
        if isinstance(ev, SignalRaised):
            raised[f"signal-{ev.alarm_id}"] = time.time()
        else:
            raised[f"fill-{ev.order_id}-{ev.seq}"] = time.time()

    eng.engine.bus.subscribe(SignalRaised, stamp, priority=999, name="bench-stamp-s")
    eng.engine.bus.subscribe(OrderFilled, stamp, priority=999, name="bench-stamp-f")
    fe = FrontEndThread(tmp, pub, cmd, rate_limit_per_min=600).start()
    try:
        fe.synced()
        time.sleep(3)  # the chart warm-up (matplotlib import) is not an alert's latency
        eng.start()
        eng.thread.join(120)
        want = len(raised)
        fe.fake.wait(lambda: len(fe.fe.delivered) >= want, "every alert", 120)
    finally:
        fe.stop()
        eng.close()
    sig = [t - raised[k] for t, k in fe.fe.delivered if k.startswith("signal-") and k in raised]
    fill = [t - raised[k] for t, k in fe.fe.delivered if k.startswith("fill-") and k in raised]
    return {
        "latency_bars": n, "latency_speed_bars_per_s": speed,
        "signal_alerts": len(sig), "signal_to_message_p50_ms": _pct(sig, 0.5) * 1000,
        "signal_to_message_p99_ms": _pct(sig, 0.99) * 1000,
        "fill_alerts": len(fill), "fill_to_message_p50_ms": _pct(fill, 0.5) * 1000,
        "fill_to_message_p99_ms": _pct(fill, 0.99) * 1000,
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _engine_run(bars: object, tmp: Path, attached: bool) -> tuple[float, float, float]:
    """(wall s, engine thread CPU s, front end process CPU s) of one flat-out run."""
    from adapters.csv_feed import CsvFeed
    from adapters.zmq_bridge import Settings, ZmqBridge
    from engine.bootstrap import build_engine
    from tests.telegram.harness import free_addr, run_config

    pub, cmd = free_addr(), free_addr()
    eng = build_engine(run_config("backtest"), feed=CsvFeed.from_bars(bars))
    br = ZmqBridge(eng, Settings(pub=pub, commands=cmd))
    proc = fake = sub = None
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
    if attached:
        # the fake Bot API in a process of its own: Telegram is not in the engine's process
        fake = subprocess.Popen([sys.executable, "-c", _FAKE], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        url, token = fake.stdout.readline().split()
        cfg = run_config("backtest").resolved_dict()
        cfg["publish"].update({"pub": pub, "commands": cmd})
        # the default rate limit (20 alerts a minute per chat, as Telegram allows a group)
        cfg["telegram"].update({"outbox": str(tmp / f"outbox-{time.time_ns()}.sqlite")})
        path = tmp / "tg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_ALLOWED_CHAT_IDS": "42"}
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "telegram", str(path),
                                 "--api-url", url, "--env-file", "/nonexistent"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while not br._subscribed:  # the front end's SUB reached the bridge
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("the telegram front end never subscribed")
            br.idle()
            time.sleep(0.05)
        # the front end's start-up (imports, the warm-up chart) is over: it idles
        last, end = _cpu_s(proc.pid), time.monotonic() + 60
        while time.monotonic() < end:
            br.idle()
            time.sleep(0.5)
            now = _cpu_s(proc.pid)
            if now - last < 0.03:
                break
            last = now
    try:
        bot0 = _cpu_s(proc.pid) if proc is not None else 0.0
        c0, t0 = time.thread_time(), time.perf_counter()
        eng.run()  # on this thread: its CPU time is the engine's own
        took, cpu = time.perf_counter() - t0, time.thread_time() - c0
        bot = _cpu_s(proc.pid) - bot0 if proc is not None else 0.0
    finally:
        br.close()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if fake is not None:
            fake.terminate()
            fake.wait(10)
        if sub is not None:
            sub.close(0)
    return took, cpu, bot


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
            "engine_cpu_detached_s": d[1], "engine_cpu_attached_s": a[1],
            "attached_cpu_overhead": a[1] / d[1] - 1,
            "frontend_cpu_s": a[2],
        })
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    for k, v in run().items():
        print(f"{k:36s} {v:.4g}" if isinstance(v, float) else f"{k:36s} {v}")
