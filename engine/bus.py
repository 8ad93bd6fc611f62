"""A synchronous event bus with explicit handler order and one-to-one routing by account.

Handlers are called in ascending ``priority`` (ties in subscription order), synchronously, from the
one thread that drives the loop, as in nautilus_trader. The bus holds strong references.

**Routing.** A subscription may name an ``account``: it then receives only the events of that
type whose ``account`` field equals it, found by one dict lookup, never by asking every handler.
That is how commands (``SubmitOrder``, ``CancelOrder``, ``ModifyOrder``) reach exactly one broker
and ``OrderFilled`` exactly one account and its strategy, however many strategies run. Handlers
subscribed without ``account`` and the sinks (``subscribe_all``: journal, ZeroMQ publisher) still
see every event of the type.

**Names.** Every subscription has a name (``broker:<strategy>``, or ``Class.method`` by default).
One owner (the object behind a bound method, or the function itself) may use one name for several
subscriptions (a broker's four handlers are one ``broker:<strategy>``); a name already taken by a
different owner gets a ``#2``, ``#3``... suffix, so two instances of one class never share a name.

**Unheard events.** ``Bus.unheard`` is the live set of event types that nobody would receive
now (no handler, no sink): a publisher whose event serves only the bus (a broker's
``OrderCanceled``) may skip building it while its type is in the set (``unheard_types``). A sink
attached later (journal) takes every type out of the set at once; a typed subscription only its
own type, so a sink that needs only some types (the ZeroMQ bridge with nobody subscribed)
subscribes to those and leaves the rest unheard. ``unsubscribe`` puts a type back in the set when
its last subscription goes.

**Tickers.** ``tick_every(fn, bars)``: ``fn()`` is called after the handlers of every ``bars``-th
bar (the loop delivers bars in chunks of at most that many and calls it between chunks), so a
sink that needs a look at the clock now and then (the ZeroMQ bridge's publishing rounds) costs
nothing per bar. The ``every`` of the returned ``Ticker`` may be changed at any time; the loop
reads it at the next chunk.

**Errors.** The bus never swallows an exception. With ``on_error="raise"`` (backtest) the run fails
fast with the failing handler's name and the event in the message and the real cause chained. With
``on_error="isolate"`` (paper and live) the failing handler is logged and disabled (every
subscription of its name), a ``HandlerFailed`` event is published so the operator hears about it,
and the event that failed is still delivered to the handlers after it, so the rest of the engine
keeps managing open positions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import StrategyError
from engine.events import Event, HandlerFailed

logger = logging.getLogger(__name__)

Handler = Callable[[Any], None]
OnError = Literal["raise", "isolate"]

# Conventional priorities: lower runs first on the same event.
PRIORITY_BROKER = 0  # fills of orders resting from earlier bars, against this bar's range
PRIORITY_FEATURES = 100  # indicators, volume profile, model
PRIORITY_SIGNALS = 150  # the shared entry rule raises signals on this bar's close
PRIORITY_STRATEGY = 200  # strategies and exit plugins decide on this bar's close
PRIORITY_PORTFOLIO = 300  # accounts book fills (OrderFilled), after the broker that made them
PRIORITY_SINK = 1000  # journal, ZeroMQ publisher: see everything last

ROUTE_FIELD = "account"  # the field a subscription's ``account`` is matched against


@dataclass(slots=True)
class _Sub:
    handler: Handler
    priority: int
    order: int
    name: str
    account: str | None = None
    enabled: bool = True


@dataclass(slots=True)
class Ticker:
    """``fn()`` after every ``every`` bars (see the module doc); ``every`` may change."""

    fn: Callable[[], None]
    every: int


@dataclass(slots=True)
class Bus:
    """Dispatches events by their exact type (and ``account``, where routed) to handlers."""

    on_error: OnError = "raise"
    _subs: dict[type, list[_Sub]] = field(default_factory=dict)
    # types without routed subscriptions: the whole route
    _routes: dict[type, tuple[Handler, ...]] = field(default_factory=dict)
    # types with routed subscriptions: account -> route (key None: events of no known account)
    _keyed: dict[type, dict[str | None, tuple[Handler, ...]]] = field(default_factory=dict)
    # what publish reads: one lookup gives the route, or the account -> route dict
    _dispatch: dict[type, Any] = field(default_factory=dict)
    _names: dict[tuple[type, str | None], tuple[str, ...]] = field(default_factory=dict)
    _sinks: list[_Sub] = field(default_factory=list)
    _owners: dict[str, int] = field(default_factory=dict)  # name -> id of the owner using it
    _counter: int = 0
    # types published or subscribed so far whose route is empty (see the module doc); a type
    # never seen is not in it (its first publish builds its route, with the sinks)
    unheard: set[type] = field(default_factory=set)
    tickers: list[Ticker] = field(default_factory=list)  # read by the loop once per chunk

    # -- subscribing ---------------------------------------------------------------------------
    def subscribe(
        self, event_type: type, handler: Handler, *, priority: int, name: str | None = None,
        account: str | None = None, owner: object = None,
    ) -> str:
        """Call ``handler(event)`` for every published event of exactly ``event_type``.

        Args:
            account: deliver only the events whose ``account`` field equals this (one-to-one
                routing of commands and fills; the event type must have an ``account`` field).
            owner: whose subscription this is, for its name (default: the object behind a bound
                method, or the function): one owner may subscribe builtins such as a deque's
                ``append`` under its own name.

        Returns:
            The name the subscription got (unique per owner; see the module doc).
        """
        if account is not None and ROUTE_FIELD not in getattr(event_type, "__struct_fields__", ()):
            raise TypeError(f"{event_type.__name__} has no {ROUTE_FIELD!r} field to route on")
        self._counter += 1
        sub = _Sub(handler, priority, self._counter, self._unique(name, handler, owner), account)
        self._subs.setdefault(event_type, []).append(sub)
        self._rebuild(event_type)
        return sub.name

    def subscribe_all(self, handler: Handler, *, name: str | None = None) -> str:
        """Call ``handler`` for every event of every type, after the typed handlers."""
        self._counter += 1
        sub = _Sub(handler, PRIORITY_SINK, self._counter, self._unique(name, handler))
        self._sinks.append(sub)
        for t in {*self._subs, *self._routes, *self._keyed}:
            self._rebuild(t)
        return sub.name

    def unsubscribe(self, name: str) -> int:
        """Remove every subscription (typed and sink) named ``name``; return how many. A type
        left with no handler and no sink is unheard again; the name is free for any owner."""
        touched = set()
        n = 0
        for t, subs in self._subs.items():
            keep = [s for s in subs if s.name != name]
            if len(keep) != len(subs):
                n += len(subs) - len(keep)
                self._subs[t] = keep
                touched.add(t)
        sinks = [s for s in self._sinks if s.name != name]
        if len(sinks) != len(self._sinks):
            n += len(self._sinks) - len(sinks)
            self._sinks = sinks
            touched |= {*self._subs, *self._routes, *self._keyed}
        for t in touched:
            self._rebuild(t)
        self._owners.pop(name, None)
        return n

    def tick_every(self, fn: Callable[[], None], bars: int) -> Ticker:
        """Call ``fn()`` after the handlers of every ``bars``-th bar (see the module doc)."""
        if bars < 1:
            raise ValueError(f"a ticker runs every 1 or more bars, got {bars}")
        ticker = Ticker(fn, int(bars))
        self.tickers.append(ticker)
        return ticker

    def _unique(self, name: str | None, handler: Handler, owner_obj: object = None) -> str:
        base = name or _name_of(handler)
        owner = id(owner_obj if owner_obj is not None else getattr(handler, "__self__", handler))
        candidate, k = base, 1
        while self._owners.setdefault(candidate, owner) != owner:
            k += 1
            candidate = f"{base}#{k}"
        return candidate

    def _rebuild(self, event_type: type) -> None:
        subs = [s for s in self._subs.get(event_type, []) if s.enabled]
        sinks = [s for s in self._sinks if s.enabled]
        accounts = {s.account for s in self._subs.get(event_type, []) if s.account is not None}
        self._routes.pop(event_type, None)
        self._keyed.pop(event_type, None)
        for key in (None, *accounts):
            chosen = sorted(
                [s for s in subs if s.account is None or s.account == key] + sinks,
                key=lambda s: (s.priority, s.order),
            )
            route = tuple(s.handler for s in chosen)
            self._names[(event_type, key)] = tuple(s.name for s in chosen)
            if accounts:
                self._keyed.setdefault(event_type, {})[key] = route
            else:
                self._routes[event_type] = route
        self._dispatch[event_type] = self._keyed[event_type] if accounts else self._routes[
            event_type]
        if accounts or self._routes[event_type]:
            self.unheard.discard(event_type)
        else:
            self.unheard.add(event_type)

    # -- views ---------------------------------------------------------------------------------
    def handlers(self, event_type: type, account: str | None = None) -> tuple[Handler, ...]:
        """The handlers of ``event_type`` (for ``account``, where routed) in call order; the
        loop binds the ``BarClosed`` ones once."""
        route = self._routes.get(event_type)
        if route is not None:
            return route
        keyed = self._keyed.get(event_type)
        if keyed is None:
            self._rebuild(event_type)
            return self.handlers(event_type, account)
        return keyed.get(account) or keyed[None]

    def handler_names(self, event_type: type, account: str | None = None) -> tuple[str, ...]:
        self.handlers(event_type, account)
        if event_type in self._keyed and account in self._keyed[event_type]:
            return self._names[(event_type, account)]
        return self._names[(event_type, None)]

    def is_enabled(self, name: str) -> bool:
        """Whether the subscriptions named ``name`` are still called (isolate mode disables)."""
        subs = [s for ss in (*self._subs.values(), self._sinks) for s in ss if s.name == name]
        return bool(subs) and all(s.enabled for s in subs)

    # -- publishing ----------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers in order (routed types: its account's route)."""
        route = self._dispatch.get(type(event))
        if route is None:
            route = self.handlers(type(event))
        elif route.__class__ is dict:  # routed by account
            route = route.get(event.account) or route[None]  # type: ignore[attr-defined]
        i = 0
        try:
            for h in route:
                h(event)
                i += 1
        except Exception as exc:
            self.recover(route, i, event, exc)

    def recover(
        self, route: Sequence[Handler], index: int, event: Event, exc: Exception
    ) -> None:
        """Handler ``route[index]`` raised ``exc`` on ``event``: apply the error policy, then
        (isolate) deliver ``event`` to the handlers after it that are still enabled."""
        name = self._route_names(route, event)[index]
        self._fail(name, event, exc)
        names = self._route_names(route, event)
        rest = [h for h, n in zip(route[index + 1:], names[index + 1:], strict=True)
                if self.is_enabled(n)]
        i = 0
        try:
            for h in rest:
                h(event)
                i += 1
        except Exception as exc2:
            self.recover(rest, i, event, exc2)

    def handler_failed(self, event_type: type, index: int, event: Event, exc: Exception) -> None:
        """Apply the error policy to handler ``index`` of ``event_type``'s route that raised."""
        account = getattr(event, ROUTE_FIELD, None)
        self._fail(self.handler_names(event_type, account)[index], event, exc)

    def _route_names(self, route: Sequence[Handler], event: Event) -> tuple[str, ...]:
        # the names of a route tuple handed out earlier (it may be disabled since): by identity
        by_id: dict[int, str] = {}
        for s in (*self._subs.get(type(event), ()), *self._sinks):
            by_id[id(s.handler)] = s.name
        return tuple(by_id.get(id(h), "?") for h in route)

    def _fail(self, name: str, event: Event, exc: Exception) -> None:
        if self.on_error == "raise" or isinstance(event, HandlerFailed):
            raise StrategyError(
                f"handler {name!r} raised {type(exc).__name__} on {type(event).__name__} "
                f"(ts_event_ns={event.ts_event_ns}): {exc}"
            ) from exc
        logger.exception("handler %s failed on %s; disabling it", name, type(event).__name__)
        for subs in (*self._subs.values(), self._sinks):
            for s in subs:
                if s.name == name:
                    s.enabled = False
        for t in {*self._subs, *self._routes, *self._keyed}:
            self._rebuild(t)
        self.publish(
            HandlerFailed(
                ts_event_ns=event.ts_event_ns,
                ts_init_ns=event.ts_init_ns,
                handler=name,
                error=f"{type(exc).__name__}: {exc}",
            )
        )


def unheard_types(publish: Callable[[Event], None]) -> Set[type]:
    """The live ``Bus.unheard`` set of the bus whose ``publish`` this is (an empty set for any
    other publish function: then everything is published)."""
    bus = getattr(publish, "__self__", None)
    return bus.unheard if isinstance(bus, Bus) else frozenset()


def _name_of(handler: Handler) -> str:
    owner = getattr(handler, "__self__", None)
    fn = getattr(handler, "__name__", None)
    if owner is not None and fn is not None:
        return f"{type(owner).__name__}.{fn}"
    return fn or type(handler).__name__
