"""Indicators: numba kernels (``indicators.kernels``), a plain array API and bus handlers.

The array API is re-exported here::

    import indicators
    k, d = indicators.stochastic(high, low, close, 14, 3, 3)

Bus handlers (``indicators.handlers``) are found through the ``tradebot.feature_handlers``
entry points; ``indicators.handlers.warm_up_kernels()`` compiles every kernel up front.
See docs/indicators.md.
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
]
