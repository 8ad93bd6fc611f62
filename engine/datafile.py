"""Load and validate bar files named ``SYMBOL_TIMEFRAME_data.csv``.

Format (details in ``docs/data.md``): header ``timestamp,open,high,low,close,volume`` (any column
order); ``timestamp`` is the candle **open** time in UTC, written ``YYYY-MM-DD HH:MM:SS`` (ISO 8601
with ``T``/``Z`` also accepted) or as integer epoch milliseconds; volume is in the base asset.

A bad file is refused with one ``DataError`` that names the file, the line (the header is line 1),
the problem and what to do. Gaps in the time grid are always reported, and handled as the caller
asks with ``gaps=``:

- ``"fail"`` (default): refuse the file, listing the gaps and the options;
- ``"keep"``: the bars stay consecutive by ``seq``, so a rule that counts N bars spans more than
  N timeframes across a gap;
- ``"fill"``: insert flat bars (open = high = low = close = previous close, volume 0).

Parsed, validated bars are cached as a ``.npy`` of ``BAR_DTYPE`` records under
``$TRADEBOT_CACHE_DIR`` (default in ``engine/cache.py``). The key hashes the file's *bytes*
(plus the timeframe and a format version), not its size and modification time: mtimes can be
coarse or be restored by tools (``touch -r``, ``rsync -t``, ``tar``), so size + mtime can match
after an edit, while hashing the 4.6 MB real file costs about 3 ms. The bytes hashed are the
bytes parsed, so an entry can only ever hold the validated content of exactly those bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from engine.bars import BAR_DTYPE, PRICE_COLUMNS, Bars
from engine.errors import ConfigError, DataError
from engine.timeframes import NS_PER_SECOND, timeframe_ns

logger = logging.getLogger(__name__)

COLUMNS = ("timestamp", *PRICE_COLUMNS)
GapPolicy = Literal["fail", "keep", "fill"]
GAP_POLICIES: tuple[GapPolicy, ...] = ("fail", "keep", "fill")
# Bump when parsing or validation rules change: entries made by older rules are then never read.
CACHE_FORMAT_VERSION = 2
# Quote assets recognised when splitting "BTCUSDT" into "BTC-USDT". Longest first, so that
# "BTCUSDT" is split at USDT rather than at USD.
QUOTE_ASSETS = tuple(sorted(
    ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "TRY", "BTC", "ETH",
     "BNB"),
    key=len, reverse=True,
))

_NAME_RE = re.compile(r"^(?P<symbol>[A-Za-z0-9-]+)_(?P<tf>\d+[mhdw])_data\.csv$")
_NAME_RULE = (
    "name the file SYMBOL_TIMEFRAME_data.csv (e.g. BTCUSDT_15m_data.csv; SYMBOL is letters, digits "
    "and '-', TIMEFRAME like 15m, 1h, 1d), or give them explicitly: --symbol/--timeframe on "
    "`tradebot run`, `check-lookahead`, `indicators` or `data validate`, data.symbol and "
    "data.timeframe in a run config"
)
_TIME_RULE = (
    "write UTC candle open times as 'YYYY-MM-DD HH:MM:SS' (ISO 8601 with T/Z also works) or as "
    "integer epoch milliseconds, one format for the whole file"
)
# pandas' C parser reports a row with too many fields as "Expected 6 fields in line 5, saw 7"
_PANDAS_FIELDS_RE = re.compile(r"Expected \d+ fields in line (?P<line>\d+), saw (?P<saw>\d+)")
_PLAIN_TIME_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_SHOW = 3  # offending lines quoted in a message; the rest are counted
# Plausible epoch milliseconds: 1973-03-03 .. year 5138. Outside it the unit is wrong.
_MS_MIN, _MS_MAX = 10**11, 10**14
_NS_PER_MS = 1_000_000
# Weekly candles open on Mondays (Binance and most venues); the epoch, 1970-01-01, is a Thursday.
_WEEK_ORIGIN_NS = 4 * 86_400 * NS_PER_SECOND

Records = NDArray[np.void]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


# -- report ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing bars between two consecutive rows of a file."""

    after_open: str  # open time (UTC) of the last bar before the gap
    line: int  # line in the file of the first bar after the gap
    missing_bars: int


