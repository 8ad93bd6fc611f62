"""Per-bar (incremental) forms == whole-array forms, causality (prefix) of every kernel, and
numerical stability over 1M bars at a price level of 1e5.

Parity is required to 1e-9 with identical NaN positions; by construction the two forms perform
the same arithmetic, so they are in fact bit-identical, and the real-data test checks that too.
"""

from __future__ import annotations

import numpy as np
import pytest

from indicators.kernels.atr import SMA, WILDER, atr_nb, atr_state_nb, atr_update_nb
from indicators.kernels.linreg import (
    linreg_nb,
    linreg_slope_nb,
    linreg_state_nb,
    linreg_update_nb,
    slope_rule_nb,
    slope_rule_state_nb,
    slope_rule_update_nb,
)
from indicators.kernels.rolling import (
    extreme_push_nb,
    extreme_state_nb,
    rolling_max_nb,
    rolling_mean_nb,
    rolling_min_nb,
    sma_push_nb,
    sma_state_nb,
)
from indicators.kernels.stoch import (
    StochState,
    stoch_nb,
    stoch_raw_nb,
    stoch_step_nb,
    stoch_update_nb,
)
from tests.indicators.test_kernels import random_bars, same

STOCH_SPECS = [(14, 3, 3, True), (9, 3, 1, True), (60, 10, 1, True), (40, 1, 4, False),
               (60, 10, 10, False)]


# -- whole-array forms as callables of (h, l, c) -> tuple of output arrays ------------------------
def _stoch(n, ks, ds, full):
    def f(h, lo, c):
        k, d = np.empty_like(c), np.empty_like(c)
        stoch_nb(h, lo, c, n, ks, ds, full, k, d)
        return stoch_raw_nb(h, lo, c, n, full, np.empty_like(c)), k, d

    return f


def _atr(n, method):
    return lambda h, lo, c: (atr_nb(h, lo, c, n, method, np.empty_like(c)),)


def _linreg(n):
    def f(h, lo, c):
        outs = [np.empty_like(c) for _ in range(4)]
        linreg_nb(c, n, *outs)
        return (*outs, linreg_slope_nb(c, n, np.empty_like(c)))

    return f


def _rolling(n, mp):
    return lambda h, lo, c: (rolling_max_nb(h, n, mp, np.empty_like(c)),
                             rolling_min_nb(lo, n, mp, np.empty_like(c)),
                             rolling_mean_nb(c, n, mp, np.empty_like(c)))


WHOLE = {
    **{f"stoch{s}": _stoch(*s) for s in STOCH_SPECS},
    "atr_wilder": _atr(14, WILDER),
    "atr_sma": _atr(14, SMA),
    "linreg100": _linreg(100),
    "linreg2": _linreg(2),
    "slope_rule": lambda h, lo, c: (slope_rule_nb(c, 20, np.empty_like(c)),),
    "rolling_full": _rolling(14, 14),
    "rolling_partial": _rolling(14, 1),
}


# -- per-bar forms: the same outputs, one bar at a time --------------------------------------------
def per_bar_stoch(h, lo, c, n, ks, ds, full, explicit=False):
    """``stoch_step_nb`` over the packed state, or ``stoch_update_nb`` over its array views."""
    s = StochState(n, ks, ds, full)
    out = np.empty((c.shape[0], 3))
    for i in range(c.shape[0]):
        if explicit:
            out[i] = stoch_update_nb(s.hi_idx, s.hi_vals, s.hi_meta, s.lo_idx, s.lo_vals,
                                     s.lo_meta, s.k_buf, s.k_meta, s.d_buf, s.d_meta, h[i],
                                     lo[i], c[i], n, ks, ds, full)
        else:
            out[i] = stoch_step_nb(s.ints, s.floats, h[i], lo[i], c[i])
    return out[:, 0], out[:, 1], out[:, 2]


def per_bar_atr(h, lo, c, n, method):
    st = atr_state_nb(n, method)
    return (np.array([atr_update_nb(st, h[i], lo[i], c[i]) for i in range(c.shape[0])]),)


def per_bar_linreg(c, n):
    st = linreg_state_nb(n)
    out = np.array([linreg_update_nb(st, y) for y in c]).reshape(-1, 4)
    return (*out.T, out[:, 0])


def per_bar_rolling(h, lo, c, n, mp):
    hi, lo_s, mean = extreme_state_nb(n), extreme_state_nb(n), sma_state_nb(n)
    out = np.empty((c.shape[0], 3))
    for i in range(c.shape[0]):
        out[i, 0] = extreme_push_nb(*hi, h[i], n, True)
        out[i, 1] = extreme_push_nb(*lo_s, lo[i], n, False)
        out[i, 2] = sma_push_nb(*mean, c[i], n, mp)
    out[: mp - 1, :2] = np.nan  # the deque has no warm-up of its own: the caller masks
    return out[:, 0], out[:, 1], out[:, 2]


