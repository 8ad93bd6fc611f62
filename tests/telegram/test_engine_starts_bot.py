"""``telegram.enabled``: ``tradebot run`` starts the Telegram front end as a child process, stops
it with the run, and a crash of the bot never stops the engine (engine/telegram_child.py).

The run is a real ``tradebot run`` process in ``mode: live`` against the local Apex venue; the bot
it starts talks to the loopback fake Bot API of this process (``TELEGRAM_API_URL``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from adapters.apex.venue import TEST_CREDENTIALS, LocalVenue
from engine.telegram_child import BotProcess
from tests.telegram.fake_tg import FakeTelegram
from tests.telegram.harness import CHAT, free_addr

ROOT = Path(__file__).resolve().parents[2]


def _wait(pred, what: str, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what}: not seen in {timeout} s")


def test_a_crashed_bot_is_started_again_and_stopped_with_the_run():
    bot = BotProcess(Path("unused.yaml"), "tcp://x", "tcp://y",
                     argv=[sys.executable, "-c", "import time; time.sleep(60)"],
                     first_pause_s=0.1).start()
    try:
        first = bot.proc
        first.kill()  # a crash
        _wait(lambda: bot.starts == 2 and bot.proc is not first, "the restart", 10)
        assert bot.exits == [-signal.SIGKILL]
        second = bot.proc
    finally:
        bot.stop()
    assert second.poll() is not None and bot.starts == 2  # stopped, and not started again


def test_a_bot_that_refuses_to_start_is_not_restarted():
    bot = BotProcess(Path("unused.yaml"), "tcp://x", "tcp://y",
                     argv=[sys.executable, "-c", "raise SystemExit(2)"],
                     first_pause_s=0.05).start()
    try:
        _wait(lambda: bot.exits == [2], "the refusal", 10)
        time.sleep(0.3)
        assert bot.starts == 1
    finally:
        bot.stop()


@pytest.fixture
def venue(real_bars):
    bars = real_bars.slice(30_000, 31_000)
    with LocalVenue(bars, speed=0, start=int(bars.ts_open_ns[250]) // 1_000_000,
                    credentials=TEST_CREDENTIALS) as v:
        yield v


def test_run_starts_the_bot_keeps_trading_through_its_crash_and_stops_it(venue, tmp_path):
    fake = FakeTelegram()
    cfg = yaml.safe_load((ROOT / "configs" / "live.yaml").read_text())
    cfg.update({"risk": None, "strategies": [{"name": "trailing_stop", "kind": "trailing_stop"}],
                "output": {"dir": str(tmp_path / "out"), "report": False}})
    cfg["data"]["poll_interval_s"] = 0.1
    cfg["publish"] = {"pub": free_addr(), "commands": free_addr()}  # enabled by telegram
    cfg["telegram"] = {"enabled": True, "outbox": str(tmp_path / "outbox.sqlite")}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c = TEST_CREDENTIALS
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_ALLOWED_CHAT_IDS": str(CHAT),
           "TELEGRAM_API_URL": fake.url, "APEX_API_KEY": c.key, "APEX_API_SECRET": c.secret,
           "APEX_API_PASSPHRASE": c.passphrase, "APEX_ZK_SEEDS": c.zk_seeds}
    run = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(path), "--venue",
                            venue.url, "--no-progress"], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(run.stderr), daemon=True)
    reader.start()

    def pids() -> list[int]:
        return [int(m) for m in re.findall(r"telegram front end started \(pid (\d+)\)",
                                           "".join(err))]

    def status() -> str:
        mid = fake.push_text("/status")["message"]["message_id"]
        return fake.wait(lambda: next((p["text"] for m, p in list(fake.sent)
                                       if f'"message_id": {mid}' in p.get("reply_parameters",
                                                                          "")), None),
                         "the bot's /status", 30)
    try:
        (pid,) = _wait(pids, "the bot started by the run", 60)
        _wait(lambda: "mode: live" in status(), "the bot synced with the run", 60)
        os.kill(pid, signal.SIGKILL)  # the bot crashes; the run goes on and starts it again
        bars = venue.n_closed()
        pid2 = _wait(lambda: pids()[1:], "the bot started again", 30)[0]
        assert pid2 != pid
        _wait(lambda: "mode: live" in status(), "the new bot synced with the run", 60)
        # the engine kept running
        assert venue.n_closed() > bars and run.poll() is None, "".join(err)[-4000:]
    finally:
        run.send_signal(signal.SIGINT)  # Ctrl-C: the run stops after its bar, the bot with it
        try:
            out, _ = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            raise AssertionError("the run did not stop on Ctrl-C: "
                                 + "".join(err)[-3000:]) from None
        finally:
            reader.join(5)
            fake.close()
    text = "".join(err)
    # Ctrl-C stops the run cleanly even when it lands inside the feed's venue request (it once
    # ended as "error: klines ...: apexomni raised FeedStopped", exit 2), and takes the bot along
    assert run.returncode == 0 and "FeedStopped" not in text, text[-3000:]
    assert "stopped (exit -9); starting it again" in text
    with pytest.raises(ProcessLookupError):
        os.kill(pid2, 0)  # stopped with the run
    assert fake.token not in text + out