@dataclass(frozen=True, slots=True)
class GapSummary:
    """Gaps in a series' time grid: totals, the largest, and the first few."""

    count: int = 0
    missing_bars: int = 0
    largest: Gap | None = None
    first: tuple[Gap, ...] = ()

    def text(self) -> str:
        """One line, e.g. ``2 gaps, 5 missing bars, largest 4 bars after 2024-01-01 00:15:00``."""
        if not self.count or self.largest is None:
            return "no gaps"
        return (
            f"{self.count} gap{'s' * (self.count != 1)}, {self.missing_bars} missing bar"
            f"{'s' * (self.missing_bars != 1)}, largest {self.largest.missing_bars} bars after "
            f"{self.largest.after_open} (line {self.largest.line})"
        )

    def listing(self) -> str:
        """The first few gaps, e.g. ``after 2024-01-01 00:15:00 (line 4): 3 bars; ...``."""
        shown = "; ".join(f"after {g.after_open} (line {g.line}): {g.missing_bars} bars"
                          for g in self.first)
        more = self.count - len(self.first)
        return shown + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What ``validate_file`` found. ``ok`` is false exactly when ``problems`` is not empty.

    The statistics are filled whenever the rows could be parsed (also when only the gap policy
    refused the file); times are candle open times, UTC.
    """

    path: str
    ok: bool
    problems: tuple[str, ...] = ()
    rows: int = 0
    symbol: str = ""
    timeframe: str = ""
    first_open: str = ""
    last_open: str = ""
    gaps: GapSummary = GapSummary()
    price_min: float = float("nan")  # lowest low
    price_max: float = float("nan")  # highest high
    total_volume: float = 0.0
    gap_policy: GapPolicy = "fail"

    def summary(self) -> str:
        """Human-readable verdict and statistics, several lines."""
        lines = [f"{self.path}: {'OK' if self.ok else 'INVALID'}"]
        lines += [f"  problem: {p}" for p in self.problems]
        if self.rows:
            lines += [
                f"  {self.symbol} {self.timeframe}: {self.rows:,} bars, open times "
                f"{self.first_open} .. {self.last_open} UTC",
                f"  gaps: {self.gaps.text()} (policy: {self.gap_policy})",
                f"  price range (lowest low .. highest high): {self.price_min:,.2f} .. "
                f"{self.price_max:,.2f}",
                f"  total volume: {self.total_volume:,.2f}",
            ]
        return "\n".join(lines)


# -- names -------------------------------------------------------------------------------------


def engine_symbol(raw: str) -> str:
    """The engine's one symbol format: ``BTCUSDT`` -> ``BTC-USDT``.

    A symbol that already has a dash is kept as is (upper-cased); one without a known quote asset
    (``QUOTE_ASSETS``) is returned upper-cased and unsplit.
    """
    s = raw.strip().upper()
    if "-" in s:
        return s
    for quote in QUOTE_ASSETS:
        if s.endswith(quote) and len(s) > len(quote):
            return f"{s[: -len(quote)]}-{quote}"
    return s


def parse_name(path: str | Path) -> tuple[str, str]:
    """Symbol and timeframe from a file name: ``BTCUSDT_15m_data.csv`` -> ``("BTC-USDT", "15m")``.

    Raises:
        DataError: the name does not follow ``SYMBOL_TIMEFRAME_data.csv``.
    """
    p = Path(path)
    m = _NAME_RE.match(p.name)
    if m is None:
        raise DataError(
            f"{p}: cannot tell the symbol and timeframe from the file name; {_NAME_RULE}"
        )
    return engine_symbol(m.group("symbol")), m.group("tf")


def _series_of(path: Path, symbol: str | None, timeframe: str | None) -> tuple[str, str, int]:
    """(engine symbol, timeframe, timeframe in ns), from the arguments or else the file name."""
    if symbol is None or timeframe is None:
        name_symbol, name_tf = parse_name(path)
        symbol = symbol or name_symbol
        timeframe = timeframe or name_tf
    try:
        tf_ns = timeframe_ns(timeframe)
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from None
    return engine_symbol(symbol), timeframe, tf_ns


def _grid_origin_ns(timeframe: str) -> int:
    return _WEEK_ORIGIN_NS if timeframe.endswith("w") else 0


# -- errors ------------------------------------------------------------------------------------


def _row_error(path: Path, bad: NDArray[np.bool_], problem: str, fix: str) -> DataError:
    """One DataError for every row flagged in ``bad`` (data row i is line i + 2)."""
    rows = np.flatnonzero(bad)
    shown = ", ".join(str(int(i) + 2) for i in rows[:_SHOW])
    more = f" (and {rows.size - _SHOW} more)" if rows.size > _SHOW else ""
    word = "line" if rows.size == 1 else "lines"
    return DataError(f"{path}: {word} {shown}{more}: {problem}; {fix}")


def _iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")).replace("T", " ")


# -- parsing -----------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path (data.file or --data)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _header(path: Path, data: bytes) -> list[str]:
    """Normalised column names of line 1, checked against ``COLUMNS``."""
    if b"\x00" in data[:65536]:
        raise DataError(f"{path}: a binary file, not a CSV (it contains NUL bytes); give a text "
                        f"file with the header {','.join(COLUMNS)} and one line per bar")
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    if not data.strip():
        raise DataError(f"{path}: the file is empty; it needs the header {','.join(COLUMNS)} "
                        "and one line per bar")
    # lstrip the UTF-8 byte-order mark some spreadsheet programs write
    names = [c.strip().strip('"').lower() for c in first.lstrip("\ufeff").split(",")]
    missing = [c for c in COLUMNS if c not in names]
    extra = [c for c in names if c not in COLUMNS]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if missing or extra or duplicated:
        found = "; ".join(
            f"{word} {cols}" for word, cols in
            (("missing", missing), ("unexpected", extra), ("repeated", duplicated)) if cols
        )
        raise DataError(f"{path}: line 1: bad header ({found}); it must name exactly the columns "
                        f"{','.join(COLUMNS)}, in any order")
    return names


def _read_frame(path: Path, data: bytes, names: list[str], typed: bool) -> pd.DataFrame:
    """Parse the rows with pandas' C parser.

    ``typed`` reads prices as float64 in C (the fast path; it raises ``ValueError`` on a cell
    that is not a number). Otherwise every cell is read as text, only to name a bad cell's line.
    Blank lines are kept as empty rows so that row i is always line i + 2.
    """
    dtype: dict[str, type] = dict.fromkeys(COLUMNS, object)
    if typed:
        dtype.update(dict.fromkeys(PRICE_COLUMNS, np.float64))
    with warnings.catch_warnings():
        # pandas only *warns* (and drops data) when line 2 has more fields than the header
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            df = pd.read_csv(
                io.BytesIO(data), engine="c", header=0, names=names, index_col=False, dtype=dtype,
                # only an empty cell is missing: "NaN" or "null" must be reported, not read as NaN
                keep_default_na=False, na_values=[""], skip_blank_lines=False,
            )
        except pd.errors.ParserWarning:
            raise DataError(f"{path}: line 2: more fields than the {len(COLUMNS)} columns of the "
                            "header; every line needs exactly one value per column") from None
        except pd.errors.ParserError as exc:
            m = _PANDAS_FIELDS_RE.search(str(exc))
            where = f"line {m['line']}: {m['saw']} values" if m else f"not a valid CSV ({exc})"
            raise DataError(f"{path}: {where}; every line needs exactly one value per column "
                            f"({len(COLUMNS)})") from None
    return df


def _drop_trailing_blank_rows(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Drop blank lines at the end of the file; refuse blank lines between bars."""
    if not df["timestamp"].isna().any():  # the common case: no blank line anywhere
        return df
    blank = df.isna().all(axis=1).to_numpy()
    filled = np.flatnonzero(~blank)
    df = df.iloc[: int(filled[-1]) + 1] if filled.size else df.iloc[:0]
    inner = blank[: len(df)]
    if inner.any():
        raise _row_error(path, inner, "blank line between bars", "delete the blank line")
    return df