def _per_bar_stoch_of(spec):
    return lambda h, lo, c: per_bar_stoch(h, lo, c, *spec)


PER_BAR = {
    **{f"stoch{s}": _per_bar_stoch_of(s) for s in STOCH_SPECS},
    "atr_wilder": lambda h, lo, c: per_bar_atr(h, lo, c, 14, WILDER),
    "atr_sma": lambda h, lo, c: per_bar_atr(h, lo, c, 14, SMA),
    "linreg100": lambda h, lo, c: per_bar_linreg(c, 100),
    "linreg2": lambda h, lo, c: per_bar_linreg(c, 2),
    "slope_rule": lambda h, lo, c: (
        np.array([slope_rule_update_nb(st, y) for st in [slope_rule_state_nb(20)] for y in c]),
    ),
    "rolling_full": lambda h, lo, c: per_bar_rolling(h, lo, c, 14, 14),
    "rolling_partial": lambda h, lo, c: per_bar_rolling(h, lo, c, 14, 1),
}


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_per_bar_equals_whole_array_on_random_data(name):
    for seed in (0, 2):
        h, lo, c = random_bars(seed, n=800, tick=0.05 if seed == 2 else 0.0)
        for a, b in zip(PER_BAR[name](h, lo, c), WHOLE[name](h, lo, c), strict=True):
            same(a, b, rtol=0, atol=1e-9, where=f"{name} seed {seed}")


@pytest.mark.parametrize("spec", STOCH_SPECS)
def test_both_stochastic_step_forms_are_identical(spec):
    h, lo, c = random_bars(2, n=800, tick=0.05)
    for a, b in zip(per_bar_stoch(h, lo, c, *spec, explicit=True), per_bar_stoch(h, lo, c, *spec),
                    strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(WHOLE))
def test_per_bar_equals_whole_array_on_real_data(name, real_bars):
    h, lo, c = real_bars.high, real_bars.low, real_bars.close
    for a, b in zip(PER_BAR[name](h, lo, c), WHOLE[name](h, lo, c), strict=True):
        same(a, b, rtol=0, atol=1e-9, where=name)
        # stronger than required: the same arithmetic in the same order, bit for bit
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: not bit-identical")


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_prefix_causality_of_every_kernel(name):
    """out[k] is the same whether the data ends at k or continues (freqtrade's idea)."""
    h, lo, c = random_bars(1, n=1200)
    full = WHOLE[name](h, lo, c)
    for k in (0, 1, 12, 13, 59, 99, 150, 240, 1023, 1100):
        cut = WHOLE[name](h[: k + 1].copy(), lo[: k + 1].copy(), c[: k + 1].copy())
        for a, b in zip(cut, full, strict=True):
            np.testing.assert_array_equal(a, b[: k + 1], err_msg=f"{name} cut at {k}")


# -- stability: 1M bars at 1e5 ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def million_bars():
    rng = np.random.default_rng(42)
    c = 1e5 * np.exp(np.cumsum(rng.normal(0, 0.002, 1_000_000)))
    return c


@pytest.mark.slow
def test_linreg_stays_exact_over_1m_bars_at_1e5(million_bars):
    c = million_bars
    n = 100
    outs = [np.empty_like(c) for _ in range(4)]
    linreg_nb(c, n, *outs)
    idx = np.random.default_rng(7).integers(n, c.shape[0], 300)
    idx = np.concatenate((idx, [n - 1, c.shape[0] - 1]))
    x = np.arange(n, dtype=float) - (n - 1) / 2
    for i in idx:  # exact two-pass oracle per window
        y = c[i - n + 1 : i + 1]
        ym = y.mean()
        slope = (x * (y - ym)).sum() / (x * x).sum()
        res = y - ym - slope * x
        r2 = 1 - (res**2).sum() / ((y - ym) ** 2).sum()
        assert abs(outs[0][i] - slope) <= 1e-9, (i, outs[0][i], slope)
        assert abs(outs[1][i] - (ym + slope * (n - 1) / 2)) <= 1e-9 * ym
        assert abs(outs[2][i] - r2) <= 1e-9
        assert abs(outs[3][i] - np.sqrt((res**2).mean())) <= 1e-9 * ym
    st = linreg_state_nb(n)  # the incremental form over the whole million
    inc = np.array([linreg_update_nb(st, y) for y in c])
    for j in range(4):
        same(inc[:, j], outs[j], rtol=0, atol=1e-9, where=f"linreg output {j} over 1M bars")


@pytest.mark.slow
def test_running_mean_does_not_drift_over_1m_bars(million_bars):
    c = million_bars
    got = rolling_mean_nb(c, 14, 14, np.empty_like(c))
    for i in np.random.default_rng(8).integers(14, c.shape[0], 300):
        assert abs(got[i] - c[i - 13 : i + 1].mean()) <= 1e-12 * c[i]
