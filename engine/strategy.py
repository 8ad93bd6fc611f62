"""What a strategy (entry rule) sees: its context. Exit plugins have their own contract
(``engine.exits``).

A strategy is a class with a pydantic ``Params`` model, an optional
``required_features(params) -> list[FeatureConfig]`` (the engine sets those handlers up once and
shares them between strategies), ``__init__(ctx, params)`` and ``on_bar_closed(bar)``. It reads
bars and features only through ``ctx`` and acts only by publishing commands (``SubmitOrder``,
``CancelOrder``, ``ModifyOrder``) through ``ctx.publish``; the bus routes them to its own
account's broker. It never asks which mode it runs in.

Time: ``ctx.clock.now_ns()`` is the close time of the bar being processed in a backtest and the
wall clock live. A strategy may set timers (``ctx.clock.set_timer(f"{ctx.name}:...", ...)``) and
define ``on_timer(event: TimerFired)``: the engine then subscribes it to ``TimerFired`` (every
timer's: match ``event.name``). Timers due by a bar's close fire before that bar's handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.bars import BarStore
from engine.clock import Clock, SimClock
from engine.errors import ConfigError
from engine.events import BarClosed, Event
from engine.features import FeatureView
from engine.portfolio import Account


@dataclass(frozen=True, slots=True)
class StrategyContext:
    name: str
    symbol: str
    bars: BarStore
    features: FeatureView  # reads bounded by the current bar; no backing()
    account: Account | None  # None for the shared signal rule, which trades no account
    publish: Callable[[Event], None]
    position_size_frac: float
    feature_outputs: Mapping[str, tuple[str, ...]]
    feature_handlers: Mapping[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=SimClock)  # the engine's clock (bootstrap passes it)

    def output(self, feature_id: str, suffix: str) -> str:
        """Column name of output ``suffix`` of feature ``feature_id`` (``stoch_14_3_3``, ``k``)."""
        cols = self.feature_outputs.get(feature_id)
        if cols is None:
            raise ConfigError(
                f"strategy {self.name!r} needs feature {feature_id!r}, which is not set up"
            )
        for c in cols:
            if c == f"{feature_id}_{suffix}" or (c == feature_id and len(cols) == 1):
                return c
        raise ConfigError(
            f"feature {feature_id!r} has no output {suffix!r}; it has {list(cols)}"
        )


class Strategy(Protocol):
    """What the engine calls on a strategy (an entry rule, or an exit plugin's runner)."""

    def on_bar_closed(self, bar: BarClosed) -> None: ...
