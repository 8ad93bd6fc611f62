"""Each bar once, in seq order: the bookkeeping every per-bar feature handler shares.

A handler's per-bar state must see every bar exactly once, in order. ``BarOrder`` keeps the seq
of the next bar the state expects and, when a bar arrives:

- refuses one older than a bar already processed (``DataError``: a duplicated or rewound feed);
- reports bars revealed without reaching the handler (it started on a store that already holds
  history, or after a batch ``precompute``): ``first(seq)`` is the first bar to process, and
  ``replay(seq, step)`` feeds the missed bars from the ``BarStore`` to a per-bar ``step``.

Used by the indicator handlers (``indicators.handlers``), the volume-profile handler
(``indicators.profile.handler``) and the model handler (``models.inference``).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.bars import BarStore
from engine.errors import DataError


class BarOrder:
    """The next bar seq a handler's state expects (see the module docstring)."""

    __slots__ = ("bars", "next", "owner")

    def __init__(self, owner: str, bars: BarStore) -> None:
        self.owner = owner  # the feature id, for messages
        self.bars = bars
        self.next = 0

    def first(self, seq: int) -> int:
        """The first bar to process so that bar ``seq`` is processed: ``seq`` itself, or an
        earlier one when bars were missed.

        Raises:
            DataError: ``seq`` is older than a bar already processed.
        """
        if seq < self.next:
            raise DataError(
                f"feature {self.owner!r}: bar seq {seq} arrived after seq {self.next - 1}; each "
                "bar must reach a feature handler once, in order (check the feed for duplicates)"
            )
        return self.next

    def replay(self, seq: int, step: Callable[[int, float, float, float], None]) -> None:
        """Call ``step(j, high, low, close)`` for each missed bar ``j`` before ``seq``, from the
        store, then expect ``seq``.

        Raises:
            DataError: ``seq`` is older than a bar already processed.
            LookaheadError: ``seq`` is not revealed in the store.
        """
        start = self.first(seq)
        if start == seq:
            return
        w = self.bars.window(seq, seq - start + 1)  # bars start..seq; seq is revealed
        for j in range(seq - start):
            step(start + j, float(w.high[j]), float(w.low[j]), float(w.close[j]))
        self.next = seq

    def done(self, seq: int) -> None:
        """Bar ``seq`` is processed: the next one expected is ``seq + 1``."""
        self.next = seq + 1