def _number_error(path: Path, data: bytes, names: list[str], n_rows: int) -> DataError:
    """Re-read as text to name the first column and lines with a bad number (slow path)."""
    text = _read_frame(path, data, names, typed=False).iloc[:n_rows]
    for c in PRICE_COLUMNS:
        s = text[c].fillna("").str.strip()
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        cell = str(s.iloc[int(np.argmax(bad))])
        if cell == "":
            what = f"{c} is empty"
        elif cell.lower() in ("nan", "na", "n/a", "null", "none"):
            what = f"{c} is {cell!r} (not a number)"
        elif cell.lstrip("+-").lower() in ("inf", "infinity"):
            what = f"{c} is infinite ({cell!r})"
        else:
            what = f"{c} {cell!r} is not a number"
        return _row_error(path, bad, what,
                          "write every price and volume as a decimal number, or delete the row")
    # pandas refused a value that pd.to_numeric accepts: name no line rather than a wrong one
    return DataError(f"{path}: a price or volume could not be read as a number; "
                     "write every price and volume as a plain decimal number")


def _epoch_ms(path: Path, text: pd.Series) -> I64:
    # float64 holds every plausible millisecond count exactly (< 2**53)
    ms = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(ms) | (ms != np.floor(ms))
    if bad.any():
        cell = text.iloc[int(np.argmax(bad))]
        raise _row_error(path, bad, f"timestamp {cell!r} is not an integer number of "
                         "epoch milliseconds like the first row", _TIME_RULE)
    implausible = (ms < _MS_MIN) | (ms >= _MS_MAX)
    if implausible.any():
        cell = text.iloc[int(np.argmax(implausible))]
        unit = "epoch seconds? multiply by 1000" if len(cell) == 10 else "check the unit"
        raise _row_error(path, implausible, f"timestamp {cell} is not a plausible "
                         f"epoch-milliseconds time ({unit})", _TIME_RULE)
    return ms.astype(np.int64) * _NS_PER_MS


