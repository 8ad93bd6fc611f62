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


def _engine_run(bars: object, tmp: Path, attached: bool) -> float:
    from adapters.csv_feed import CsvFeed
    from adapters.zmq_bridge import Settings, ZmqBridge
    from engine.bootstrap import build_engine
    from tests.telegram.fake_tg import FakeTelegram
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
        fake = FakeTelegram()
        cfg = run_config("backtest").resolved_dict()
        cfg["publish"].update({"pub": pub, "commands": cmd})
        cfg["telegram"].update({"outbox": str(tmp / f"outbox-{time.time_ns()}.sqlite"),
                                "rate_limit_per_min": 600})
        path = tmp / "tg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_ALLOWED_CHAT_IDS": "42"}
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "telegram", str(path),
                                 "--api-url", fake.url, "--env-file", "/nonexistent"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while not br._subscribed:  # the front end's SUB reached the bridge
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("the telegram front end never subscribed")
            br.idle()
            time.sleep(0.05)
        time.sleep(1.0)
    try:
        t0 = time.perf_counter()
        eng.run()
        took = time.perf_counter() - t0
    finally:
        br.close()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if fake is not None:
            fake.close()
        if sub is not None:
            sub.close(0)
    return took


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
        res.update({
            "engine_bars": n_bars,
            "detached_bars_per_s": n_bars / min(det),
            "attached_bars_per_s": n_bars / min(att),
            "attached_slowdown": min(att) / min(det) - 1,
            "detached_median_s": statistics.median(det),
        })
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    for k, v in run().items():
        print(f"{k:36s} {v:.4g}" if isinstance(v, float) else f"{k:36s} {v}")
