"""The front end in a thread of its own (its own asyncio loop), a real engine with the real
ZeroMQ bridge, and the fake Bot API: the pieces the Telegram tests put together."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from adapters.csv_feed import CsvFeed
from adapters.telegram.bot import FrontEnd
from adapters.telegram.security import Secrets, install_redaction, uninstall_redaction
from adapters.zmq_bridge import Settings, ZmqBridge
from engine.bootstrap import build_engine
from engine.config import RunConfig, TelegramConfig
from tests.telegram.fake_tg import FakeTelegram

CHAT = 42


def run_config(mode: str = "paper", **execution: Any) -> RunConfig:
    return RunConfig.model_validate({
        "name": "tg-test", "mode": mode, "data": {"file": "unused.csv"},
        "features": [{"id": "vp", "kind": "volume_profile",
                      "params": {"lookback": 200, "bins": 80, "mode": "close"}}],
        "signals": {"kind": "signals", "params": {}},
        "strategies": [{"name": "poc_target", "kind": "poc_target"},
                       {"name": "trailing_stop", "kind": "trailing_stop"}],
        "execution": {"close_at_end": False, **execution},
    })


def free_addr() -> str:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.ROUTER)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close(0)
    return f"tcp://127.0.0.1:{port}"


class EngineRun:
    """A real engine over real candles with the bridge on fixed loopback addresses."""

    def __init__(self, bars: Any, n: int, mode: str, pub: str, commands: str,
                 speed: float, **execution: Any) -> None:
        self.engine = build_engine(run_config(mode, **execution),
                                   feed=CsvFeed.from_bars(bars.slice(0, n)))
        self.bridge = ZmqBridge(self.engine, Settings(pub=pub, commands=commands, speed=speed,
                                                      max_cpu_share=1.0, snapshot_bars=5000))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.engine.run()
        self.bridge.run_finished(None)

    def start(self) -> EngineRun:
        self.thread.start()
        return self

    def idle(self, seconds: float) -> None:
        """After the run: this thread drives the finished engine's heartbeats."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.bridge.idle()
            time.sleep(0.05)

    def close(self) -> None:
        self.thread.join(30)
        self.bridge.close()


class LiveRun:
    """``mode: live`` (configs/live.yaml: the Apex feed and broker) against a local venue in
    lockstep, with the bridge on from the config (``publish``), as ``tradebot run`` builds it.
    The feed's poll interval paces the bars (one new candle per poll)."""

    def __init__(self, venue: Any, tmp_path: Path, pub: str, commands: str, *,
                 poll_s: float = 0.02, **overrides: Any) -> None:
        from engine.config import load_config

        root = Path(__file__).resolve().parents[2]
        self.journal = tmp_path / "live" / "journal.sqlite"
        cfg = load_config(root / "configs" / "live.yaml", {
            "strategies": [{"name": "trailing_stop", "kind": "trailing_stop"}],
            "output.report": False, "output.dir": str(tmp_path / "live"), "risk": None,
            "account.initial_cash": 10_000.0, "account.position_size_frac": 0.5,
            "data.venue": venue.url, "data.poll_interval_s": poll_s,
            "publish.enabled": True, "publish.pub": pub, "publish.commands": commands,
            "publish.max_cpu_share": 1.0, **overrides})
        self._built = threading.Event()
        self._go = threading.Event()
        self.error: BaseException | None = None
        # built and run on one thread, as `tradebot run` does (the journal's SQLite is per thread)
        self.thread = threading.Thread(target=self._main, args=(cfg,), daemon=True)
        self.thread.start()
        assert self._built.wait(60), "the live engine was not built in 60 s"
        if self.error is not None:
            raise self.error

    def _main(self, cfg: Any) -> None:
        try:
            self.engine = build_engine(cfg, journal_path=self.journal)
            (self.bridge,) = self.engine.sinks
        except BaseException as exc:
            self.error = exc
            return
        finally:
            self._built.set()
        try:
            self._go.wait()
            if not self.engine.feed.stopped:
                self.engine.run()
        finally:
            self.engine.close()

    def start(self) -> LiveRun:
        self._go.set()
        return self

    def close(self) -> None:
        self.engine.feed.stop()  # any thread (request_stop is for a signal handler)
        self._go.set()
        self.thread.join(30)


def closed_trades(engine: Any) -> list[Any]:
    """Every account's closed trades (``TradeClosed``) in the order the engine closed them: by
    exit time, then the accounts' order (the bus serves them in that order on a bar)."""
    rows = [(t.exit_ts_ns, i, k, t) for i, a in enumerate(engine.accounts.values())
            for k, t in enumerate(a.trades)]
    return [t for *_, t in sorted(rows, key=lambda r: r[:3])]


class Records(logging.Handler):
    """Every log record of the process, formatted (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class FrontEndThread:
    def __init__(self, tmp_path: Path, pub: str, commands: str, *,
                 allowed: tuple[int, ...] = (CHAT,), **cfg: Any) -> None:
        self.fake = FakeTelegram()
        install_redaction(self.fake.token)
        self.cfg = TelegramConfig(outbox=tmp_path / "outbox.sqlite", **cfg)
        self.secrets = Secrets(self.fake.token, frozenset(allowed))
        self.pub, self.commands = pub, commands
        self.fe: FrontEnd | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.fe = FrontEnd(self.cfg, self.secrets, self.pub, self.commands,
                               base_url=f"{self.fake.url}/bot",
                               base_file_url=f"{self.fake.url}/file/bot", poll_timeout=1,
                               backoff_max_s=0.5)
            self._ready.set()
            await self.fe.run(self._stop)
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
            self._ready.set()

    def start(self) -> FrontEndThread:
        self.thread.start()
        assert self._ready.wait(10)
        if self.error:
            raise self.error
        return self

    def synced(self, timeout: float = 60) -> None:
        # (the warm-up chart is drawn by a process at nice +10: on a machine loaded with a
        # dozen busy processes it waited 60 s and more for a core; 10 s failed there)
        self.fake.wait(lambda: self.fe.synced.is_set() and self.fe.warmed,
                       "the front end's first snapshot and chart", timeout)

    def call(self, coro_fn: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def ask(self, text: str, chat: int = CHAT, timeout: float = 8.0) -> str:
        """Send a command; the bot's reply to it (alerts in between are not replies)."""
        mid = self.fake.push_text(text, chat_id=chat)["message"]["message_id"]

        def reply() -> str | None:
            for _, p in list(self.fake.sent):
                rp = p.get("reply_parameters")
                if rp and json.loads(rp).get("message_id") == mid:
                    return p["text"]
            return None
        return self.fake.wait(reply, f"a reply to {text}", timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)
        self.fake.close()
        uninstall_redaction()  # the rest of the test session's records stay untouched
        if self.error:
            raise self.error
