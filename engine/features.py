"""Per-bar feature columns (indicators, volume profile, model outputs) aligned with bar seq.

Handlers write the value for bar ``seq`` when that bar closes; readers can only read up to the last
revealed bar of the ``BarStore``. A handler may instead fill a whole column at once before a
backtest starts (``precompute``) where a prefix test proves the batch result equal to the per-bar
one; the column is then still revealed one bar at a time through this API.

Two faces of one store:

- ``FeatureView``: what strategies and exit plugins get (``StrategyContext.features``,
  ``ExitContext.features``). Every read is bounded by the current bar: ``value``, ``window``,
  ``column`` and the fast per-column ``reader(name).at(seq)`` raise ``LookaheadError`` past it.
  It has no ``backing()``.
- ``FeatureStore``: a ``FeatureView`` that handlers also write through (``add``, ``set``, and
  ``backing()``, the whole writable column, for a handler's batch precompute only).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.bars import BarStore, LookaheadError
from engine.errors import ConfigError


def _lookahead(name: str, seq: int, count: int, what: str = "") -> LookaheadError:
    if seq < 0:  # a negative index would count back from the end of the column: the future
        return LookaheadError(f"feature {name!r} {what}at negative seq {seq} requested")
    return LookaheadError(
        f"feature {name!r} {what}at seq {seq} requested but only bars 0..{count - 1} are revealed"
    )


class FeatureReader:
    """Fast reads of one column, bounded by the current bar: ``reader.at(seq)``.

    Made once per column (``FeatureView.reader``) by a strategy's ``__init__``; ``at`` costs a
    bound check and a memoryview index (a memoryview returns Python floats about twice as fast
    as numpy scalar indexing, and sees the handler's writes: same buffer). A live store that
    regrows the column is followed (the reader fetches the new buffer when ``seq`` passes the
    old one; values already written are copied into the new buffer and never rewritten).
    """

    __slots__ = ("_bars", "_cols", "_mv", "name")

    def __init__(self, bars: BarStore, cols: dict[str, NDArray[np.float64]], name: str) -> None:
        if name not in cols:
            raise ConfigError(f"feature column {name!r} does not exist; columns: {list(cols)}")
        self._bars = bars
        self._cols = cols
        self.name = name
        self._mv = memoryview(cols[name])

    def at(self, seq: int) -> float:
        """Value at bar ``seq`` (NaN if not computed).

        Raises:
            LookaheadError: ``seq`` is after the last revealed bar (or negative, which would
                count from the end of a preloaded column: the future).
        """
        if 0 <= seq < self._bars.count:
            try:
                return self._mv[seq]  # type: ignore[no-any-return]
            except IndexError:  # a live store regrew the column: follow it
                self._mv = memoryview(self._cols[self.name])
                return self._mv[seq] if seq < len(self._mv) else float("nan")
        raise _lookahead(self.name, seq, self._bars.count)


class FeatureView:
    """Read-only access to named float64 columns up to the current bar (see the module doc)."""

    __slots__ = ("_bars", "_cols")

    def __init__(self, bars: BarStore, cols: dict[str, NDArray[np.float64]]) -> None:
        self._bars = bars
        self._cols = cols  # shared with the store: new and grown columns show at once

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def names(self) -> list[str]:
        return list(self._cols)

    def reader(self, name: str) -> FeatureReader:
        """A fast reader of column ``name`` bounded by the current bar (make it once)."""
        return FeatureReader(self._bars, self._cols, name)

    def value(self, name: str, seq: int) -> float:
        """Value of ``name`` at bar ``seq`` (NaN if not computed).

        Raises:
            LookaheadError: ``seq`` is after the last revealed bar.
        """
        if not 0 <= seq < self._bars.count:
            raise _lookahead(name, seq, self._bars.count)
        col = self._cols[name]
        return float(col[seq]) if seq < col.shape[0] else float("nan")

    def column(self, name: str) -> NDArray[np.float64]:
        """Read-only view of ``name`` over the revealed bars."""
        n = self._bars.count
        col = self._cols[name]
        if col.shape[0] < n:
            col = self._grow(name, n)
        v = col[:n]
        v.flags.writeable = False
        return v

    def window(self, name: str, upto_seq: int, length: int) -> NDArray[np.float64]:
        """Read-only view of ``name`` over bars ``(upto_seq - length, upto_seq]``."""
        if not 0 <= upto_seq < self._bars.count:
            raise _lookahead(name, upto_seq, self._bars.count, "window ")
        return self.column(name)[max(0, upto_seq - length + 1) : upto_seq + 1]

    def _grow(self, name: str, need: int) -> NDArray[np.float64]:
        old = self._cols[name]
        new = np.full(max(need, 2 * old.shape[0], self._bars.capacity), np.nan)
        new[: old.shape[0]] = old
        self._cols[name] = new
        return new


class FeatureStore(FeatureView):
    """Named float64 columns, one value per bar seq, NaN where not (yet) computed.

    Handlers write through it; strategies get ``view()`` (no ``backing()``).
    """

    __slots__ = ()

    def __init__(self, bars: BarStore) -> None:
        super().__init__(bars, {})

    def view(self) -> FeatureView:
        """The read-only face of this store, for strategies and exit plugins."""
        return FeatureView(self._bars, self._cols)

    # -- writing -------------------------------------------------------------------------------
    def add(self, name: str) -> NDArray[np.float64]:
        """Create column ``name`` (NaN-filled, as long as the bar store's capacity); return it.

        Raises:
            ConfigError: two handlers claim the same column name.
        """
        if name in self._cols:
            raise ConfigError(
                f"feature column {name!r} is produced twice; give one of the handlers another name"
            )
        col = np.full(max(self._bars.capacity, self._bars.loaded), np.nan)
        self._cols[name] = col
        return col

    def set(self, name: str, seq: int, value: float) -> None:
        """Write the value of ``name`` at bar ``seq`` (grows with a live bar store)."""
        col = self._cols[name]
        if seq >= col.shape[0]:
            col = self._grow(name, seq + 1)
        col[seq] = value

    def backing(self, name: str) -> NDArray[np.float64]:
        """The whole writable column, for a handler's batch precomputation only: it is not
        bounded by the current bar (strategies read through ``FeatureView``)."""
        return self._cols[name]


class AnyFeature:
    """A plugin's requirement (in ``required_features``): *some* feature of ``kind``, whatever its
    params (e.g. the volume profile an exit plugin reads through its handler). The configured
    one is used if the config has one; if not, the engine adds ``{id: id, kind: kind}`` with the
    handler's default params. A ``FeatureConfig`` instead asks for exactly that id and params.
    """

    __slots__ = ("id", "kind")

    def __init__(self, kind: str, id: str) -> None:
        self.kind = kind
        self.id = id

    def __repr__(self) -> str:
        return f"AnyFeature(kind={self.kind!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnyFeature) and (self.kind, self.id) == (other.kind, other.id)

    def __hash__(self) -> int:
        return hash((self.kind, self.id))
