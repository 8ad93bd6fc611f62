"""Indicators: numba kernels (``indicators.kernels``), bus handlers and a plain array API."""

from indicators.api import (
    LinregResult,
    atr,
    linreg,
    multi_stochastic,
    slope_rule,
    stochastic,
)

__all__ = ["LinregResult", "atr", "linreg", "multi_stochastic", "slope_rule", "stochastic"]
