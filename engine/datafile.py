"""Load and validate bar files: ``SYMBOL_TIMEFRAME_data.csv``.

Format: header ``timestamp,open,high,low,close,volume``; ``timestamp`` is the candle **open** time
in UTC, as ``YYYY-MM-DD HH:MM:SS`` (ISO with ``T``/``Z`` also accepted) or as integer epoch
milliseconds; volume in the base asset.

A bad file is refused with one ``DataError`` naming the file, the line (the header is line 1)
and the problem, and what to do. Gaps in the time grid are always reported and handled as the
caller says: ``fail`` (default), ``keep`` (bars stay consecutive by seq, so rules counting bars
span more time across a gap), or ``fill`` (flat bars at the previous close with zero volume).

Validated files are cached in binary form (``.npy`` of ``BAR_DTYPE``) under
``$TRADEBOT_CACHE_DIR`` (default ``~/.cache/tradebot``), keyed by the file's absolute path, size,
modification time and a format version, so a second load skips parsing; any change to the file
makes a new key, so a stale or unvalidated cache is never served.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from engine.bars import BAR_DTYPE, Bars
from engine.errors import DataError
from engine.timeframes import timeframe_ns

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
GapPolicy = Literal["fail", "keep", "fill"]
_NAME_RE = re.compile(r"^(?P<symbol>[A-Za-z0-9-]+)_(?P<tf>\d+[mhdw])_data\.csv$")
_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "EUR", "BTC", "ETH")
_CACHE_VERSION = "1"
_SHOW = 3  # offending lines quoted in a message


@dataclass(frozen=True)
class GapSummary:
    count: int = 0
    missing_bars: int = 0
    largest_bars: int = 0
    largest_after: str = ""  # open time of the bar before the largest gap

    def text(self) -> str:
        if not self.count:
            return "no gaps"
        return (f"{self.count} gaps, {self.missing_bars} missing bars, largest {self.largest_bars} "
                f"bars after {self.largest_after}")


@dataclass(frozen=True)
class ValidationReport:
    path: str
    ok: bool
    rows: int = 0
    symbol: str = ""
    timeframe: str = ""
    first_open: str = ""
    last_open: str = ""
    gaps: GapSummary = GapSummary()
    price_min: float = float("nan")
    price_max: float = float("nan")
    total_volume: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = f"{self.path}: {'OK' if self.ok else 'INVALID'}"
        if not self.ok:
            return head + "\n" + "\n".join(f"  {p}" for p in self.problems)
        return "\n".join([
            head,
            f"  {self.symbol} {self.timeframe}, {self.rows:,} bars",
            f"  from {self.first_open} to {self.last_open} (open times, UTC)",
            f"  {self.gaps.text()}",
            f"  close range {self.price_min:,.2f} .. {self.price_max:,.2f}",
            f"  total volume {self.total_volume:,.2f}",
        ])


def parse_name(path: Path) -> tuple[str, str]:
    """``BTCUSDT_15m_data.csv`` -> (``BTC-USDT``, ``15m``)."""
    m = _NAME_RE.match(path.name)
    if m is None:
        raise DataError(
            f"{path}: file name must look like SYMBOL_TIMEFRAME_data.csv (e.g. "
            "BTCUSDT_15m_data.csv); rename it or give the symbol and timeframe explicitly "
            "(data.symbol / data.timeframe in the config)"
        )
    return engine_symbol(m.group("symbol")), m.group("tf")


def engine_symbol(raw: str) -> str:
    """The engine's one symbol format: ``BTCUSDT`` -> ``BTC-USDT``; a dash is kept as is."""
    s = raw.upper()
    if "-" in s:
        return s
    for q in _QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return f"{s[: -len(q)]}-{q}"
    return s


def _lines(mask: np.ndarray, offset: int = 2) -> tuple[str, int]:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i) + offset) for i in idx[:_SHOW])
    return shown, int(idx.size)


def _fail(path: Path, mask: np.ndarray, problem: str, fix: str) -> None:
    shown, n = _lines(mask)
    more = f" (and {n - _SHOW} more)" if n > _SHOW else ""
    raise DataError(f"{path}: line {shown}{more}: {problem}; {fix}")


