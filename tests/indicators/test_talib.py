"""Agreement with TA-Lib on the real BTC/USDT data, wherever both give a value.

Tolerances, and why:

- STOCH(14, 3, SMA, 3, SMA): 1e-9 absolute on the 0-100 scale (measured ~1e-12: summation
  order). TA-Lib starts %K at the %D warm-up (bar 17); ours starts %K at bar 15.
- ATR(14), Wilder: 1e-12 relative (measured ~1e-15: we multiply by (n-1)/n and 1/n where TA-Lib
  multiplies by n-1 and divides by n).
- LINEARREG_SLOPE(100): 1e-8 absolute, price units per bar. TA-Lib sums raw prices (~1e5), which
  costs it about nine digits of the slope's numerator; our centred sums match an exact oracle
  to ~1e-12 (``test_parity``), so the residual difference is TA-Lib's.
- LINEARREG(100) (our ``intercept``, the fitted value at the bar): 1e-10 relative to the price,
  for the same reason.
"""

from __future__ import annotations

import numpy as np
import pytest

import indicators
from tests.conftest import need

pytestmark = [pytest.mark.talib, pytest.mark.real_data]


@pytest.fixture(scope="module")
def talib():
    try:
        import talib as ta
    except ImportError:
        need(False, "TA-Lib (pip package ta-lib) is not installed")
    return ta


def both(ours, theirs, min_count):
    m = ~np.isnan(theirs)
    assert m.sum() >= min_count
    assert not np.isnan(ours[m]).any(), "TA-Lib has a value where we have NaN"
    return ours[m], theirs[m]


def test_stochastic_14_3_3_equals_talib_stoch(real_bars, talib):
    h, lo, c = real_bars.high, real_bars.low, real_bars.close
    hh, ll = talib.MAX(h, 14), talib.MIN(lo, 14)
    assert not np.any(hh[13:] == ll[13:])  # no zero-range window: TA-Lib 0 vs our 50 untested
    k, d = indicators.stochastic(h, lo, c, 14, 3, 3)
    tk, td = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    np.testing.assert_allclose(*both(k, tk, len(c) - 20), rtol=0, atol=1e-9)
    np.testing.assert_allclose(*both(d, td, len(c) - 20), rtol=0, atol=1e-9)
    assert np.isnan(k[:15]).all() and not np.isnan(k[15]) and np.isnan(tk[16])


def test_wilder_atr_14_equals_talib_atr(real_bars, talib):
    h, lo, c = real_bars.high, real_bars.low, real_bars.close
    a = indicators.atr(h, lo, c, 14, "wilder")
    ta = talib.ATR(h, lo, c, 14)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(ta))  # same warm-up: bars 0..13
    np.testing.assert_allclose(*both(a, ta, len(c) - 14), rtol=1e-12, atol=0)


def test_regression_slope_100_equals_talib_linearreg_slope(real_bars, talib):
    c = real_bars.close
    r = indicators.linreg(c, 100)
    ts = talib.LINEARREG_SLOPE(c, 100)
    np.testing.assert_array_equal(np.isnan(r.slope), np.isnan(ts))
    np.testing.assert_allclose(*both(r.slope, ts, len(c) - 99), rtol=0, atol=1e-8)
    ours, theirs = both(r.intercept, talib.LINEARREG(c, 100), len(c) - 99)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=0)
    ours, theirs = both(r.intercept - 99 * r.slope, talib.LINEARREG_INTERCEPT(c, 100), len(c) - 99)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=0)
