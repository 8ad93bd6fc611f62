"""Indicators: numba kernels (``indicators.kernels``), a plain array API and bus handlers.

The array API is re-exported here::

    import indicators
    k, d = indicators.stochastic(high, low, close, 14, 3, 3)

    cols = indicators.volume_profile(high, low, close, volume, lookback=200, bins=80,
                                     mode="close")          # per-bar POC, VAH, VAL, ...
    p = indicators.window_profile(high, low, close, volume, start, stop, mode="range")

Bus handlers (``indicators.handlers``, ``indicators.profile.handler.VolumeProfileHandler``) are
found through the ``tradebot.feature_handlers`` entry points;
``indicators.handlers.warm_up_kernels()`` compiles every kernel up front.
The volume profile lives in the package ``indicators.profile`` (array API, one window, trade
setup, handler: one module each). See docs/indicators.md and docs/volume-profile.md.
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
from indicators.profile import volume_profile, window_profile

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
