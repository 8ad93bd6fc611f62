"""The alert outbox: a SQLite delivery queue between the engine's events and Telegram.

``put`` stores an alert under a key (the alarm id for a signal, the order id for a fill, ...):
a key already queued for that chat is dropped, so an alert is sent once however many times it is
seen (a resync after a gap replays the snapshot). The deliverer (``FrontEnd._deliver``) sends
the oldest unsent alert first and marks it sent only after Telegram accepted it: delivery is at
least once (a crash between the two resends one alert) and in order (an alert that cannot go out
holds the ones behind it). Photos (signal charts) go in a lane of their own, in their order, each
after every text queued before it: a chart always follows its signal's text, and its upload
never delays the text alerts behind it. Telegram being down or answering 429 only delays the
queue; nothing in the engine waits for it (the front end is its own process).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    chat_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    photo BLOB,
    buttons TEXT,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    sent REAL,
    failed TEXT,
    UNIQUE (key, chat_id)
);
-- the unsent rows only: head() and pending() do not walk every alert ever sent
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent IS NULL AND failed IS NULL;
"""


@dataclass(frozen=True)
class Item:
    id: int
    key: str
    chat_id: int
    kind: str
    text: str
    photo: bytes | None
    buttons: list[list[tuple[str, str]]] | None
    attempts: int
    next_try: float


class Outbox:
    """One SQLite file; used from one thread (the front end's event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the bot crashing (not a power cut) without an
            # fsync per alert, which a burst of alerts would wait on
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"telegram.outbox {path}: cannot open the alert queue ({exc}); "
                              "point telegram.outbox at a writable .sqlite file") from None

    def close(self) -> None:
        self.db.close()

    def put(self, key: str, chat_id: int, kind: str, text: str, photo: bytes | None = None,
            buttons: list[list[tuple[str, str]]] | None = None) -> bool:
        """Queue one alert; False when ``key`` was already queued for this chat."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO outbox (key, chat_id, kind, text, photo, buttons, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, chat_id, kind, text, photo, json.dumps(buttons) if buttons else None,
             time.time()))
        return cur.rowcount == 1

    def head(self, photos: bool = False) -> Item | None:
        """The oldest text alert not yet sent (nor given up); with ``photos``, the oldest photo
        queued before every unsent text (a signal's chart follows its text)."""
        if photos:
            q = ("SELECT id, key, chat_id, kind, text, photo, buttons, attempts, next_try "
                 "FROM outbox WHERE sent IS NULL AND failed IS NULL AND photo IS NOT NULL AND "
                 "id < COALESCE((SELECT MIN(id) FROM outbox WHERE sent IS NULL AND failed IS "
                 "NULL AND photo IS NULL), 9223372036854775807) ORDER BY id LIMIT 1")
        else:
            q = ("SELECT id, key, chat_id, kind, text, photo, buttons, attempts, next_try "
                 "FROM outbox WHERE sent IS NULL AND failed IS NULL AND photo IS NULL "
                 "ORDER BY id LIMIT 1")
        row = self.db.execute(q).fetchone()
        if row is None:
            return None
        b = json.loads(row[6]) if row[6] else None
        return Item(row[0], row[1], row[2], row[3], row[4], row[5], b, row[7], row[8])

    def sent(self, item_id: int) -> None:
        self.db.execute("UPDATE outbox SET sent = ? WHERE id = ?", (time.time(), item_id))

    def retry(self, item_id: int, at: float) -> None:
        self.db.execute("UPDATE outbox SET attempts = attempts + 1, next_try = ? WHERE id = ?",
                        (at, item_id))

    def give_up(self, item_id: int, why: str) -> None:
        """A permanent refusal (chat not found, bot blocked): keep it, stop trying it."""
        self.db.execute("UPDATE outbox SET failed = ? WHERE id = ?", (why[:500], item_id))

    def pending(self) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE sent IS NULL AND failed IS NULL").fetchone()[0]

    def rows(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT id, key, chat_id, kind, text, attempts, sent, failed "
                              "FROM outbox ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
