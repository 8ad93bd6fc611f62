"""A synchronous event bus with explicit handler order.

Handlers are called in ascending ``priority`` (ties in subscription order), synchronously, from the
one thread that drives the loop, as in nautilus_trader. The bus holds strong references. It never
swallows an exception: with ``on_error="raise"`` (backtest) the run fails fast with the handler's
name and the event in the message and the real cause chained; with ``on_error="isolate"`` (paper
and live) the failing handler is logged, disabled, and a ``HandlerFailed`` event is published so
the operator hears about it, while the rest of the engine keeps managing open positions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
PRIORITY_PORTFOLIO = 300  # mark to market after the decisions
PRIORITY_SINK = 1000  # journal, ZeroMQ publisher: see everything last


@dataclass(slots=True)
class _Sub:
    handler: Handler
    priority: int
    order: int
    name: str
    enabled: bool = True


@dataclass(slots=True)
class Bus:
    """Dispatches events by their exact type to subscribed handlers."""

    on_error: OnError = "raise"
    _subs: dict[type, list[_Sub]] = field(default_factory=dict)
    _routes: dict[type, tuple[Handler, ...]] = field(default_factory=dict)
    _names: dict[type, tuple[str, ...]] = field(default_factory=dict)
    _sinks: list[_Sub] = field(default_factory=list)
    _counter: int = 0

    def subscribe(
        self, event_type: type, handler: Handler, *, priority: int, name: str | None = None
    ) -> None:
        """Call ``handler(event)`` for every published event of exactly ``event_type``."""
        self._counter += 1
        sub = _Sub(handler, priority, self._counter, name or _name_of(handler))
        self._subs.setdefault(event_type, []).append(sub)
        self._rebuild(event_type)

    def subscribe_all(self, handler: Handler, *, name: str | None = None) -> None:
        """Call ``handler`` for every event of every type, after the typed handlers."""
        self._counter += 1
        self._sinks.append(_Sub(handler, PRIORITY_SINK, self._counter, name or _name_of(handler)))
        for t in list(self._subs):
            self._rebuild(t)

    def _rebuild(self, event_type: type) -> None:
        subs = sorted(
            [s for s in self._subs.get(event_type, []) if s.enabled]
            + [s for s in self._sinks if s.enabled],
            key=lambda s: (s.priority, s.order),
        )
        self._routes[event_type] = tuple(s.handler for s in subs)
        self._names[event_type] = tuple(s.name for s in subs)

    def handlers(self, event_type: type) -> tuple[Handler, ...]:
        """The handlers of ``event_type`` in call order (the loop binds these once)."""
        if event_type not in self._routes:
            self._rebuild(event_type)
        return self._routes[event_type]

    def handler_names(self, event_type: type) -> tuple[str, ...]:
        self.handlers(event_type)
        return self._names[event_type]

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers in order."""
        route = self._routes.get(type(event))
        if route is None:
            route = self.handlers(type(event))
        i = 0
        try:
            for i, h in enumerate(route):  # noqa: B007 - i names the failing handler below
                h(event)
        except Exception as exc:
            self.handler_failed(type(event), i, event, exc)

    def handler_failed(self, event_type: type, index: int, event: Event, exc: Exception) -> None:
        """Apply the error policy to handler ``index`` of ``event_type`` that raised ``exc``."""
        name = self._names[event_type][index]
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
        for t in list(self._routes):
            self._rebuild(t)
        self.publish(
            HandlerFailed(
                ts_event_ns=event.ts_event_ns,
                ts_init_ns=event.ts_init_ns,
                handler=name,
                error=f"{type(exc).__name__}: {exc}",
            )
        )


def _name_of(handler: Handler) -> str:
    owner = getattr(handler, "__self__", None)
    fn = getattr(handler, "__name__", repr(handler))
    return f"{type(owner).__name__}.{fn}" if owner is not None else fn
