"""The bot's secrets: no allowlist, no bot; the token never reaches a log line."""

from __future__ import annotations

import logging

import pytest

from adapters.telegram.security import (
    REDACTED,
    install_redaction,
    load_secrets,
    parse_allowlist,
    uninstall_redaction,
)
from engine.errors import ConfigError

TOKEN = "987654:SECRET-abcdefghijklmnopqrstuvwxyz"


def test_no_allowlist_no_bot(tmp_path, capsys):
    with pytest.raises(ConfigError, match="TELEGRAM_ALLOWED_CHAT_IDS is empty"):
        load_secrets({"TELEGRAM_BOT_TOKEN": TOKEN})
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN is not set"):
        load_secrets({"TELEGRAM_ALLOWED_CHAT_IDS": "42"})
    with pytest.raises(ConfigError, match="'abc' is not a chat id"):
        parse_allowlist("42, abc")
    s = load_secrets({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ALLOWED_CHAT_IDS": "42, -1001"})
    assert s.allowed == {42, -1001} and TOKEN not in repr(s)
    env = tmp_path / ".env"
    env.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_ALLOWED_CHAT_IDS=7\n")
    assert load_secrets({}, dotenv=env).allowed == {7}

    from engine.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategies: [{name: a, kind: poc_target}]\ndata: {file: x.csv}\n")
    env.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\n")
    import os
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("TELEGRAM_")}
    try:
        assert main(["telegram", str(cfg), "--env-file", str(env)]) == 2
    finally:
        os.environ.update(saved)
    err = capsys.readouterr().err
    assert "TELEGRAM_ALLOWED_CHAT_IDS is empty" in err and "Traceback" not in err
    assert TOKEN not in err


def test_redaction_covers_args_messages_and_tracebacks():
    lines: list[str] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    h = H()
    h.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("httpx.test")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    install_redaction(TOKEN)
    try:
        log.info("HTTP Request: POST %s \"HTTP/1.1 200 OK\"",
                 f"http://127.0.0.1/bot{TOKEN}/getMe")
        log.info(f"plain {TOKEN}")
        log.info("half %s", TOKEN.split(":")[1])
        try:
            raise RuntimeError(f"url /bot{TOKEN}/sendMessage")
        except RuntimeError:
            log.exception("failed")
    finally:
        uninstall_redaction()
        log.removeHandler(h)
    text = "\n".join(lines)
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert text.count(REDACTED) >= 4 and "RuntimeError" in text
