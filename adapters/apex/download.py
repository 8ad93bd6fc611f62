"""``tradebot data download``: ApeX Omni candles into a validated ``SYMBOL_TF_data.csv``.

- Paginated: at most 200 candles a request (the venue's limit), closed candles only (the venue's
  clock decides), written page by page, so an interrupted download leaves a valid file.
- Resumable: an existing file is checked against the venue (its last rows, up to a page, must
  equal the venue's candles; else ``DataError`` naming the first differing line) and only the
  candles after its last row are appended.
- Retries timeouts, 5xx, 429 and non-JSON answers with capped exponential backoff (the venue's
  ``retryAfter`` when it gives one); an unreachable venue fails at once naming the URL.
- The result is validated with ``engine.datafile.validate_file`` (gaps reported: the venue has
  no candles for some periods; load such a file with ``data.gaps: keep`` or ``fill``).

Format: the project's CSV (``docs/data.md``): ``timestamp,open,high,low,close,volume``, UTC open
times written ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from adapters.apex.feed import MAX_KLINES, NS_PER_MS, Candle, KlineClient, resolve_venue
from engine.datafile import COLUMNS, ValidationReport, engine_symbol, load_bars, validate_file
from engine.errors import ConfigError, DataError, TransientVenueError, VenueUnreachable

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    appended: int  # candles written by this call
    existing: int  # rows the file had before
    retries: int
    report: ValidationReport


def file_name(symbol: str, timeframe: str) -> str:
    """``BTC-USDT``, ``15m`` -> ``BTCUSDT_15m_data.csv``."""
    return f"{engine_symbol(symbol).replace('-', '')}_{timeframe}_data.csv"


def parse_time_ms(text: str, what: str) -> int:
    """``2025-01-01``, ``2025-01-01 12:00[:00]`` or ISO 8601 (UTC) -> epoch ms.

    Raises:
        ConfigError: not a date/time.
    """
    try:
        v = np.datetime64(text.strip().replace(" ", "T").rstrip("Z"), "ms")
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a date; write YYYY-MM-DD or "
                          "'YYYY-MM-DD HH:MM:SS' (UTC)") from None
    if np.isnat(v):
        raise ConfigError(f"{what} {text!r} is not a date")
    return int(v.astype(np.int64))


def _fmt_row(c: Candle) -> str:
    t = str(np.datetime64(c[0], "ms").astype("datetime64[s]")).replace("T", " ")
    return f"{t},{c[1]!r},{c[2]!r},{c[3]!r},{c[4]!r},{c[5]!r}\n"


class _Retrying:
    """Calls with capped exponential backoff on transient venue errors."""

    def __init__(self, retries: int, backoff_s: float, sleep: Callable[[float], None]) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.count = 0
        self.reached = False  # the venue answered once: later "unreachable" is an outage

    def __call__(self, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                out = fn()
                self.reached = True
                return out
            except (TransientVenueError, VenueUnreachable) as exc:
                if isinstance(exc, VenueUnreachable) and not self.reached:
                    raise
                attempt += 1
                if attempt > self.retries:
                    raise TransientVenueError(
                        f"{exc}; gave up after {self.retries} retries (run the same command "
                        "again later: it resumes where it stopped)") from None
                ra = getattr(exc, "retry_after", None)
                wait = ra if ra is not None else min(self.backoff_s * 2 ** (attempt - 1), 30.0)
                self.count += 1
                logger.warning("%s; retry %d/%d in %.1f s", exc, attempt, self.retries, wait)
                self.sleep(wait)


def download(
    symbol: str,
    timeframe: str,
    start: str,
    end: str | None = None,
    out: Path = Path("data"),
    venue: str = "main",
    *,
    progress: bool = True,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    api: Any = None,
) -> DownloadResult:
    """Download closed candles from ``start`` to ``end`` (default: the newest closed) into
    ``out/SYMBOL_TF_data.csv`` (``out`` may also name the file), resuming an existing file.

    Raises:
        ConfigError: bad dates, timeframe or venue.
        DataError: the existing file is invalid, starts after ``start``, or disagrees with the
            venue (the first differing line is named).
        VenueUnreachable: nothing answers at the venue URL.
        TransientVenueError: still failing after ``retries`` retries.
    """
    url = resolve_venue(venue)
    kl = KlineClient(url, symbol, timeframe, timeout_s=timeout_s, api=api)
    tf = kl.tf_ms
    path = out if out.suffix == ".csv" else out / file_name(symbol, timeframe)
    start_ms = -(-parse_time_ms(start, "--start") // tf) * tf  # first whole candle
    end_ms = parse_time_ms(end, "--end") if end is not None else None
    if end_ms is not None and end_ms < start_ms:
        raise ConfigError(f"--end {end} is before --start {start}")
    call = _Retrying(retries, backoff_s, sleep)
    try:
        now = call(kl.server_time_ms)
    except VenueUnreachable:
        raise
    except TransientVenueError as exc:
        raise VenueUnreachable(f"{url} does not answer like the ApeX Omni API ({exc}); check "
                               "--venue") from None
    newest = (now // tf - 1) * tf
    last_ms = newest if end_ms is None else min(newest, end_ms // tf * tf)

    existing = 0
    if path.exists():
        existing, next_ms = _check_existing(path, kl, call, start_ms, symbol, timeframe)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(",".join(COLUMNS) + "\n")
        next_ms = start_ms
    total = max(0, (last_ms - next_ms) // tf + 1)
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="bar", desc=path.name, leave=False)
    appended = 0
    prev_t = next_ms - tf
    try:
        with path.open("a") as fh:
            cursor = next_ms
            while cursor <= last_ms:
                page_end = min(last_ms, cursor + (MAX_KLINES - 1) * tf)
                page = call(lambda c=cursor, e=page_end: kl.klines(c, e))
                page = [c for c in page if c[0] > prev_t and c[0] + tf <= now]
                if page:
                    fh.write("".join(_fmt_row(c) for c in page))
                    fh.flush()
                    prev_t = page[-1][0]
                    appended += len(page)
                if bar is not None:
                    bar.update((page_end - cursor) // tf + 1)
                cursor = page_end + tf
    finally:
        if bar is not None:
            bar.close()
    report = validate_file(path, symbol=engine_symbol(symbol), timeframe=timeframe, gaps="keep")
    return DownloadResult(path, appended, existing, call.count, report)


def _check_existing(path: Path, kl: KlineClient, call: _Retrying, start_ms: int, symbol: str,
                    timeframe: str) -> tuple[int, int]:
    """Rows in the file and the open time to continue from, after checking its last rows (up
    to a page) against the venue.

    Raises:
        DataError: invalid file, starts after ``start_ms``, or disagrees with the venue.
    """
    bars = load_bars(path, symbol=engine_symbol(symbol), timeframe=timeframe, gaps="keep",
                     use_cache=False)
    n = len(bars)
    if n == 0:
        return 0, start_ms
    t = bars.ts_open_ns // NS_PER_MS
    if int(t[0]) > start_ms and call(lambda: kl.klines(
            max(start_ms, int(t[0]) - MAX_KLINES * kl.tf_ms), int(t[0]) - kl.tf_ms)):
        raise DataError(
            f"{path}: the file starts at {_iso(int(t[0]))}, after --start {_iso(start_ms)}; a "
            "download only appends: move the file away (or pick another --out) to download "
            "from the earlier start"
        )
    lo = max(0, n - MAX_KLINES)
    first, last = int(t[lo]), int(t[-1])
    venue = {c[0]: c for c in call(lambda: kl.klines(first, last))}
    cols = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    for i in range(lo, n):
        ts = int(t[i])
        mine = tuple(float(c[i]) for c in cols)
        theirs = venue.get(ts)
        if theirs is None:
            continue  # the venue has no candle there either way: a gap, not a disagreement
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) for a, b in
                   zip(mine, theirs[1:], strict=True)):
            raise DataError(
                f"{path}: line {i + 2} ({_iso(ts)}) disagrees with the venue at {kl.base_url}: "
                f"the file has o,h,l,c,v = {', '.join(f'{x:g}' for x in mine)}, the venue "
                f"{', '.join(f'{x:g}' for x in theirs[1:])}; the file holds other data (another "
                "venue or symbol?): download into another --out, or move the file away"
            )
    return n, last + kl.tf_ms


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms").astype("datetime64[s]")).replace("T", " ")
