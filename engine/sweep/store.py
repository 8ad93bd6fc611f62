"""The results store: one SQLite file per sweep, a row per (candidate, bar segment).

Rows are written as each task finishes (WAL mode, one commit a task), so an interrupted sweep
loses at most the tasks in flight; a rerun reads the keys already done and runs only the rest.
The key is ``<candidate config hash>@<first bar>-<end bar>`` (``engine.config.RunConfig.
config_hash`` of the candidate's own config), so a result is reused exactly when the same config
runs over the same bars.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    cand TEXT NOT NULL,
    seg_lo INTEGER NOT NULL,
    seg_hi INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,            -- ok | failed
    error TEXT,
    metrics TEXT,
    blocks TEXT,
    equity TEXT,
    seen_first_ns INTEGER,
    seen_last_ns INTEGER,
    seen_bars INTEGER,
    elapsed_s REAL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
-- walk_forward.retrain_model: each model trained (key: training config + data + bar range)
CREATE TABLE IF NOT EXISTS models (key TEXT PRIMARY KEY, info TEXT NOT NULL, finished REAL);
-- ... and per window, the test window traded hybrid (that model) vs rules, and the difference
CREATE TABLE IF NOT EXISTS model_windows (
    file TEXT NOT NULL,
    window INTEGER NOT NULL,
    model_key TEXT,
    rules_key TEXT,
    hybrid_key TEXT,
    row TEXT NOT NULL,
    PRIMARY KEY (file, window)
);
"""


_SELECT = ("SELECT cand, seg_lo, seg_hi, strategy, params, status, error, metrics, blocks, "
           "equity, seen_first_ns, seen_last_ns, seen_bars, elapsed_s FROM results")


def result_key(cand: str, lo: int, hi: int) -> str:
    return f"{cand}@{lo}-{hi}"


@dataclass
class Result:
    """What one candidate did on one bar segment."""

    cand: str
    seg_lo: int
    seg_hi: int
    strategy: str
    params: dict[str, Any]
    status: str = "ok"
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    blocks: list[list[float]] = field(default_factory=list)
    equity: dict[str, list[float]] = field(default_factory=dict)
    seen_first_ns: int | None = None
    seen_last_ns: int | None = None
    seen_bars: int = 0
    elapsed_s: float = 0.0
    # the stored row's columns but ``finished`` (``Store.encode``), filled in by the process
    # that ran it: a worker encodes its own results in parallel, the sweep process only inserts
    row: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return result_key(self.cand, self.seg_lo, self.seg_hi)


def _num(v: Any) -> Any:
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    return v


def _unnum(v: Any) -> Any:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return v


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        # a commit per finished task survives the process being killed; only a power cut can
        # lose the last ones (re-run on resume), so no fsync per commit (set first: the switch
        # to WAL then syncs less too)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def set_meta(self, k: str, v: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
        self.db.commit()

    def meta(self, k: str) -> Any:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (k,)).fetchone()
        return None if row is None else json.loads(row[0])

    def done_keys(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM results")}

    @staticmethod
    def encode(r: Result) -> tuple[Any, ...]:
        """A result's row (JSON columns encoded), without the ``finished`` time."""
        return (r.key, r.cand, r.seg_lo, r.seg_hi, r.strategy, json.dumps(r.params, default=str),
                r.status, r.error, json.dumps({k: _num(v) for k, v in r.metrics.items()}),
                json.dumps(r.blocks), json.dumps(r.equity), r.seen_first_ns, r.seen_last_ns,
                r.seen_bars, r.elapsed_s)

    def put_many(self, results: list[Result]) -> None:
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(*(r.row or self.encode(r)), now) for r in results])
        self.db.commit()

    def get(self, key: str) -> Result | None:
        rows = self._rows(self.db.execute(_SELECT + " WHERE key = ?", (key,)))
        return rows[0] if rows else None

    def all(self) -> list[Result]:
        return self._rows(self.db.execute(_SELECT + " ORDER BY rowid"))

    @staticmethod
    def _rows(cursor: Any) -> list[Result]:
        out = []
        for row in cursor:
            out.append(Result(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6],
                              {k: _unnum(v) for k, v in json.loads(row[7] or "{}").items()},
                              json.loads(row[8] or "[]"), json.loads(row[9] or "{}"),
                              row[10], row[11], row[12] or 0, row[13] or 0.0))
        return out

    def put_model(self, key: str, info: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
                        (key, json.dumps(info, default=str), time.time()))
        self.db.commit()

    def model(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT info FROM models WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_model_windows(self, rows: list[dict[str, Any]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO model_windows VALUES (?,?,?,?,?,?)",
            [(r["file"], r["window"], r.get("model_key"), r.get("rules_key"),
              r.get("hybrid_key"), json.dumps(r, default=str)) for r in rows])
        self.db.commit()

    def model_windows(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.db.execute(
            "SELECT row FROM model_windows ORDER BY file, window")]

    def count_failed(self) -> int:
        return int(self.db.execute(
            "SELECT COUNT(*) FROM results WHERE status = 'failed'").fetchone()[0])

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
