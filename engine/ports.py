"""Ports: the Protocols through which the outside world and the upper layers join the engine.

``engine/`` imports none of the layers above it. Feeds, brokers and feature handlers implement
these Protocols in ``adapters/``, ``indicators/`` and ``models/`` and are found by name through
entry points (``engine.registry``), so the loop never changes when a mode or a handler is added.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from engine.bars import Bars, BarStore
from engine.events import BarClosed, Event
from engine.features import FeatureStore


@runtime_checkable
class BarFeed(Protocol):
    """Yields closed bars in time order.

    A replay feed (CSV, stored bars) also exposes ``history``: every bar it will yield, known up
    front. The loop uses it only to preload the ``BarStore`` and to let handlers precompute.
    A live feed returns ``None`` from ``history``.
    """

    symbol: str
    timeframe: str

    def history(self) -> Bars | None: ...

    def __iter__(self) -> Iterator[BarClosed]: ...


@runtime_checkable
class EventSink(Protocol):
    """Receives every event (journal, ZeroMQ publisher)."""

    def __call__(self, event: Event) -> None: ...


class FeatureHandler(Protocol):
    """A bus handler that writes feature columns for each closed bar.

    Contract:
    - ``__init__(id, params, bars, features)`` creates its columns with ``features.add(...)``;
      column names start with ``id`` (``"stoch14_k"``) and are listed in ``outputs``.
    - ``on_bar_closed(bar)`` computes the values for ``bar.seq`` from bars ``<= bar.seq`` only and
      writes them with ``features.set``. This is the live path and the reference.
    - ``precompute()`` may fill the columns for every preloaded bar at once (backtest speed-up);
      a prefix test must prove it equal to the per-bar path. After ``precompute`` the engine does
      not call ``on_bar_closed``.
    - ``warmup_bars`` is how many bars pass before the first non-NaN value.
    """

    Params: ClassVar[type[BaseModel]]
    outputs: tuple[str, ...]
    warmup_bars: int

    def on_bar_closed(self, bar: BarClosed) -> None: ...

    def precompute(self) -> None: ...


class FeatureHandlerFactory(Protocol):
    Params: ClassVar[type[BaseModel]]

    def __call__(
        self, id: str, params: BaseModel, bars: BarStore, features: FeatureStore
    ) -> FeatureHandler: ...
