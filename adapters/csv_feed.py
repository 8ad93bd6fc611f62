"""Replay feed over stored bars (a CSV file or ``Bars`` in memory).

Yields ``BarClosed`` with ``ts_event_ns`` = the bar's **close** time (open + timeframe; CSV times
are open times) and ``ts_init_ns`` equal to it (simulated clock). ``history()`` returns every bar
up front, which tells the composition root this is a replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.bars import Bars
from engine.config import DataConfig
from engine.datafile import GapPolicy, load_bars
from engine.errors import DataError
from engine.events import BarClosed


class CsvFeed:
    """A ``BarFeed`` replaying stored bars in order."""

    def __init__(self, path: str | Path, *, symbol: str | None = None,
                 timeframe: str | None = None, gaps: GapPolicy = "fail") -> None:
        self._bars = load_bars(path, symbol=symbol, timeframe=timeframe, gaps=gaps)
        self.symbol = self._bars.symbol
        self.timeframe = self._bars.timeframe

    @classmethod
    def from_bars(cls, bars: Bars) -> CsvFeed:
        feed = cls.__new__(cls)
        feed._bars = bars
        feed.symbol = bars.symbol
        feed.timeframe = bars.timeframe
        return feed

    @classmethod
    def from_config(cls, data: DataConfig) -> CsvFeed:
        """Load ``data.file`` and cut it to ``data.start`` .. ``data.end`` (open times, UTC)."""
        feed = cls(data.file, symbol=data.symbol, timeframe=data.timeframe, gaps=data.gaps)
        if data.start is None and data.end is None:
            return feed
        ts = feed._bars.ts_open_ns
        lo, hi = 0, len(ts)
        try:
            if data.start is not None:
                lo = int(np.searchsorted(ts, np.datetime64(data.start, "ns").astype(np.int64)))
            if data.end is not None:
                hi = int(np.searchsorted(ts, np.datetime64(data.end, "ns").astype(np.int64),
                                         side="right"))
        except ValueError as exc:
            raise DataError(f"data.start/data.end: {exc}; write 'YYYY-MM-DD HH:MM:SS' (UTC)") from exc
        if hi <= lo:
            raise DataError(f"{data.file}: no bars between data.start={data.start} and "
                            f"data.end={data.end}")
        return cls.from_bars(feed._bars.slice(lo, hi))

    def history(self) -> Bars:
        return self._bars

    def __len__(self) -> int:
        return len(self._bars)

    def __iter__(self) -> Iterator[BarClosed]:
        b = self._bars
        close_ns = (b.ts_open_ns + b.tf_ns).tolist()
        o, h, lo, c, v = (x.tolist() for x in (b.open, b.high, b.low, b.close, b.volume))
        sym, tf = self.symbol, self.timeframe
        for i in range(len(close_ns)):
            t = close_ns[i]
            yield BarClosed(ts_event_ns=t, ts_init_ns=t, symbol=sym, timeframe=tf, seq=i,
                            open=o[i], high=h[i], low=lo[i], close=c[i], volume=v[i])
