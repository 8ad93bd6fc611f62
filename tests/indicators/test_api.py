"""The array API: input conversion, validation messages, shapes and result types."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import indicators
from indicators.api import scale_specs
from tests.indicators.test_kernels import random_bars


def test_accepts_lists_ints_and_read_only_arrays_and_returns_aligned_float64():
    h, lo, c = random_bars(0, n=300, flat=False)
    ro = c.copy()
    ro.flags.writeable = False
    k, d = indicators.stochastic(h.tolist(), lo.tolist(), ro)
    assert k.dtype == d.dtype == np.float64 and k.shape == d.shape == (300,)
    ints = np.arange(1, 301)
    assert indicators.atr(ints + 1, ints - 1, ints, 14).dtype == np.float64
    np.testing.assert_array_equal(indicators.slope_rule(ints, 20)[19:], 19 / 20)
    r = indicators.linreg(c, 50)
    assert isinstance(r, indicators.LinregResult) and r.n == 50
    assert {f.name for f in dataclasses.fields(r)} == {"slope", "intercept", "r2", "resid_std", "n"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n = 3  # type: ignore[misc]
    assert set(indicators.multi_stochastic(h, lo, c)) == {"s9", "s14", "s40", "s60"}


def test_empty_input_gives_empty_output():
    e = np.array([])
    assert indicators.stochastic(e, e, e)[0].shape == (0,)
    assert indicators.atr(e, e, e).shape == (0,)
    assert indicators.linreg(e).slope.shape == (0,)
    assert indicators.slope_rule(e).shape == (0,)
    assert indicators.multi_stochastic(e, e, e, "chart")["s60"].shape == (0,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h, lo, c: indicators.atr(h, lo[:-1], c), r"atr: .*same length.*low=99"),
        (lambda h, lo, c: indicators.stochastic(h, lo, c[:5]), r"stochastic: .*close=5"),
        (lambda h, lo, c: indicators.stochastic(h, lo, c, k=0), r"stochastic: k must be >= 1"),
        (lambda h, lo, c: indicators.stochastic(h, lo, c, k=2.5), r"k must be an integer"),
        (lambda h, lo, c: indicators.stochastic(h, lo, c, d_smooth=True), r"d_smooth must be an"),
        (lambda h, lo, c: indicators.atr(h, lo, c, method="ema"), r"'wilder' or 'sma'.*'ema'"),
        (lambda h, lo, c: indicators.linreg(c, 1), r"linreg: n must be >= 2, got 1"),
        (lambda h, lo, c: indicators.slope_rule(c, -3), r"slope_rule: n must be >= 2"),
        (lambda h, lo, c: indicators.multi_stochastic(h, lo, c, "live"), r"'model' or 'chart'"),
        (lambda h, lo, c: indicators.linreg(np.ones((10, 10))), r"1-D .*shape \(10, 10\)"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(call, message):
    h, lo, c = random_bars(1, n=100, flat=False)
    with pytest.raises(ValueError, match=message):
        call(h, lo, c)


def test_scale_tables_are_the_reference_bot_s():
    assert indicators.MODEL_SCALES == {"s9": (9, 3), "s14": (14, 3), "s40": (40, 4),
                                       "s60": (60, 10)}
    assert indicators.CHART_SCALES == {"s9": (9, 1, 3), "s14": (14, 1, 3), "s40": (40, 1, 4),
                                       "s60": (60, 10, 10)}
    assert scale_specs("model")["s60"] == (60, 10, 1, True)
    assert scale_specs("chart")["s60"] == (60, 10, 10, False)
