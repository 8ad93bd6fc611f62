"""Columnar bar history: the one place bars live while the engine runs.

``Bars`` is an immutable set of columns (what a feed loads). ``BarStore`` owns the growing history
the handlers see: one float64 array per column plus int64 open times, appended in place. It hands
out windows only up to the last *revealed* bar, so a handler cannot read the future through it.
In a backtest the whole file is loaded up front and revealed one bar at a time (the idea of
backtesting.py's data reveal); live, bars are appended as they close. Both look the same to readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.errors import DataError

BAR_DTYPE = np.dtype(
    [
        ("ts_open_ns", "i8"),
        ("open", "f8"),
        ("high", "f8"),
        ("low", "f8"),
        ("close", "f8"),
        ("volume", "f8"),
    ]
)
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """An immutable columnar bar series of one symbol and timeframe.

    ``ts_open_ns`` is each bar's open time (UTC ns); its close time is ``ts_open_ns + tf_ns``.
    All arrays are read-only, contiguous and of equal length.
    """

    symbol: str
    timeframe: str
    tf_ns: int
    ts_open_ns: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __post_init__(self) -> None:
        n = self.ts_open_ns.shape[0]
        for name in PRICE_COLUMNS:
            col = getattr(self, name)
            if col.shape != (n,) or col.dtype != np.float64:
                raise DataError(
                    f"Bars.{name}: expected float64 array of length {n}, got {col.dtype}{col.shape}"
                )
        for name in ("ts_open_ns", *PRICE_COLUMNS):
            getattr(self, name).flags.writeable = False

    @classmethod
    def from_columns(
        cls,
        symbol: str,
        timeframe: str,
        tf_ns: int,
        ts_open_ns: NDArray[np.integer],
        open: NDArray[np.floating],  # shadows the builtin: the market's own word
        high: NDArray[np.floating],
        low: NDArray[np.floating],
        close: NDArray[np.floating],
        volume: NDArray[np.floating],
    ) -> Bars:
        """Build from any array-likes, copying into contiguous int64/float64 columns."""

        def f(x: NDArray[np.floating]) -> F64:
            return np.array(x, dtype=np.float64, copy=True, order="C")

        return cls(
            symbol=symbol,
            timeframe=timeframe,
            tf_ns=tf_ns,
            ts_open_ns=np.array(ts_open_ns, dtype=np.int64, copy=True, order="C"),
            open=f(open),
            high=f(high),
            low=f(low),
            close=f(close),
            volume=f(volume),
        )

    def __len__(self) -> int:
        return int(self.ts_open_ns.shape[0])

    @property
    def ts_close_ns(self) -> I64:
        """Close time of each bar (UTC ns): the bar's ``ts_event_ns``."""
        return self.ts_open_ns + self.tf_ns

    def slice(self, start: int, stop: int) -> Bars:
        """Return bars ``[start, stop)`` as a new ``Bars`` (views, still read-only)."""
        return Bars(
            symbol=self.symbol,
            timeframe=self.timeframe,
            tf_ns=self.tf_ns,
            ts_open_ns=self.ts_open_ns[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume=self.volume[start:stop],
        )

    @classmethod
    def from_records(cls, symbol: str, timeframe: str, tf_ns: int, rec: NDArray[np.void]) -> Bars:
        """From one structured array of ``BAR_DTYPE`` (the bar cache's storage format)."""
        return cls.from_columns(
            symbol, timeframe, tf_ns, rec["ts_open_ns"], rec["open"], rec["high"], rec["low"],
            rec["close"], rec["volume"],
        )


@dataclass(frozen=True, slots=True, eq=False)
class BarWindow:
    """Read-only column views of bars ``(upto_seq - length, upto_seq]``."""

    start_seq: int
    ts_open_ns: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return int(self.close.shape[0])


class BarStore:
    """Growing columnar history of one series, revealed bar by bar.

    ``count`` is how many bars are revealed; the newest revealed bar has ``seq == count - 1``.
    Windows and reads past it raise ``LookaheadError`` (a ``DataError``): the API makes reading
    the future impossible rather than merely discouraged.
    """

    __slots__ = ("_cap", "_cols", "_loaded", "_ro", "count", "symbol", "tf_ns", "timeframe")

    def __init__(self, symbol: str, timeframe: str, tf_ns: int, capacity: int = 1024) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.tf_ns = tf_ns
        self._cap = max(16, capacity)
        self._cols: dict[str, np.ndarray] = {"ts_open_ns": np.zeros(self._cap, dtype=np.int64)}
        for name in PRICE_COLUMNS:
            self._cols[name] = np.full(self._cap, np.nan)
        self._loaded = 0  # bars physically present (>= count in a backtest)
        self.count = 0
        self._ro: tuple[np.ndarray, ...] = ()
        self._read_only_views()

    def _read_only_views(self) -> None:
        """Read-only views of the whole columns, in ``BarWindow`` order: a window slices them,
        and a slice of a read-only view is read-only (no per-call flag setting)."""
        views = []
        for name in ("ts_open_ns", *PRICE_COLUMNS):
            v = self._cols[name][:]
            v.flags.writeable = False
            views.append(v)
        self._ro = tuple(views)

    @classmethod
    def preloaded(cls, bars: Bars) -> BarStore:
        """A store holding all of ``bars`` with none revealed yet (backtest replay)."""
        store = cls(bars.symbol, bars.timeframe, bars.tf_ns, capacity=len(bars))
        for name in ("ts_open_ns", *PRICE_COLUMNS):
            store._cols[name][: len(bars)] = getattr(bars, name)
        store._loaded = len(bars)
        return store

    # -- writing -------------------------------------------------------------------------------
    def reveal_next(self) -> int:
        """Reveal the next preloaded bar; return its seq."""
        if self.count >= self._loaded:
            raise DataError(f"{self.symbol} {self.timeframe}: no preloaded bar left to reveal")
        self.count += 1
        return self.count - 1

    def append(self, ts_open_ns: int, o: float, h: float, lo: float, c: float, v: float) -> int:
        """Append one closed bar (live path); return its seq."""
        if self._loaded > self.count:
            raise DataError("append() on a store that still holds unrevealed preloaded bars")
        n = self.count
        if n and ts_open_ns <= self._cols["ts_open_ns"][n - 1]:
            raise DataError(
                f"{self.symbol} {self.timeframe}: bar at ts_open_ns={ts_open_ns} is not after the "
                f"previous bar ({int(self._cols['ts_open_ns'][n - 1])}); refusing out-of-order data"
            )
        if n == self._cap:
            self._grow()
        cols = self._cols
        cols["ts_open_ns"][n] = ts_open_ns
        cols["open"][n] = o
        cols["high"][n] = h
        cols["low"][n] = lo
        cols["close"][n] = c
        cols["volume"][n] = v
        self.count = self._loaded = n + 1
        return n

    def _grow(self) -> None:
        self._cap *= 2
        for name, col in self._cols.items():
            new = (np.full(self._cap, np.nan) if col.dtype == np.float64
                   else np.zeros(self._cap, col.dtype))
            new[: self.count] = col[: self.count]
            self._cols[name] = new
        self._read_only_views()

    # -- reading -------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def loaded(self) -> int:
        """Bars physically held, revealed or not (equals ``count`` live)."""
        return self._loaded

    def window(self, upto_seq: int, length: int) -> BarWindow:
        """Read-only views of bars ``(upto_seq - length, upto_seq]`` (shorter at the start).

        Raises:
            LookaheadError: ``upto_seq`` is not yet revealed.
        """
        if upto_seq >= self.count or upto_seq < 0:
            raise LookaheadError(
                f"{self.symbol} {self.timeframe}: window up to seq {upto_seq} requested but only "
                f"bars 0..{self.count - 1} are revealed"
            )
        start = max(0, upto_seq - length + 1)
        stop = upto_seq + 1
        t, o, h, lo, c, v = self._ro
        return BarWindow(start, t[start:stop], o[start:stop], h[start:stop], lo[start:stop],
                         c[start:stop], v[start:stop])

    def column(self, name: str) -> np.ndarray:
        """Read-only view of one column over the revealed bars ``[0, count)``."""
        v = self._cols[name][: self.count]
        v.flags.writeable = False
        return v

    def raw_column(self, name: str) -> np.ndarray:
        """The full backing array of a column, including unrevealed preloaded bars.

        For batch precomputation only (see ``engine.features``): a whole-history computation is
        allowed as a backtest speed-up only where a prefix test proves it equal to the per-bar
        path. Anything else must use :meth:`window` or :meth:`column`.
        """
        return self._cols[name][: self._loaded]


class LookaheadError(DataError):
    """Code asked for a bar or feature after the one being processed."""
