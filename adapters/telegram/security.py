"""Secrets and who may talk to the bot.

The bot token comes only from ``TELEGRAM_BOT_TOKEN`` and the allowed chats only from
``TELEGRAM_ALLOWED_CHAT_IDS`` (comma separated chat ids; a ``.env`` file beside the config is read
too). With no allowlist the bot refuses to start: the reference bot let everyone in.

The token is in every Bot API URL, and httpx logs request URLs at INFO. ``install_redaction``
wraps the logging record factory so that every record created in this process (httpx, telegram,
ours, anyone's) has the token replaced by ``<redacted>`` in its message, arguments and traceback
text before any handler sees it.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
ALLOW_ENV = "TELEGRAM_ALLOWED_CHAT_IDS"
REDACTED = "<redacted>"
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{10,}$")


@dataclass(frozen=True)
class Secrets:
    token: str
    allowed: frozenset[int]

    def __repr__(self) -> str:  # never print the token
        return f"Secrets(token={REDACTED}, allowed={sorted(self.allowed)})"


def _dotenv(path: Path | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if path is None or not path.is_file():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip("'\"")
    return out


def parse_allowlist(raw: str) -> frozenset[int]:
    """``"42, -100123"`` -> ``{42, -100123}``.

    Raises:
        ConfigError: an entry that is not an integer chat id.
    """
    ids = set()
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.add(int(part))
        except ValueError:
            raise ConfigError(f"{ALLOW_ENV}: {part!r} is not a chat id; give comma separated "
                              "integers (message @userinfobot to learn yours)") from None
    return frozenset(ids)


def load_secrets(env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Secrets:
    """The token and allowlist from ``env`` (default ``os.environ``), then ``dotenv``.

    Raises:
        ConfigError: no token, a malformed token, or an empty allowlist (the message says which
            variable to set).
    """
    merged = {**_dotenv(dotenv), **(os.environ if env is None else env)}
    token = (merged.get(TOKEN_ENV) or "").strip()
    if not token:
        raise ConfigError(f"{TOKEN_ENV} is not set; create a bot with @BotFather and export its "
                          "token (or put it in .env, see .env.example and docs/telegram.md)")
    if not _TOKEN_RE.match(token):
        raise ConfigError(f"{TOKEN_ENV} does not look like a bot token (digits:secret from "
                          "@BotFather)")
    allowed = parse_allowlist(merged.get(ALLOW_ENV) or "")
    if not allowed:
        raise ConfigError(f"{ALLOW_ENV} is empty: the bot refuses to serve everyone; set it to "
                          "your chat id(s), comma separated (docs/telegram.md)")
    return Secrets(token, allowed)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


_installed: list[str] = []
_base_factory = None


def install_redaction(*secrets: str) -> None:
    """Redact ``secrets`` (the token, and its secret half) from every log record from now on.

    Idempotent; more secrets may be added by calling it again.
    """
    global _base_factory
    for s in secrets:
        if s and s not in _installed:
            _installed.append(s)
            tail = s.split(":", 1)[-1]
            if len(tail) >= 10 and tail not in _installed:
                _installed.append(tail)
    _installed.sort(key=len, reverse=True)  # the whole token before its half
    if _base_factory is not None:
        return
    _base_factory = logging.getLogRecordFactory()
    base = _base_factory

    def factory(*args, **kwargs):  # type: ignore[no-untyped-def]
        record = base(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string: keep the raw text
            msg = str(record.msg)
        clean = redact(msg, tuple(_installed))
        if clean != msg:  # records without a secret are left exactly as they were
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = redact(text, tuple(_installed))
            if clean != text:
                record.exc_text, record.exc_info = clean, None
        return record

    logging.setLogRecordFactory(factory)


def uninstall_redaction() -> None:
    """For tests: restore the record factory and forget the secrets."""
    global _base_factory
    if _base_factory is not None:
        logging.setLogRecordFactory(_base_factory)
        _base_factory = None
    _installed.clear()
