"""The event journal: every event appended to SQLite, the audit log and the input for replay.

Events are stored as msgpack (``msgspec``; never pickle) with their type name, in batches inside
one transaction, so journaling costs little on the hot path. ``read_events`` decodes them back
into the same typed events.

**Durable mode** (paper and live runs: ``Journal(durable=True)``): the file is in WAL mode with
``PRAGMA synchronous=FULL`` and the batch is committed (fsync) at once when an event of
``DURABLE_TYPES`` arrives (an order about to be sent, the venue's reply, a fill, a cancel, a
reconciliation) and at the end of every live bar. The bus is synchronous, so a broker that
publishes ``OrderSent`` before its HTTP request has it on disk before the request leaves: a
process killed at any moment restarts knowing every order it may have sent
(``engine.restore``). Backtests keep the batched, non-durable path (the journal is off there by
default).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# committed at once in durable mode: what a restart must never miss
DURABLE_TYPES: frozenset[type[ev.Event]] = frozenset({
    ev.OrderSent, ev.OrderReply, ev.OrderFilled, ev.OrderCanceled, ev.Reconciled,
    ev.CommandApplied, ev.HandlerFailed,
})


# journaled as they are published, before any handler acts on them (``Journal.early``): the
# bar and the decisions a broker sends orders for are on disk with the order record, even if
# the process dies before the bus reaches the sinks (a restart then knows the bar was acted on)
EARLY_TYPES: tuple[type[ev.Event], ...] = (ev.BarClosed, ev.SignalRaised, ev.SubmitOrder,
                                           ev.ModifyOrder, ev.CancelOrder)


class Journal:
    """An event sink (subscribe it with ``bus.subscribe_all``) writing to a SQLite file.

    Args:
        include_bars: also journal ``BarClosed`` (needed for replay of live runs; off by default
            in backtests, where the bars are the input file).
        durable: WAL, ``synchronous=FULL`` and a commit at every ``DURABLE_TYPES`` event and
            every live bar's end (paper/live; see the module doc).
    """

    def __init__(self, path: Path, run_id: str, *, include_bars: bool = False,
                 batch: int = 512, durable: bool = False) -> None:
        """Raises:
            ConfigError: ``path`` is a folder, or cannot be created or written (checked now,
                before the run), or is not a SQLite journal."""
        if path.is_dir():
            raise ConfigError(f"journal {path} is a folder; set journal.path to a file, e.g. "
                              f"{path / 'journal.sqlite'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path)
            if durable:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal {path}: cannot open it for writing ({exc}); set "
                              "journal.path to a writable place (or a journal file tradebot "
                              "wrote)") from None
        self.path = path
        self.run_id = run_id
        self.include_bars = include_bars
        self.durable = durable
        self.paused = False  # restore: events re-derived from the journal are not written twice
        self._early: frozenset[type[ev.Event]] = frozenset()
        self._batch = batch
        self._buf: list[tuple[str, str, int, bytes]] = []
        self._enc = msgspec.msgpack.Encoder()

    def subscribe_early(self, bus: Any, priority: int) -> None:
        """Also take ``EARLY_TYPES`` from ``bus`` at ``priority`` (before the brokers), instead
        of as a sink after their handlers: in the journal, a signal and the command it caused
        come before the ``OrderSent`` of the order (durable mode)."""
        for t in EARLY_TYPES:
            bus.subscribe(t, self.early, priority=priority, name="journal")
        self._early = frozenset(EARLY_TYPES)

    def early(self, event: ev.Event) -> None:
        if not self.paused:
            self._buf.append((self.run_id, type(event).__name__, event.ts_event_ns,
                              self._enc.encode(event)))

    def __call__(self, event: ev.Event) -> None:
        t = type(event)
        if self.paused:
            return
        if t in self._early:  # written by early(); a bar reaching the sinks has ended
            if t is ev.BarClosed and self.durable and event.ts_init_ns != 0:
                self.flush()
            return
        if not self.include_bars and t is ev.BarClosed:
            return
        self._buf.append((self.run_id, t.__name__, event.ts_event_ns, self._enc.encode(event)))
        if len(self._buf) >= self._batch or (self.durable and (
                t in DURABLE_TYPES or (t is ev.BarClosed and event.ts_init_ns != 0))):
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


def is_journal(path: Path) -> bool:
    """True when ``path`` is a SQLite file with tradebot's ``events`` table."""
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'"
                             ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row is not None


def run_ids(path: Path) -> list[str]:
    """The run ids journaled in ``path``, the most recent last (opened read-only).

    Raises:
        sqlite3.Error: ``path`` is not a SQLite file with the ``events`` table."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT run_id, MAX(id) FROM events GROUP BY run_id ORDER BY 2"
                          ).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def _progress(path: Path, run_id: str) -> tuple[int, int] | None:
    """(last event time, number of events) of ``run_id`` in ``path``; None if it has none."""
    try:
        db = sqlite3.connect(path)
        try:
            row = db.execute("SELECT MAX(ts_event_ns), COUNT(*) FROM events WHERE run_id = ?",
                             (run_id,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return (int(row[0]), int(row[1])) if row and row[1] else None


def journal_candidates(target: Path) -> list[Path]:
    """Where the journal of an earlier run into results folder ``target`` can be
    (``engine.results``): its committed ``journal.sqlite``, the staging folders a killed run
    left (``.<name>.partial-*``) and the folders an interrupted run kept
    (``<name>.interrupted-*``)."""
    parent, name = target.parent, target.name
    found = [target / "journal.sqlite"]
    found += sorted(parent.glob(f".{name}.partial-*/journal.sqlite"))
    found += sorted(parent.glob(f"{name}.interrupted-*/journal.sqlite"))
    return [p for p in found if p.is_file()]


def find_previous(candidates: list[Path], run_id: str) -> Path | None:
    """The candidate journal holding the most recent state of ``run_id`` (latest last event,
    then most events: a journal copied forward by a restart and grown since beats its source);
    None when no candidate has that run."""
    best: tuple[tuple[int, int], Path] | None = None
    for p in candidates:
        if not is_journal(p):
            continue
        prog = _progress(p, run_id)
        if prog is not None and (best is None or prog > best[0]):
            best = (prog, p)
    return best[1] if best else None


def copy_journal(src: Path, dst: Path) -> None:
    """Copy journal ``src`` (WAL included: SQLite's backup API) to ``dst``, which is replaced."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
