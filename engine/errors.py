"""Error hierarchy, sorted by the action the caller must take.

```
EngineError
├── ConfigError        bad YAML or params: refuse to start
├── PluginLoadError    missing or broken plugin: refuse to start
├── DataError          bad bar file or bar: stop the backtest (live: skip the bar and alert)
├── StrategyError      a plugin or handler raised: backtest stops; paper/live disable that
│                      handler, publish HandlerFailed and keep the rest running (engine.bus)
└── VenueError         anything from the exchange
    ├── TransientVenueError   timeout, 5xx, rate limit: retry with capped backoff
    ├── OrderRejected         the venue said no: do not retry; alert
    │   └── DuplicateClientId the clientId is taken: look the first order up, do not resend
    ├── VenueStateUnknown     an order's state cannot be confirmed: stop entries, reconcile
    └── VenueUnreachable      no connection at all (refused, DNS, wrong URL): check the URL
```

Messages say what, which value, where, and what to do.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(EngineError):
    """The configuration is invalid: fix the file named in the message and start again."""


class PluginLoadError(EngineError):
    """A plugin named in the config is missing or broken: install or fix it, then start again."""


class DataError(EngineError):
    """Bar data is malformed: fix or replace the file (or bar) named in the message."""


class StrategyError(EngineError):
    """A strategy, handler or plugin raised while processing an event (the message names the
    handler and the event; the original exception is chained as the cause)."""


class VenueError(EngineError):
    """The exchange reported an error."""


class TransientVenueError(VenueError):
    """A timeout, 5xx or rate limit: safe to retry with backoff.

    ``retry_after`` is the wait in seconds the venue asked for, when it said one (else ``None``).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OrderRejected(VenueError):
    """The venue refused an order: do not retry the same order."""


class DuplicateClientId(OrderRejected):
    """The order's clientId was used before: the first order exists; look it up, do not resend."""


class VenueStateUnknown(VenueError):
    """An order's state cannot be confirmed: stop new entries and reconcile."""


class VenueUnreachable(VenueError):
    """No connection to the venue (refused, DNS, wrong base URL): check the URL named."""
