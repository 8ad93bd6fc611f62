"""What a strategy (entry rule) sees: its context. Exit plugins get their own contract later.

A strategy is a class with a pydantic ``Params`` model, an optional
``required_features(params) -> list[FeatureConfig]`` (the engine sets those handlers up once and
shares them between strategies), ``__init__(ctx, params)`` and ``on_bar_closed(bar)``. It reads
bars and features only through ``ctx`` and acts only by publishing commands (``SubmitOrder``,
``CancelOrder``, ``ModifyOrder``) on the bus; it never asks which mode it runs in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.bars import BarStore
from engine.errors import ConfigError
from engine.events import Event
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
