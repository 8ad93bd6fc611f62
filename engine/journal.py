"""The event journal: every event appended to SQLite, the audit log and the input for replay.

Events are stored as msgpack (``msgspec``; never pickle) with their type name, in batches inside
one transaction, so journaling costs little on the hot path. ``read_events`` decodes them back
into the same typed events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine import events as ev
from engine.errors import ConfigError

_TYPES: dict[str, type[ev.Event]] = {
    name: obj
    for name, obj in vars(ev).items()
    if isinstance(obj, type) and issubclass(obj, ev.Event) and obj is not ev.Event
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts_event_ns INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);
"""


class Journal:
    """An event sink (subscribe it with ``bus.subscribe_all``) writing to a SQLite file.

    Args:
        include_bars: also journal ``BarClosed`` (needed for replay of live runs; off by default
            in backtests, where the bars are the input file).
    """

    def __init__(self, path: Path, run_id: str, *, include_bars: bool = False,
                 batch: int = 512) -> None:
        """Raises:
            ConfigError: ``path`` is a folder, or cannot be created or written (checked now,
                before the run), or is not a SQLite journal."""
        if path.is_dir():
            raise ConfigError(f"journal {path} is a folder; set journal.path to a file, e.g. "
                              f"{path / 'journal.sqlite'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal {path}: cannot open it for writing ({exc}); set "
                              "journal.path to a writable place (or a journal file tradebot "
                              "wrote)") from None
        self.run_id = run_id
        self.include_bars = include_bars
        self._batch = batch
        self._buf: list[tuple[str, str, int, bytes]] = []
        self._enc = msgspec.msgpack.Encoder()

    def __call__(self, event: ev.Event) -> None:
        if not self.include_bars and type(event) is ev.BarClosed:
            return
        self._buf.append((self.run_id, type(event).__name__, event.ts_event_ns,
                          self._enc.encode(event)))
        if len(self._buf) >= self._batch:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            with self._db:
                self._db.executemany(
                    "INSERT INTO events (run_id, type, ts_event_ns, payload) VALUES (?, ?, ?, ?)",
                    self._buf,
                )
            self._buf.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()


def read_events(path: Path, run_id: str | None = None) -> Iterator[ev.Event]:
    """Yield the journaled events of ``run_id`` (or of every run) in the order written."""
    db = sqlite3.connect(path)
    try:
        q = "SELECT type, payload FROM events"
        args: tuple[str, ...] = ()
        if run_id is not None:
            q += " WHERE run_id = ?"
            args = (run_id,)
        decoders: dict[str, msgspec.msgpack.Decoder] = {}
        for type_name, payload in db.execute(q + " ORDER BY id", args):
            dec = decoders.get(type_name)
            if dec is None:
                dec = decoders[type_name] = msgspec.msgpack.Decoder(_TYPES[type_name])
            yield dec.decode(payload)
    finally:
        db.close()
