"""Per-bar feature columns (indicators, volume profile, model outputs) aligned with bar seq.

Handlers write the value for bar ``seq`` when that bar closes; readers can only read up to the last
revealed bar of the ``BarStore``. A handler may instead fill a whole column at once before a
backtest starts (``precompute``) where a prefix test proves the batch result equal to the per-bar
one; the column is then still revealed one bar at a time through this API.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.bars import BarStore, LookaheadError
from engine.errors import ConfigError


class FeatureStore:
    """Named float64 columns, one value per bar seq, NaN where not (yet) computed."""

    __slots__ = ("_bars", "_cols")

    def __init__(self, bars: BarStore) -> None:
        self._bars = bars
        self._cols: dict[str, NDArray[np.float64]] = {}

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

    def _grow(self, name: str, need: int) -> NDArray[np.float64]:
        old = self._cols[name]
        new = np.full(max(need, 2 * old.shape[0], self._bars.capacity), np.nan)
        new[: old.shape[0]] = old
        self._cols[name] = new
        return new

    def backing(self, name: str) -> NDArray[np.float64]:
        """The whole writable column, for a handler's batch precomputation only."""
        return self._cols[name]

    # -- reading -------------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def names(self) -> list[str]:
        return list(self._cols)

    def value(self, name: str, seq: int) -> float:
        """Value of ``name`` at bar ``seq`` (NaN if not computed).

        Raises:
            LookaheadError: ``seq`` is after the last revealed bar.
        """
        if seq >= self._bars.count:
            raise LookaheadError(
                f"feature {name!r} at seq {seq} requested but only bars 0..{self._bars.count - 1} "
                "are revealed"
            )
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
        if upto_seq >= self._bars.count:
            raise LookaheadError(
                f"feature {name!r} window up to seq {upto_seq} requested but only bars "
                f"0..{self._bars.count - 1} are revealed"
            )
        return self.column(name)[max(0, upto_seq - length + 1) : upto_seq + 1]