def _parse_times(path: Path, raw: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(raw.dtype):
        return raw.to_numpy(dtype=np.int64) * 1_000_000  # epoch milliseconds
    s = raw.astype(str).str.strip()
    empty = (s == "") | raw.isna()
    if empty.any():
        _fail(path, empty.to_numpy(), "empty timestamp", "every row needs a timestamp")
    if s.str.fullmatch(r"\d{11,14}").all():
        return s.astype("int64").to_numpy() * 1_000_000
    t = pd.to_datetime(s, format="%Y-%m-%d %H:%M:%S", errors="coerce", utc=True)
    bad = t.isna().to_numpy()
    if bad.any():  # second chance for ISO 8601 ("2023-04-01T00:00:00Z")
        t2 = pd.to_datetime(s[bad], format="ISO8601", errors="coerce", utc=True)
        t = t.copy()
        t[bad] = t2
        bad = t.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        _fail(path, bad, f"timestamp {s.iloc[i]!r} is not a time",
              "write UTC open times as 'YYYY-MM-DD HH:MM:SS' or epoch milliseconds")
    return (t.dt.tz_convert(None).to_numpy().astype("datetime64[ns]")).astype(np.int64)


def _read_frame(path: Path, typed: bool) -> pd.DataFrame:
    """Read the CSV. ``typed`` parses prices as float64 in the C parser (fast path); it raises
    ValueError on a non-numeric cell, and the caller re-reads as text to name the line."""
    try:
        if typed:
            df = pd.read_csv(path, engine="c", dtype={c: "float64" for c in COLUMNS[1:]},
                             keep_default_na=False, na_values=[""])
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], engine="c")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check data.file or --data") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; it needs the header "
                        f"{','.join(COLUMNS)} and at least one bar") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a valid CSV ({exc}); every line needs 6 fields") from exc
    cols = [c.strip().lower() for c in df.columns]
    missing = [c for c in COLUMNS if c not in cols]
    extra = [c for c in cols if c not in COLUMNS]
    if missing or extra:
        raise DataError(
            f"{path}: line 1: columns must be exactly {','.join(COLUMNS)}"
            + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else "")
        )
    df.columns = cols
    if df.empty:
        raise DataError(f"{path}: no bars after the header")
    return df


def _numbers(path: Path, df: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for c in COLUMNS[1:]:
        s = df[c].str.strip()
        empty = (s == "").to_numpy()
        if empty.any():
            _fail(path, empty, f"empty {c}", "fill in the value or drop the row")
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(v)
        if bad.any():
            i = int(np.argmax(bad))
            what = "NaN" if s.iloc[i].lower() in ("nan", "na", "null", "none") else "not a number"
            _fail(path, bad, f"{c} {s.iloc[i]!r} is {what}", "every price and volume must be a number")
        if not np.isfinite(v).all():
            _fail(path, ~np.isfinite(v), f"{c} is infinite", "every price must be finite")
        out[c] = v
    return out


def _check_values(path: Path, ts: np.ndarray, v: dict[str, np.ndarray], tf_ns: int) -> None:
    if ts.size > 1:
        d = np.diff(ts)
        if (d == 0).any():
            _fail(path, np.concatenate(([False], d == 0)), "duplicate timestamp",
                  "remove the repeated bar")
        if (d < 0).any():
            _fail(path, np.concatenate(([False], d < 0)), "timestamp is earlier than the line before",
                  "sort the file by time")
    off = ts % tf_ns != 0
    if off.any():
        _fail(path, off, "timestamp is not on the bar grid (not a multiple of the timeframe)",
              "timestamps must be candle open times")
    o, h, lo, c = v["open"], v["high"], v["low"], v["close"]
    bad = (h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (lo > h)
    if bad.any():
        _fail(path, bad, "high/low do not bound open/close", "check the column order and values")
    if (np.minimum.reduce([o, h, lo, c]) <= 0).any():
        _fail(path, np.minimum.reduce([o, h, lo, c]) <= 0, "price is zero or negative",
              "prices must be positive")
    neg = v["volume"] < 0
    if neg.any():
        _fail(path, neg, "negative volume", "volume must be >= 0")


def _gaps(ts: np.ndarray, tf_ns: int) -> tuple[GapSummary, np.ndarray]:
    if ts.size < 2:
        return GapSummary(), np.empty(0, dtype=np.int64)
    steps = np.diff(ts) // tf_ns
    where = np.flatnonzero(steps > 1)
    if not where.size:
        return GapSummary(), where
    missing = steps[where] - 1
    k = int(np.argmax(missing))
    after = str(np.datetime64(int(ts[where[k]]), "ns").astype("datetime64[s]")).replace("T", " ")
    return GapSummary(int(where.size), int(missing.sum()), int(missing[k]), after), where


def _cache_path(path: Path) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{_CACHE_VERSION}"
    root = Path(os.environ.get("TRADEBOT_CACHE_DIR", Path.home() / ".cache" / "tradebot"))
    return root / "bars" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npy")


def _parse(path: Path, tf_ns: int) -> np.ndarray:
    try:
        df = _read_frame(path, typed=True)
        v = {c: df[c].to_numpy(dtype=np.float64) for c in COLUMNS[1:]}
        for c, col in v.items():
            if np.isnan(col).any():
                _fail(path, np.isnan(col), f"empty or NaN {c}", "fill in the value or drop the row")
            if not np.isfinite(col).all():
                _fail(path, ~np.isfinite(col), f"{c} is infinite", "every price must be finite")
    except ValueError:
        df = _read_frame(path, typed=False)  # slow path, only to name the bad line
        v = _numbers(path, df)
    ts = _parse_times(path, df["timestamp"])
    _check_values(path, ts, v, tf_ns)
    rec = np.empty(ts.size, dtype=BAR_DTYPE)
    rec["ts_open_ns"] = ts
    for c in COLUMNS[1:]:
        rec[c] = v[c]
    return rec


def _records(path: Path, tf_ns: int, use_cache: bool) -> np.ndarray:
    """Parsed and validated records (gaps not yet handled), from the cache when possible."""
    cache = _cache_path(path) if use_cache else None
    if cache is not None and cache.is_file():
        try:
            return np.load(cache, allow_pickle=False)
        except (OSError, ValueError):
            pass  # a damaged cache is re-made below
    rec = _parse(path, tf_ns)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, rec, allow_pickle=False)
            tmp.replace(cache)
        except OSError:
            pass  # caching is an optimisation: a read-only home must not stop a run
    return rec


def load_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    gaps: GapPolicy = "fail",
    use_cache: bool = True,
) -> Bars:
    """Read, validate and return the bars of ``path``.

    Raises:
        DataError: the file is missing or malformed (the message names file, line, problem and
            fix), or it has gaps and ``gaps="fail"``.
    """
    p = Path(path)
    if symbol is None or timeframe is None:
        sym, tf = parse_name(p)
        symbol = symbol or sym
        timeframe = timeframe or tf
    tf_ns = timeframe_ns(timeframe)
    rec = _records(p, tf_ns, use_cache)
    summary, where = _gaps(rec["ts_open_ns"], tf_ns)
    if summary.count:
        if gaps == "fail":
            raise DataError(
                f"{p}: {summary.text()}; set data.gaps to 'fill' (flat bars at the previous "
                "close, zero volume) or 'keep' (bars stay consecutive), or fix the file"
            )
        if gaps == "fill":
            rec = _fill(rec, tf_ns)
    return Bars.from_records(engine_symbol(symbol), timeframe, tf_ns, rec)


