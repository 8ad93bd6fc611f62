"""Indicators: numba kernels (``indicators.kernels``), a plain array API and bus handlers.

The array API is re-exported here::

    import indicators
    k, d = indicators.stochastic(high, low, close, 14, 3, 3)

    cols = indicators.volume_profile(high, low, close, volume, lookback=200, bins=80,
                                     mode="close")          # per-bar POC, VAH, VAL, ...
    p = indicators.window_profile(high, low, close, volume, start, stop, mode="range")

Bus handlers (``indicators.handlers``, ``indicators.volume_profile.VolumeProfileHandler``) are
found through the ``tradebot.feature_handlers`` entry points;
``indicators.handlers.warm_up_kernels()`` compiles every kernel up front.
See docs/indicators.md and docs/volume-profile.md.

Note: the attribute ``indicators.volume_profile`` is the *function*, which shadows the
submodule of the same name. ``from indicators.volume_profile import VolumeProfileHandler``
works as usual (it goes through ``sys.modules``); ``import indicators.volume_profile as m``
would give the function, so use the ``from`` form for the module's other names.
"""

from __future__ import annotations

from indicators.api import (
    CHART_SCALES,
    MODEL_SCALES,
    LinregResult,
    atr,
    linreg,
    multi_stochastic,
    pct_to_unit,
    slope_rule,
    stochastic,
)
from indicators.volume_profile import volume_profile, window_profile

__all__ = [
    "CHART_SCALES",
    "MODEL_SCALES",
    "LinregResult",
    "atr",
    "linreg",
    "multi_stochastic",
    "pct_to_unit",
    "slope_rule",
    "stochastic",
    "volume_profile",
    "window_profile",
]