def _iso8601(text: pd.Series) -> pd.Series:
    """ISO 8601 times (``T``, ``Z``, offsets) as naive UTC datetime64[ns]; NaT where invalid."""
    t = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    return t.dt.tz_localize(None).astype("datetime64[ns]")


def _datetimes(path: Path, text: pd.Series) -> I64:
    if _PLAIN_TIME_RE.fullmatch(str(text.iloc[0])):
        # the project's own format: an exact-format parse is the fast path
        t = pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", errors="coerce")
        t = t.astype("datetime64[ns]")
        bad = t.isna().to_numpy()
        if bad.any():  # second chance, for the rows that missed only
            t[bad] = _iso8601(text[bad]).to_numpy()
    else:
        t = _iso8601(text)
    bad = t.isna().to_numpy()
    if bad.any():
        cell = text.iloc[int(np.argmax(bad))]
        raise _row_error(path, bad, f"timestamp {cell!r} is not a time", _TIME_RULE)
    return np.asarray(t.to_numpy(), dtype="datetime64[ns]").view(np.int64)


def _open_times(path: Path, raw: pd.Series) -> I64:
    """Open times in UTC ns. The format (epoch ms or date-time) is decided by the first row."""
    empty = raw.isna().to_numpy()
    if empty.any():
        raise _row_error(path, empty, "timestamp is empty", _TIME_RULE)
    text = raw.str.strip()
    if str(text.iloc[0]).isdigit():
        return _epoch_ms(path, text)
    return _datetimes(path, text)


def tf_text(ns: int) -> str:
    """A duration in the timeframe notation: 3_600e9 -> ``"1h"``, 90 s -> ``"90s"``."""
    sec = int(ns) // NS_PER_SECOND
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if sec >= n and sec % n == 0:
            return f"{sec // n}{unit}"
    return f"{sec}s"


def _spacing(ts: I64) -> int:
    """The step between consecutive open times (ns) that at least half of the steps have; 0 when
    none does (or for fewer than two bars)."""
    if ts.size < 2:
        return 0
    steps, counts = np.unique(np.diff(ts), return_counts=True)
    i = int(np.argmax(counts))
    return int(steps[i]) if 2 * counts[i] >= ts.size - 1 else 0


