"""The public surface for strategy plugin authors: import everything a plugin needs from here.

```python
from strategies.api import (API_VERSION, VOLUME_PROFILE, ExitContext, ExitParams, ExitPlan,
                            MoveStop, PositionView, TakePartial, TradeSetup, window)
```

What is here (``__all__``), and where it is explained (docs/writing-strategies.md):

- the contract: ``API_VERSION`` (the plugin API this tradebot speaks, (major, minor)),
  ``check_exit_contract``, ``api_version_problem``;
- what an exit plugin is handed and returns: ``TradeSetup``, ``ExitContext``, ``PositionView``,
  ``BarClosed``, ``ExitPlan``, the intents ``MoveStop``, ``TakePartial``, ``CloseAll``
  (``ExitIntent`` is their union), ``Side``;
- params: ``PluginParams`` (a strict, frozen pydantic base) and ``ExitParams`` (it plus the
  fields every built-in exit shares: lookback, trailing cadence and buffer, hold limit);
- declaring what a plugin reads, one way for entry rules and exit plugins:
  ``required_features(params) -> list[FeatureConfig | AnyFeature]``; ``VOLUME_PROFILE`` is the
  requirement "a volume profile, whatever its settings";
- the volume profile: ``window(ctx, start, stop)`` -> ``WindowProfile``, and the rule helpers
  ``beyond``, ``first_beyond``, ``tighter``, ``is_tick``, ``hvn_trail``;
- entry rules (strategies that trade by themselves): ``StrategyContext``, ``FeatureView``,
  ``FeatureReader`` (bounded per-column reads), ``SubmitOrder``, ``CancelOrder``,
  ``ModifyOrder``, ``SignalRaised``, ``OrderFilled``;
- testing: ``check_exit_plugin`` (the contract kit: causality, determinism, no exceptions),
  imported on first use.

Everything else (``engine.*``, ``strategies._*``) is internal and may change between minor
versions; this module only grows within a major version.
"""

from __future__ import annotations

from typing import Any

from engine.config import FeatureConfig
from engine.events import (
    BarClosed,
    CancelOrder,
    ModifyOrder,
    OrderFilled,
    Side,
    SignalRaised,
    SubmitOrder,
)
from engine.exits import (
    API_VERSION,
    CloseAll,
    ExitContext,
    ExitIntent,
    ExitPlan,
    MoveStop,
    PositionView,
    TakePartial,
    TradeSetup,
    api_version_problem,
    check_exit_contract,
)
from engine.features import AnyFeature, FeatureReader, FeatureView
from engine.strategy import StrategyContext
from strategies._common import (
    ExitParams,
    PluginParams,
    beyond,
    first_beyond,
    hvn_trail,
    is_tick,
    tighter,
)
from strategies._profile import WindowProfile, window

VOLUME_PROFILE = AnyFeature("volume_profile", "vp")
"""A requirement: the volume profile ``window()`` reads, whatever its settings (the configured
one; if the config has none, the engine adds ``{id: vp, kind: volume_profile}``)."""

__all__ = [
    "API_VERSION",
    "VOLUME_PROFILE",
    "AnyFeature",
    "BarClosed",
    "CancelOrder",
    "CloseAll",
    "ExitContext",
    "ExitIntent",
    "ExitParams",
    "ExitPlan",
    "FeatureConfig",
    "FeatureReader",
    "FeatureView",
    "ModifyOrder",
    "MoveStop",
    "OrderFilled",
    "PluginParams",
    "PositionView",
    "Side",
    "SignalRaised",
    "StrategyContext",
    "SubmitOrder",
    "TakePartial",
    "TradeSetup",
    "WindowProfile",
    "api_version_problem",
    "beyond",
    "check_exit_contract",
    "check_exit_plugin",  # noqa: F822 (module __getattr__ loads it on first use)
    "first_beyond",
    "hvn_trail",
    "is_tick",
    "tighter",
    "window",
]


def __getattr__(name: str) -> Any:
    # the contract kit wires a whole engine: imported when a test asks for it, not by every plugin
    if name == "check_exit_plugin":
        from strategies.testing import check_exit_plugin

        return check_exit_plugin
    raise AttributeError(f"module 'strategies.api' has no attribute {name!r}")
