"""`tradebot telegram CONFIG` as a real process: the real client against the fake Bot API and
a real engine's bridge; Ctrl-C (SIGINT) stops it cleanly; its stderr never holds the token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from tests.telegram.fake_tg import FakeTelegram
from tests.telegram.harness import CHAT, EngineRun, free_addr, run_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_serves_status_and_stops_on_ctrl_c(real_bars, tmp_path):
    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(real_bars, 100, "backtest", pub, cmd, speed=0.0)
    eng.start()
    eng.thread.join(30)
    cfg = run_config("backtest").resolved_dict()
    cfg["publish"].update({"pub": pub, "commands": cmd})
    cfg["telegram"]["outbox"] = str(tmp_path / "outbox.sqlite")
    path = tmp_path / "tg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    fake = FakeTelegram()
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token,
           "TELEGRAM_ALLOWED_CHAT_IDS": str(CHAT), "NO_PROXY": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "telegram", str(path),
                             "--api-url", fake.url, "--env-file", str(tmp_path / "none")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        fake.wait(lambda: "getUpdates" in fake.methods(), "the bot polling", 30)

        def status() -> str | None:
            texts = [t for t in fake.texts(CHAT) if t.startswith("mode: backtest")]
            return texts[-1] if texts else None
        asked = [0.0]

        def synced() -> str | None:  # asked again (every 2 s) until the bot has its snapshot
            if status() is None and time.monotonic() - asked[0] > 2.0:
                asked[0] = time.monotonic()
                fake.push_text("/status")
            return status()
        st = fake.wait(synced, "the /status reply of a synced bot", 30)
        assert "symbol: BTC-USDT 15m" in st and "last bar: #99" in st and "finished" in st
        eng.idle(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        fake.close()
        eng.close()
    assert proc.returncode == 0, err
    assert "telegram front end: 1 allowed chat(s)" in err and "stopped" in err
    assert "Traceback" not in err and fake.token not in err + out
