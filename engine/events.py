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

from typing import Any, Literal

import msgspec

Side = Literal["long", "short"]
OrderSide = Literal["buy", "sell"]
OrderType = Literal["market", "stop", "limit"]

NAN = float("nan")


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


class TimerFired(Event, frozen=True, kw_only=True, gc=False):
    """Fact: timer ``name`` of the engine's clock came due (``engine.clock``).

    ``ts_event_ns`` is the time it was due, ``ts_init_ns`` the clock's time when it fired (equal
    in a backtest; a little later live); ``count`` is 1 for its first firing, then 2, 3, ...
    """

    name: str
    count: int


class SubmitOrder(Event, frozen=True, kw_only=True, gc=False):
    """Command: place an order for ``account`` (routed by the bus to that account's broker only).

    Size is either ``qty`` (base units, > 0) or ``equity_frac`` (a fraction of the account's
    equity, resolved at the fill price so that notional plus the fee equals that fraction).
    ``price`` is the trigger of a stop order or the limit of a limit order. ``stop_loss`` and
    ``take_profit`` attach reduce-only children (engine ids ``<order_id>-stop_loss`` /
    ``<order_id>-take_profit``) that start working when this order fills; the position closing
    cancels whichever is left. The stop covers the whole position; the target closes
    ``take_profit_frac`` of this order's filled size (NaN: the whole position), and its fill is
    tagged ``take_profit_tag`` ("" -> ``"TAKE_PROFIT"``): an exit plan's first partial target.
    """

    account: str
    order_id: str
    side: OrderSide
    type: OrderType
    seq: int  # bar seq on which the decision was taken
    qty: float = 0.0
    equity_frac: float = 0.0
    price: float = NAN
    reduce_only: bool = False
    stop_loss: float = NAN
    take_profit: float = NAN
    take_profit_frac: float = NAN  # the target's size: this fraction of the filled size
    take_profit_tag: str = ""  # the target fill's tag ("" -> "TAKE_PROFIT")
    tag: str = ""  # why: "ENTRY", "SIGNAL_EXIT", ...


class CancelOrder(Event, frozen=True, kw_only=True, gc=False):
    """Command: cancel a working order (a missing order is reported, not fatal)."""

    account: str
    order_id: str
    reason: str = ""


class ModifyOrder(Event, frozen=True, kw_only=True, gc=False):
    """Command: move the trigger/limit price of a working order (e.g. a trailing stop).

    Takes effect from the next bar: the bar whose close decided the move has already been
    evaluated against the old price. A non-empty ``tag`` replaces the order's tag, which becomes
    the trade's exit reason if it fills (e.g. ``"TRAIL_STOP"``).
    """

    account: str
    order_id: str
    price: float
    reason: str = ""
    tag: str = ""


class SignalRaised(Event, frozen=True, kw_only=True, gc=False):
    """Fact: an entry rule fired on bar ``seq`` (decided on its close).

    ``alarm_id`` is unique per symbol, timeframe, bar close time, rule and side, so a BUY and a
    SELL on one bar never collide. Prices are the trade setup at the signal: entry (the close),
    the ATR stop, and target candidates in priority order.
    """

    symbol: str
    timeframe: str
    seq: int
    alarm_id: str
    rule: str
    side: Side
    entry_price: float
    stop_price: float
    atr: float
    targets: tuple[float, ...] = ()
    confidence: float = NAN


class OrderFilled(Event, frozen=True, kw_only=True, gc=False):
    """Fact: (part of) an order filled.

    ``ambiguous`` marks a fill whose order within the bar was assumed by the intrabar policy
    (stop and target both inside one bar's range); ``gap`` marks a stop or limit filled at the
    bar's open because the open was already through its price.
    """

    account: str
    order_id: str
    side: OrderSide
    qty: float
    price: float
    fee: float
    liquidity: str  # "taker" | "maker"
    seq: int
    tag: str = ""
    ambiguous: bool = False
    gap: bool = False


class OrderCanceled(Event, frozen=True, kw_only=True, gc=False):
    account: str
    order_id: str
    reason: str


class TradeClosed(Event, frozen=True, kw_only=True, gc=False):
    """Fact: a position (or part of it) was closed. Partial exits are one record each.

    ``pnl`` is net of the fees of this slice (its share of the entry fee plus the exit fee).
    """

    account: str
    symbol: str
    side: Side
    entry_seq: int
    entry_ts_ns: int
    entry_price: float
    exit_seq: int
    exit_ts_ns: int
    exit_price: float
    qty: float
    pnl: float
    fees: float
    exit_reason: str
    ambiguous: bool = False


class HandlerFailed(Event, frozen=True, kw_only=True, gc=False):
    """Fact: a handler raised and was disabled (paper/live error policy)."""

    handler: str
    error: str


class CommandApplied(Event, frozen=True, kw_only=True, gc=False):
    """Fact: an operator command (UI, Telegram: ``engine/wire.py``) reached the engine thread.

    ``ok`` when it was applied; refused with ``error`` otherwise. Published on the bus so the
    journal records every command and the bridge shows it to every front end.
    """

    request_id: str
    op: str  # "pause", "resume", "close", "flatten", "buy", "sell"
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    ok: bool = True
    error: str = ""
    source: str = ""  # who sent it (the client's ZeroMQ identity, hex)


class OrderSent(Event, frozen=True, kw_only=True, gc=False):
    """Fact: a venue broker is about to send ``order_id`` as venue order ``client_id``.

    Journaled and committed (``engine.journal``: durable types) **before** the request leaves,
    so a process killed while the request is in flight restarts knowing the order may exist on
    the venue (and looks it up by ``client_id``). ``parent`` is the entry of an attached child
    (stop/target); ``replaces`` the clientId a cancel-and-replace supersedes.
    """

    account: str
    order_id: str
    client_id: str
    side: OrderSide
    type: OrderType
    qty: float
    price: float
    reduce_only: bool
    seq: int
    tag: str = ""
    parent: str = ""
    replaces: str = ""


class OrderReply(Event, frozen=True, kw_only=True, gc=False):
    """Fact: the venue's answer to an ``OrderSent``: ``accepted`` (it has the order),
    ``rejected`` (refused, with the reason) or ``failed`` (not placed: retries spent, reply lost
    and the venue does not have it)."""

    account: str
    order_id: str
    client_id: str
    status: Literal["accepted", "rejected", "failed"]
    reason: str = ""


class EquityMarked(Event, frozen=True, kw_only=True, gc=False):
    """Fact: an account's state marked at a bar close (paper/live journals one per bar)."""

    account: str
    seq: int
    cash: float
    qty: float
    price: float
    equity: float


class Reconciled(Event, frozen=True, kw_only=True, gc=False):
    """Fact: a restarted run compared its journal with the venue before trading again.

    ``found``: what each side holds; ``actions``: what was done (fills adopted, orphans
    canceled, orders found never placed); ``problems``: what could not be explained. ``halted``
    when a problem stops new entries (exits and stops still work) until it is cleared.
    """

    account: str
    resumed_from: str  # the journal the state was rebuilt from
    found: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    halted: bool = False
