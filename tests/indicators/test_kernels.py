"""Indicator kernels against slow plain-numpy oracles, TA-Lib, and their own per-bar forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import indicators
from indicators.kernels.atr import SMA, WILDER, AtrState, atr_update_nb
from indicators.kernels.linreg import LinregState, linreg_update_nb
from indicators.kernels.stoch import StochState, stoch_update_nb
from tests.conftest import need


def random_bars(seed: int, n: int = 1500, flat: bool = True):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.concatenate(([c[0]], c[:-1]))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.01, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.01, n))
    if flat:  # a dead stretch: every price equal (zero range windows)
        h[200:260] = lo[200:260] = o[200:260] = c[200:260] = c[199]
    return h, lo, c


# -- oracles: written from the formulas, deliberately slow and obvious --------------------------
def oracle_stoch(h, lo, c, n, ks, ds, full=True):
    size = c.shape[0]
    raw = np.full(size, np.nan)
    for i in range(size):
        if full and i < n - 1:
            continue
        a = max(0, i - n + 1)
        hh, ll = h[a : i + 1].max(), lo[a : i + 1].min()
        raw[i] = 50.0 if hh == ll else 100 * (c[i] - ll) / (hh - ll)
    mp_k, mp_d = (ks, ds) if full else (1, 1)
    k = pd.Series(raw).rolling(ks, min_periods=mp_k).mean().to_numpy()
    d = pd.Series(k).rolling(ds, min_periods=mp_d).mean().to_numpy()
    return k, d


def oracle_atr(h, lo, c, n, method):
    size = c.shape[0]
    tr = np.empty(size)
    tr[0] = h[0] - lo[0]
    for i in range(1, size):
        tr[i] = max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))
    out = np.full(size, np.nan)
    if method == "sma":
        for i in range(n - 1, size):
            out[i] = tr[i - n + 1 : i + 1].mean()
        return out
    if size > n:
        out[n] = tr[1 : n + 1].mean()
        for i in range(n + 1, size):
            out[i] = (out[i - 1] * (n - 1) + tr[i]) / n
    return out


def oracle_linreg(c, n):
    size = c.shape[0]
    outs = [np.full(size, np.nan) for _ in range(4)]
    x = np.arange(n, dtype=float)
    for i in range(n - 1, size):
        y = c[i - n + 1 : i + 1]
        slope, icpt = np.polyfit(x, y, 1)
        res = y - (icpt + slope * x)
        sst = ((y - y.mean()) ** 2).sum()
        r2 = 0.0 if np.ptp(y) == 0 else 1 - (res**2).sum() / sst
        outs[0][i], outs[1][i], outs[2][i], outs[3][i] = slope, icpt, r2, res.std()
    return outs


def same(a, b, rtol=1e-9, atol=1e-9):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(a)
    np.testing.assert_allclose(a[m], b[m], rtol=rtol, atol=atol)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "ks", "ds"), [(14, 3, 3), (9, 1, 3), (60, 10, 10), (1, 1, 1)])
def test_stochastic_matches_oracle(seed, n, ks, ds):
    h, lo, c = random_bars(seed)
    k, d = indicators.stochastic(h, lo, c, n, ks, ds)
    ok, od = oracle_stoch(h, lo, c, n, ks, ds)
    same(k, ok)
    same(d, od)


def test_zero_range_gives_fifty_not_a_division_by_zero():
    h, lo, c = random_bars(3)
    k, _ = indicators.stochastic(h, lo, c, 14, 1, 1)
    assert np.all(k[220:260] == 50.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_multi_stochastic_variants_match_the_reference_definitions(seed):
    h, lo, c = random_bars(seed)
    model = indicators.multi_stochastic(h, lo, c, "model")
    chart = indicators.multi_stochastic(h, lo, c, "chart")
    same(model["s60"], oracle_stoch(h, lo, c, 60, 10, 1)[0])
    same(model["s9"], oracle_stoch(h, lo, c, 9, 3, 1)[0])
    # chart S60 is double smoothed from bar 0: SMA10(SMA10(%K60)), min_periods=1
    same(chart["s60"], oracle_stoch(h, lo, c, 60, 10, 10, full=False)[1])
    same(chart["s40"], oracle_stoch(h, lo, c, 40, 1, 4, full=False)[1])
    assert not np.isnan(chart["s9"][0]) and np.isnan(model["s9"][0])


@pytest.mark.parametrize("method", ["wilder", "sma"])
@pytest.mark.parametrize("n", [1, 14, 50])
def test_atr_matches_oracle(method, n):
    h, lo, c = random_bars(4)
    same(indicators.atr(h, lo, c, n, method), oracle_atr(h, lo, c, n, method))


@pytest.mark.parametrize("n", [2, 20, 100])
def test_linreg_matches_polyfit(n):
    _, _, c = random_bars(5)
    r = indicators.linreg(c, n)
    o = oracle_linreg(c, n)
    same(r.slope, o[0], atol=1e-8)
    same(r.intercept, o[1], atol=1e-7)
    same(r.r2, o[2], atol=1e-8)
    same(r.resid_std, o[3], atol=1e-7)
    lo_, hi_ = r.channel(2.0)
    same(hi_ - lo_, 4 * r.resid_std)


def test_slope_rule_is_last_minus_first_over_n():
    _, _, c = random_bars(6)
    got = indicators.slope_rule(c, 20)
    want = pd.Series(c).rolling(20).apply(lambda w: (w.iloc[-1] - w.iloc[0]) / 20).to_numpy()
    same(got, want)


def test_shorter_than_window_is_all_nan_and_bad_inputs_are_refused():
    h, lo, c = random_bars(7, n=10, flat=False)
    k, d = indicators.stochastic(h, lo, c, 14, 3, 3)
    assert np.isnan(k).all() and np.isnan(d).all()
    assert np.isnan(indicators.linreg(c, 100).slope).all()
    with pytest.raises(ValueError, match="equal lengths"):
        indicators.atr(h, lo[:-1], c)
    with pytest.raises(ValueError, match="positive integer"):
        indicators.stochastic(h, lo, c, k=0)
    with pytest.raises(ValueError, match="method"):
        indicators.atr(h, lo, c, method="ema")


# -- real data ------------------------------------------------------------------------------------
def test_oracles_on_real_data_sample(real_bars):
    sl = slice(30_000, 33_000)
    h, lo, c = real_bars.high[sl], real_bars.low[sl], real_bars.close[sl]
    same(indicators.stochastic(h, lo, c)[0], oracle_stoch(h, lo, c, 14, 3, 3)[0])
    same(indicators.atr(h, lo, c, 14, "sma"), oracle_atr(h, lo, c, 14, "sma"))
    r = indicators.linreg(c[:800], 100)
    o = oracle_linreg(c[:800], 100)
    same(r.slope, o[0], rtol=1e-7, atol=1e-7)


def test_incremental_equals_whole_array_on_real_data(real_bars):
    h, lo, c = real_bars.high, real_bars.low, real_bars.close
    n = len(c)
    k_full, d_full = indicators.stochastic(h, lo, c, 14, 3, 3)
    a_w = indicators.atr(h, lo, c, 14, "wilder")
    a_s = indicators.atr(h, lo, c, 14, "sma")
    lr = indicators.linreg(c, 100)
    st, aw, asm, ls = StochState(14, 3, 3), AtrState(14), AtrState(14), LinregState(100)
    k_inc, a_w_inc, a_s_inc, slope_inc, r2_inc = (np.empty(n) for _ in range(5))
    for i in range(n):
        _, k_inc[i], _ = stoch_update_nb(st.hi_idx, st.hi_vals, st.hi_meta, st.lo_idx,
                                         st.lo_vals, st.lo_meta, st.k_buf, st.k_meta, st.d_buf,
                                         st.d_meta, h[i], lo[i], c[i], 14, 3, 3, True)
        a_w_inc[i] = atr_update_nb(aw.f, aw.buf, aw.meta, h[i], lo[i], c[i], 14, WILDER)
        a_s_inc[i] = atr_update_nb(asm.f, asm.buf, asm.meta, h[i], lo[i], c[i], 14, SMA)
        slope_inc[i], _, r2_inc[i], _ = linreg_update_nb(ls.buf, ls.f, c[i], 100)
    for a, b in ((k_inc, k_full), (a_w_inc, a_w), (a_s_inc, a_s), (slope_inc, lr.slope),
                 (r2_inc, lr.r2)):
        same(a, b, rtol=0, atol=1e-9)


def test_agrees_with_talib_on_real_data(real_bars):
    try:
        import talib
    except ImportError:
        need(False, "TA-Lib (pip package ta-lib) is not installed")
    h, lo, c = real_bars.high, real_bars.low, real_bars.close
    k, d = indicators.stochastic(h, lo, c, 14, 3, 3)
    tk, td = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    m = ~np.isnan(tk)  # TA-Lib starts both lines at bar 17; ours %K at 15 (its own warm-up)
    assert m.sum() > 69_000
    np.testing.assert_allclose(k[m], tk[m], atol=1e-9)
    np.testing.assert_allclose(d[m], td[m], atol=1e-9)
    a = indicators.atr(h, lo, c, 14, "wilder")
    ta = talib.ATR(h, lo, c, 14)
    same(a, ta, rtol=1e-12, atol=1e-9)
    s = indicators.linreg(c, 100).slope
    ts = talib.LINEARREG_SLOPE(c, 100)
    # TA-Lib sums raw prices (~1e5); our centred sums are the more exact of the two
    same(s, ts, rtol=1e-8, atol=1e-8)