def _named(timeframe: str, from_name: bool) -> str:
    return (f"the file name says {timeframe}" if from_name
            else f"the timeframe given (--timeframe / data.timeframe) is {timeframe}")


def _wrong_timeframe(path: Path, ts: I64, tf_ns: int, timeframe: str,
                     from_name: bool) -> DataError | None:
    """The file's bars are spaced by another timeframe than the one it is read as: every bar
    would be a gap (or off the grid). None when the spacing fits."""
    step = _spacing(ts)
    if ts.size < 2 or step <= 0 or step == tf_ns:
        return None
    steps = np.diff(ts)
    if step > tf_ns and np.any(steps == tf_ns):
        return None  # real bars one timeframe apart exist: these are gaps, not another timeframe
    real = tf_text(step)
    fix = (f"rename the file (e.g. {_renamed(path, real)}) or pass --timeframe {real} "
           f"(data.timeframe: {real} in a run config)" if from_name else
           f"pass --timeframe {real} (data.timeframe: {real} in a run config)")
    return DataError(f"{path}: the bars are {real} apart (most of them), but "
                     f"{_named(timeframe, from_name)}; {fix}")


def _renamed(path: Path, timeframe: str) -> str:
    m = _NAME_RE.match(path.name)
    return f"{m.group('symbol')}_{timeframe}_data.csv" if m else f"SYMBOL_{timeframe}_data.csv"


def _check_times(path: Path, ts: I64, tf_ns: int, origin_ns: int, timeframe: str,
                 from_name: bool = True) -> None:
    step = np.diff(ts)
    dup = np.concatenate(([False], step == 0))
    if dup.any():
        raise _row_error(path, dup, f"duplicate timestamp {_iso(ts[int(np.argmax(dup))])} "
                         "(same as the line before)", "delete the repeated bar")
    back = np.concatenate(([False], step < 0))
    if back.any():
        raise _row_error(path, back, "timestamp is earlier than the line before",
                         "sort the file by time (oldest first)")
    off = (ts - origin_ns) % tf_ns != 0
    if off.any():
        wrong = _wrong_timeframe(path, ts, tf_ns, timeframe, from_name)
        if wrong is not None:
            raise wrong
        raise _row_error(
            path, off, f"timestamp {_iso(ts[int(np.argmax(off))])} is not on the {timeframe} grid "
            f"(not a whole number of {timeframe} bars from the epoch)",
            "timestamps must be candle open times; check the timeframe in the file name",
        )


