"""Typed, immutable bus events.

Events are frozen ``msgspec.Struct``s: as immutable and typed as a frozen dataclass, about seven
times cheaper to create on this machine (0.6 µs against 4.2 µs for ten fields), and they encode
to msgpack/JSON for the ZeroMQ wire without pickle. Names: past-tense facts (``BarClosed``,
``OrderFilled``), imperative commands (``SubmitOrder``).

Every event carries ``ts_event_ns`` (when it happened in the market) and ``ts_init_ns`` (when the
engine created it), both int64 UTC nanoseconds. For a bar, ``ts_event_ns`` is the bar's **close**
time; CSV timestamps are open times and are converted at the feed.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Side = Literal["long", "short"]
OrderSide = Literal["buy", "sell"]
OrderType = Literal["market", "stop", "limit"]


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of all bus events."""

    ts_event_ns: int
    ts_init_ns: int


class BarClosed(Event, frozen=True, kw_only=True, gc=False):
    """One bar closed. ``seq`` is its index in the ``BarStore`` (strictly increasing).

    OHLC consistency is validated where bars enter the engine (the CSV loader and live feeds),
    not here, so that the hot path stays cheap.
    """

    symbol: str  # "BTC-USDT": the engine's one symbol format, converted in adapters
    timeframe: str  # "15m"
    seq: int
    open: float
    high: float
    low: float
    close: float
    volume: float
