"""Ports: the Protocols through which the outside world and the upper layers join the engine.

``engine/`` imports none of the layers above it. Feeds, brokers and feature handlers implement
these Protocols in ``adapters/``, ``indicators/`` and ``models/`` and are found by name through
entry points (``engine.registry``), so the loop never changes when a mode or a handler is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel

from engine.bars import Bars, BarStore
from engine.events import BarClosed, CancelOrder, Event, ModifyOrder, OrderSide, SubmitOrder
from engine.features import FeatureStore

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.fills import Costs, IntrabarPolicy, MarketFill
    from engine.portfolio import Account


@runtime_checkable
class BarFeed(Protocol):
    """Yields closed bars in time order.

    A replay feed (CSV, stored bars) also exposes ``history``: every bar it will yield, known up
    front. The loop uses it only to preload the ``BarStore`` and to let handlers precompute.
    A live feed returns ``None`` from ``history``.

    **Waiting live feeds and timers.** The engine's timers fire on the loop's thread
    (``engine.clock``), so a live feed must not block for long inside ``__iter__``: while no bar
    has closed it yields ``None`` (an *idle tick*) and the loop fires the timers due by the wall
    clock, then asks for the next item. A feed may also define ``bind_clock(clock)``: the engine
    calls it with its clock before the run, and the feed then waits at most
    ``clock.seconds_until_due(cap_s)`` (``cap_s`` about 1 s) before yielding ``None``, so timers
    fire on time. Without ``bind_clock`` a feed should yield ``None`` at least once a second while
    it waits. Replay feeds never yield ``None``.
    """

    symbol: str
    timeframe: str

    def history(self) -> Bars | None: ...

    def __iter__(self) -> Iterator[BarClosed | None]: ...


class ClockBindable(Protocol):
    """Optional part of a live ``BarFeed``: receive the engine's clock before the run."""

    def bind_clock(self, clock: Clock) -> None: ...


class WorkingOrder(NamedTuple):
    """One working order as a broker reports it."""

    order_id: str
    side: OrderSide
    qty: float
    price: float  # trigger (stop) or limit; NaN for a market order
    tag: str


@runtime_checkable
class Broker(Protocol):
    """Executes the orders of **one** account: simulated fills (``adapters/sim_broker.py``) in
    backtest and paper, the venue's (Apex Omni) live.

    Wiring (``engine.bootstrap.attach_broker``):

    - ``on_bar_closed`` on every ``BarClosed`` at ``PRIORITY_BROKER``, before any decision on the
      bar (a simulated broker fills the orders working before the bar against its range);
    - ``on_submit_order`` / ``on_cancel_order`` / ``on_modify_order`` subscribed with
      ``account=name``: the bus routes each command to its account's broker only, so a broker
      never sees (or filters) another account's commands.

    It publishes ``OrderFilled`` (routed on to its account and strategy) and ``OrderCanceled``
    (also for a cancel/modify of an order that is not working: a state to report, not a crash),
    with the time of the bar or venue event as ``ts_event_ns``.
    """

    name: str  # the account it trades (commands are routed to it by this)
    account: Account

    def on_bar_closed(self, bar: BarClosed) -> None: ...

    def on_submit_order(self, cmd: SubmitOrder) -> None: ...

    def on_cancel_order(self, cmd: CancelOrder) -> None: ...

    def on_modify_order(self, cmd: ModifyOrder) -> None: ...

    def working_orders(self) -> list[WorkingOrder]: ...

    def close_at_end(self, bar: BarClosed, tag: str) -> None:
        """End of a replay: close the position at ``bar.close`` and cancel every working order
        (``execution.close_at_end``)."""
        ...


class BrokerGate:
    """A broker in front of another (``inner``): every call goes through to it unchanged; a gate
    (``engine.risk.RiskGate``, ``engine.confirm.ConfirmGate``) overrides only what it checks.
    Anything else the wrapped broker offers (``after_bar``, ``bind_clock``, ``client``...) is
    reached through the gate, so wiring treats a gated broker like the broker itself."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.name = inner.name
        self.account = inner.account
        after = getattr(inner, "after_bar", None)
        if callable(after):
            self.after_bar = after

    def on_bar_closed(self, bar: BarClosed) -> None:
        self.inner.on_bar_closed(bar)

    def on_submit_order(self, cmd: SubmitOrder) -> None:
        self.inner.on_submit_order(cmd)

    def on_cancel_order(self, cmd: CancelOrder) -> None:
        self.inner.on_cancel_order(cmd)

    def on_modify_order(self, cmd: ModifyOrder) -> None:
        self.inner.on_modify_order(cmd)

    def working_orders(self) -> list[WorkingOrder]:
        return self.inner.working_orders()

    def close_at_end(self, bar: BarClosed, tag: str) -> None:
        self.inner.close_at_end(bar, tag)

    def __getattr__(self, name: str) -> Any:  # anything else the wrapped broker offers
        return getattr(self.__dict__["inner"], name)


class BrokerFactory(Protocol):
    """What the ``tradebot.brokers`` entry point names: builds one account's broker."""

    def __call__(
        self, account: Account, publish: Callable[[Event], None], costs: Costs,
        policy: IntrabarPolicy, market_fill: MarketFill,
    ) -> Broker: ...


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