def _check_prices(path: Path, o: F64, h: F64, lo: F64, c: F64, v: F64) -> None:
    unbounded = (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
    if unbounded.any():
        i = int(np.argmax(unbounded))
        raise _row_error(
            path, unbounded, f"high/low do not bound open/close (o={o[i]:g} h={h[i]:g} "
            f"l={lo[i]:g} c={c[i]:g})",
            "need low <= min(open, close) and high >= max(open, close); check the column order",
        )
    nonpositive = lo <= 0  # low is the smallest price once the bounds hold
    if nonpositive.any():
        raise _row_error(path, nonpositive, "a price is zero or negative", "prices must be > 0")
    negative = v < 0
    if negative.any():
        raise _row_error(path, negative, f"negative volume {v[int(np.argmax(negative))]:g}",
                         "volume must be >= 0")


def _parse(path: Path, data: bytes, tf_ns: int, timeframe: str, from_name: bool = True) -> Records:
    """Parse and validate every row (gaps are not an error here)."""
    names = _header(path, data)
    try:
        df = _read_frame(path, data, names, typed=True)
        typed_ok = True
    except ValueError:  # a cell the C parser cannot read as float64
        df = _read_frame(path, data, names, typed=False)
        typed_ok = False
    df = _drop_trailing_blank_rows(path, df)
    if df.empty:
        raise DataError(f"{path}: no bars after the header; add one line per bar")
    prices = df[list(PRICE_COLUMNS)].to_numpy(dtype=np.float64) if typed_ok else None
    if prices is None or not np.isfinite(prices).all():
        raise _number_error(path, data, names, len(df))
    ts = _open_times(path, df["timestamp"])
    _check_times(path, ts, tf_ns, _grid_origin_ns(timeframe), timeframe, from_name)
    _check_prices(path, *(prices[:, k] for k in range(len(PRICE_COLUMNS))))
    rec = np.empty(ts.size, dtype=BAR_DTYPE)
    rec["ts_open_ns"] = ts
    for k, c in enumerate(PRICE_COLUMNS):
        rec[c] = prices[:, k]
    return rec


# -- gaps --------------------------------------------------------------------------------------


def gap_summary(ts_open_ns: I64, tf_ns: int) -> GapSummary:
    """Gaps in a sorted open-time column (on the grid) whose bars are ``tf_ns`` apart."""
    if ts_open_ns.size < 2:
        return GapSummary()
    missing = np.diff(ts_open_ns) // tf_ns - 1
    where = np.flatnonzero(missing > 0)
    if not where.size:
        return GapSummary()

    def gap(i: int) -> Gap:  # row i is the last bar before the gap; the next bar is line i + 3
        return Gap(_iso(ts_open_ns[i]), i + 3, int(missing[i]))

    largest = int(where[int(np.argmax(missing[where]))])
    return GapSummary(
        count=int(where.size), missing_bars=int(missing[where].sum()), largest=gap(largest),
        first=tuple(gap(int(i)) for i in where[:_SHOW]),
    )


def _fill_gaps(rec: Records, tf_ns: int) -> Records:
    """Insert flat bars (o=h=l=c=previous close, volume 0) in every gap."""
    ts = rec["ts_open_ns"]
    slot = (ts - ts[0]) // tf_ns
    out = np.empty(int(slot[-1]) + 1, dtype=BAR_DTYPE)
    out["ts_open_ns"] = ts[0] + np.arange(out.size, dtype=np.int64) * tf_ns
    present = np.zeros(out.size, dtype=bool)
    present[slot] = True
    last_real = np.cumsum(present) - 1  # index in rec of the last real bar at or before each slot
    prev_close = rec["close"][last_real]
    for c in ("open", "high", "low", "close"):
        out[c] = prev_close
        out[c][slot] = rec[c]
    out["volume"] = 0.0
    out["volume"][slot] = rec["volume"]
    return out


def _gap_error(path: Path, gaps: GapSummary) -> DataError:
    return DataError(
        f"{path}: {gaps.text()}: {gaps.listing()}. Choose how to handle them: gaps 'fill' "
        "inserts flat bars at the previous close with zero volume, 'keep' keeps the bars "
        "consecutive (a rule counting N bars then spans more time across a gap); set data.gaps "
        "in the config (--gaps on `tradebot run`, `check-lookahead`, `indicators` or `data "
        "validate`), or fix the file"
    )


# -- cache -------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where parsed bar files are cached: ``$TRADEBOT_CACHE_DIR``, default in ``engine/cache.py``
    (``<checkout>/.cache/tradebot`` in a source checkout, else ``~/.cache/tradebot``)."""
    from engine.cache import tradebot_cache_dir

    return tradebot_cache_dir()


def _cache_file(path: Path, data: bytes, tf_ns: int, origin_ns: int) -> Path:
    # The name is <source path hash>-<content key>: the prefix lets a new entry evict the one made
    # for an older version of the same file, so edits do not pile up entries.
    source = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    key = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}|{tf_ns}|{origin_ns}|".encode())
    key.update(data)
    return cache_dir() / "bars" / f"{source}-{key.hexdigest()[:32]}.npy"


def _cache_get(entry: Path) -> Records | None:
    try:
        rec = np.load(entry, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:  # damaged: parse again and overwrite it
        logger.debug("ignoring unreadable cache entry %s: %s", entry, exc)
        return None
    if rec.dtype != BAR_DTYPE or rec.ndim != 1 or rec.size == 0:
        logger.debug("ignoring cache entry %s of dtype %s shape %s", entry, rec.dtype, rec.shape)
        return None
    return rec


def _cache_put(entry: Path, rec: Records) -> None:
    tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            np.save(fh, rec, allow_pickle=False)
        tmp.replace(entry)  # atomic: a reader sees the old entry or the whole new one
        prefix = entry.name.split("-", 1)[0]
        for old in entry.parent.glob(f"{prefix}-*.npy"):
            if old != entry:
                old.unlink(missing_ok=True)
    except OSError as exc:  # the cache is an optimisation: a read-only home must not stop a run
        logger.debug("not caching %s: %s", entry, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _records(path: Path, timeframe: str, tf_ns: int, use_cache: bool,
             from_name: bool = True) -> Records:
    """Validated records of ``path`` (gaps not handled yet), from the cache when possible.

    Raises:
        DataError: as ``_parse``, or the bars are spaced by another timeframe than ``timeframe``
            (every bar would be a gap): the message says the real spacing.
    """
    data = _read_bytes(path)
    if not use_cache:
        rec = _parse(path, data, tf_ns, timeframe, from_name)
    else:
        entry = _cache_file(path, data, tf_ns, _grid_origin_ns(timeframe))
        rec = _cache_get(entry)
        if rec is None:
            rec = _parse(path, data, tf_ns, timeframe, from_name)
            _cache_put(entry, rec)
    wrong = _wrong_timeframe(path, rec["ts_open_ns"], tf_ns, timeframe, from_name)
    if wrong is not None:
        raise wrong
    return rec


# -- public ------------------------------------------------------------------------------------


def _check_policy(gaps: str) -> None:
    if gaps not in GAP_POLICIES:
        raise ConfigError(
            f"gaps={gaps!r} is not a gap policy; use one of {', '.join(GAP_POLICIES)}"
        )


def load_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    gaps: GapPolicy = "fail",
    use_cache: bool = True,
) -> Bars:
    """Read, validate and return the bars of a CSV file.

    Args:
        path: the CSV file (``SYMBOL_TIMEFRAME_data.csv``).
        symbol: overrides the symbol from the file name; converted to the engine format
            (``BTCUSDT`` -> ``BTC-USDT``).
        timeframe: overrides the timeframe from the file name (``"15m"``).
        gaps: ``"fail"``, ``"keep"`` or ``"fill"`` (see the module docstring).
        use_cache: read and write the binary cache (see ``cache_dir``).

    Returns:
        The bars, oldest first, with ``ts_open_ns`` the open times (UTC ns).

    Raises:
        DataError: the file is missing or malformed (the message names the file, the line, the
            problem and the fix), or it has gaps and ``gaps="fail"``.
        ConfigError: ``gaps`` is not one of the policies.
    """
    _check_policy(gaps)
    p = Path(path)
    sym, tf, tf_ns = _series_of(p, symbol, timeframe)
    rec = _records(p, tf, tf_ns, use_cache, from_name=timeframe is None)
    found = gap_summary(rec["ts_open_ns"], tf_ns)
    if found.count:
        if gaps == "fail":
            raise _gap_error(p, found)
        if gaps == "fill":
            rec = _fill_gaps(rec, tf_ns)
    return Bars.from_records(sym, tf, tf_ns, rec)


def validate_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    gaps: GapPolicy = "fail",
) -> ValidationReport:
    """Validate a CSV file from its bytes (never from the cache) and summarise it.

    Bad data does not raise: it makes ``ok`` false and is described in ``problems``. Gaps are a
    problem only under ``gaps="fail"``; they are counted in the report under every policy.

    Raises:
        ConfigError: ``gaps`` is not one of the policies.
    """
    _check_policy(gaps)
    p = Path(path)
    try:
        sym, tf, tf_ns = _series_of(p, symbol, timeframe)
        rec = _records(p, tf, tf_ns, use_cache=False, from_name=timeframe is None)
    except DataError as exc:
        return ValidationReport(str(p), ok=False, problems=(str(exc),), gap_policy=gaps)
    found = gap_summary(rec["ts_open_ns"], tf_ns)
    problems = (str(_gap_error(p, found)),) if found.count and gaps == "fail" else ()
    return ValidationReport(
        str(p), ok=not problems, problems=problems, rows=int(rec.size), symbol=sym, timeframe=tf,
        first_open=_iso(rec["ts_open_ns"][0]), last_open=_iso(rec["ts_open_ns"][-1]),
        gaps=found, price_min=float(rec["low"].min()), price_max=float(rec["high"].max()),
        total_volume=float(rec["volume"].sum()), gap_policy=gaps,
    )
