"""Replay feed over stored bars: a CSV file (``engine.datafile``) or ``Bars`` in memory.

Implements ``engine.ports.BarFeed``. It yields one ``BarClosed`` per bar with ``ts_event_ns`` =
the bar's **close** time (open + timeframe: CSV timestamps are open times, and a bar is only a fact
once it has closed) and ``ts_init_ns`` equal to it, because in a replay the simulated clock stands
at the close when the event is made. ``seq`` is the bar's index. ``history()`` returns every bar up
front, which is how the composition root knows this is a replay.
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
    """A ``BarFeed`` replaying stored bars in time order.

    Args:
        path: a ``SYMBOL_TIMEFRAME_data.csv`` file (format in ``docs/data.md``).
        symbol: overrides the symbol from the file name.
        timeframe: overrides the timeframe from the file name.
        gaps: ``"fail"``, ``"keep"`` or ``"fill"`` (see ``engine.datafile``).
        use_cache: use the binary cache of parsed files.

    Raises:
        DataError: the file is missing, malformed, or has gaps under ``gaps="fail"``.
    """

    symbol: str
    timeframe: str

    def __init__(
        self,
        path: str | Path,
        *,
        symbol: str | None = None,
        timeframe: str | None = None,
        gaps: GapPolicy = "fail",
        use_cache: bool = True,
    ) -> None:
        self._attach(load_bars(path, symbol=symbol, timeframe=timeframe, gaps=gaps,
                               use_cache=use_cache))

    def _attach(self, bars: Bars) -> None:
        self._bars = bars
        self.symbol = bars.symbol
        self.timeframe = bars.timeframe

    @classmethod
    def from_bars(cls, bars: Bars) -> CsvFeed:
        """A feed over bars already in memory (tests, benchmarks, slices of a file)."""
        feed = cls.__new__(cls)
        feed._attach(bars)
        return feed

    @classmethod
    def from_config(cls, data: DataConfig) -> CsvFeed:
        """Load ``data.file`` and cut it to ``data.start`` .. ``data.end`` (open times, UTC).

        Raises:
            DataError: as for the constructor, or a bound is not a time, or no bar is left.
        """
        if data.file is None:  # a paper/live config: its candles come from a venue
            raise DataError("data.file is not set: this replays a candle file; give --data FILE "
                            "(a SYMBOL_TIMEFRAME_data.csv, e.g. from `tradebot data download`)")
        feed = cls(data.file, symbol=data.symbol, timeframe=data.timeframe, gaps=data.gaps)
        if data.start is None and data.end is None:
            return feed
        ts = feed._bars.ts_open_ns
        lo, hi = 0, len(ts)
        try:
            if data.start is not None:
                lo = int(np.searchsorted(ts, np.datetime64(data.start, "ns").astype(np.int64)))
            if data.end is not None:
                end_ns = np.datetime64(data.end, "ns").astype(np.int64)
                hi = int(np.searchsorted(ts, end_ns, side="right"))
        except ValueError as exc:
            raise DataError(
                f"data.start/data.end: {exc}; write 'YYYY-MM-DD HH:MM:SS' (UTC)"
            ) from exc
        if hi <= lo:
            raise DataError(f"{data.file}: no bars between data.start={data.start} and "
                            f"data.end={data.end}; widen the range")
        return cls.from_bars(feed._bars.slice(lo, hi))

    def history(self) -> Bars:
        """Every bar this feed will yield (a replay knows them up front)."""
        return self._bars

    def __len__(self) -> int:
        return len(self._bars)

    def __iter__(self) -> Iterator[BarClosed]:
        b = self._bars
        # Python scalars once, up front: indexing numpy arrays per bar costs more than the event.
        close_ns = b.ts_close_ns.tolist()
        o, h, lo, c, v = (x.tolist() for x in (b.open, b.high, b.low, b.close, b.volume))
        sym, tf = self.symbol, self.timeframe
        for i, t in enumerate(close_ns):
            yield BarClosed(ts_event_ns=t, ts_init_ns=t, symbol=sym, timeframe=tf, seq=i,
                            open=o[i], high=h[i], low=lo[i], close=c[i], volume=v[i])