def _fill(rec: np.ndarray, tf_ns: int) -> np.ndarray:
    ts = rec["ts_open_ns"]
    idx = (ts - ts[0]) // tf_ns
    out = np.empty(int(idx[-1]) + 1, dtype=BAR_DTYPE)
    out["ts_open_ns"] = ts[0] + np.arange(out.size, dtype=np.int64) * tf_ns
    present = np.zeros(out.size, dtype=bool)
    present[idx] = True
    src = np.cumsum(present) - 1  # the last real bar at or before each slot
    prev_close = rec["close"][src]
    for c in ("open", "high", "low", "close"):
        out[c] = prev_close
        out[c][idx] = rec[c]
    out["volume"] = 0.0
    out["volume"][idx] = rec["volume"]
    return out


def validate_file(path: str | Path, *, symbol: str | None = None,
                  timeframe: str | None = None) -> ValidationReport:
    """Validate ``path`` and summarise it; never raises for bad data (see ``ok``/``problems``)."""
    p = Path(path)
    try:
        if symbol is None or timeframe is None:
            sym, tf = parse_name(p)
            symbol, timeframe = symbol or sym, timeframe or tf
        rec = _records(p, timeframe_ns(timeframe), use_cache=False)
    except DataError as exc:
        return ValidationReport(str(p), ok=False, problems=[str(exc)])
    tf_ns = timeframe_ns(timeframe)
    summary, _ = _gaps(rec["ts_open_ns"], tf_ns)

    def iso(ns: int) -> str:
        return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")).replace("T", " ")

    return ValidationReport(
        str(p), ok=True, rows=int(rec.size), symbol=engine_symbol(symbol), timeframe=timeframe,
        first_open=iso(rec["ts_open_ns"][0]), last_open=iso(rec["ts_open_ns"][-1]),
        gaps=summary, price_min=float(rec["close"].min()), price_max=float(rec["close"].max()),
        total_volume=float(rec["volume"].sum()),
    )
