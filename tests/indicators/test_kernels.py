"""Every kernel against a slow, obvious plain-numpy / pandas oracle.

Random data (several seeds) includes a flat stretch (zero-range windows), tick-rounded prices
(ties in the rolling extremes) and arrays shorter than the window; the real BTC/USDT data is
checked on a slice. Tolerance: 1e-9 absolute (and relative) unless stated: the kernels and the
oracles sum in different orders, nothing more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import indicators
from indicators.kernels.linreg import linreg_slope_nb
from indicators.kernels.rolling import rolling_max_nb, rolling_mean_nb, rolling_min_nb
from indicators.kernels.stoch import stoch_raw_nb

SEEDS = (0, 1, 2)


def random_bars(seed: int, n: int = 1500, flat: bool = True, tick: float = 0.0):
    """A random walk around 100 with OHLC consistency; optionally a flat stretch and ticks."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.concatenate(([c[0]], c[:-1]))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.01, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.01, n))
    if tick:
        h, lo, c = (np.round(a / tick) * tick for a in (h, lo, c))
    if flat and n > 300:  # a dead market: every price equal for 80 bars
        h[200:280] = lo[200:280] = c[200:280] = c[199]
    return h, lo, c


# -- oracles ---------------------------------------------------------------------------------------
def oracle_stoch(h, lo, c, n, ks, ds, full=True):
    mp = (n, ks, ds) if full else (1, 1, 1)
    hh = pd.Series(h).rolling(n, min_periods=mp[0]).max()
    ll = pd.Series(lo).rolling(n, min_periods=mp[0]).min()
    raw = (100 * (pd.Series(c) - ll) / (hh - ll)).where(hh != ll, 50.0).where(hh.notna())
    k = raw.rolling(ks, min_periods=mp[1]).mean()
    d = k.rolling(ds, min_periods=mp[2]).mean()
    return raw.to_numpy(), k.to_numpy(), d.to_numpy()


def oracle_atr(h, lo, c, n, method):
    size = c.shape[0]
    tr = np.empty(size)
    tr[:1] = h[:1] - lo[:1]
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
    """Two-pass centred least squares per window: accurate at any price level."""
    size = c.shape[0]
    outs = [np.full(size, np.nan) for _ in range(4)]
    x = np.arange(n, dtype=float) - (n - 1) / 2
    for i in range(n - 1, size):
        y = c[i - n + 1 : i + 1]
        ym = y.mean()
        slope = (x * (y - ym)).sum() / (x * x).sum()
        res = y - ym - slope * x
        sst = ((y - ym) ** 2).sum()
        r2 = 0.0 if np.ptp(y) == 0 else 1 - (res**2).sum() / sst
        outs[0][i] = slope
        outs[1][i] = ym + slope * (n - 1) / 2  # fitted value at the last bar
        outs[2][i] = r2
        outs[3][i] = np.sqrt((res**2).mean())
    return outs


def same(a, b, rtol=1e-9, atol=1e-9, where=""):
    """Equal NaN positions and close values."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"NaN positions {where}")
    m = ~np.isnan(a)
    np.testing.assert_allclose(a[m], b[m], rtol=rtol, atol=atol, err_msg=where)


# -- rolling building blocks -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 2, 3, 14, 60])
@pytest.mark.parametrize("full", [True, False])
def test_rolling_max_min_mean_match_pandas(seed, n, full):
    h, lo, _ = random_bars(seed, tick=0.05 if seed == 2 else 0.0)
    mp = n if full else 1
    for x in (h, lo):
        s = pd.Series(x).rolling(n, min_periods=mp)
        out = np.empty_like(x)
        np.testing.assert_array_equal(rolling_max_nb(x, n, mp, out), s.max().to_numpy())
        np.testing.assert_array_equal(rolling_min_nb(x, n, mp, out), s.min().to_numpy())
        same(rolling_mean_nb(x, n, mp, out), s.mean().to_numpy(), rtol=1e-12, atol=0)


def test_rolling_mean_skips_leading_nans_like_pandas_and_works_in_place():
    x = np.concatenate((np.full(5, np.nan), np.arange(1.0, 21.0)))
    for mp in (1, 4):
        want = pd.Series(x).rolling(4, min_periods=mp).mean().to_numpy()
        same(rolling_mean_nb(x, 4, mp, np.empty_like(x)), want, rtol=1e-14, atol=0)
        y = x.copy()
        rolling_mean_nb(y, 4, mp, y)  # in place
        same(y, want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("size", [0, 1, 5, 13])
def test_windows_longer_than_the_data_give_nan_or_partial_values(size):
    x = np.linspace(1.0, 2.0, size)
    out = np.empty(size)
    assert np.isnan(rolling_max_nb(x, 14, 14, out)).all()
    np.testing.assert_array_equal(rolling_max_nb(x, 14, 1, out), x)  # increasing: max = last
    assert np.isnan(rolling_mean_nb(x, 14, 14, out)).all()
    assert np.isnan(linreg_slope_nb(x, 14, out)).all()
    h, lo = x + 1, x - 1
    assert np.isnan(indicators.stochastic(h, lo, x, 14, 3, 3)[0]).all()
    assert np.isnan(indicators.linreg(x, 14).intercept).all()
    assert np.isnan(indicators.slope_rule(x, 14)).all()
    chart = indicators.multi_stochastic(h, lo, x, "chart")  # defined from bar 0 whatever n
    assert all(not np.isnan(v).any() for v in chart.values())


# -- stochastic ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "ks", "ds"), [(14, 3, 3), (9, 1, 3), (60, 10, 10), (1, 1, 1)])
@pytest.mark.parametrize("full", [True, False])
def test_stochastic_matches_pandas(seed, n, ks, ds, full):
    h, lo, c = random_bars(seed, tick=0.05 if seed == 2 else 0.0)
    raw, k, d = oracle_stoch(h, lo, c, n, ks, ds, full)
    out_k, out_d = np.empty_like(c), np.empty_like(c)
    from indicators.kernels.stoch import stoch_nb

    stoch_nb(h, lo, c, n, ks, ds, full, out_k, out_d)
    same(out_k, k, where="%K")
    same(out_d, d, where="%D")
    same(stoch_raw_nb(h, lo, c, n, full, np.empty_like(c)), raw, where="raw %K")
    if full:
        same(indicators.stochastic(h, lo, c, n, ks, ds)[1], d)


def test_zero_range_gives_fifty_and_no_nan_holes():
    h, lo, c = random_bars(3)
    k, d = indicators.stochastic(h, lo, c, 14, 1, 1)
    assert np.all(k[213:280] == 50.0)  # windows entirely inside the flat stretch
    assert not np.isnan(k[13:]).any() and not np.isnan(d[13:]).any()
    raw = stoch_raw_nb(h, lo, c, 14, False, np.empty_like(c))
    assert raw[0] == 100 * (c[0] - lo[0]) / (h[0] - lo[0])  # chart variant from bar 0
    flat = np.full(30, 7.0)
    assert np.all(stoch_raw_nb(flat, flat, flat, 5, False, np.empty(30)) == 50.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_stochastic_variants_are_the_reference_definitions(seed):
    h, lo, c = random_bars(seed)
    model = indicators.multi_stochastic(h, lo, c, "model")
    chart = indicators.multi_stochastic(h, lo, c, "chart")
    for name, (n, ks) in {"s9": (9, 3), "s14": (14, 3), "s40": (40, 4), "s60": (60, 10)}.items():
        same(model[name], oracle_stoch(h, lo, c, n, ks, 1)[1], where=f"model {name}")
    for name, (n, ks, ds) in {"s9": (9, 1, 3), "s14": (14, 1, 3), "s40": (40, 1, 4),
                              "s60": (60, 10, 10)}.items():
        same(chart[name], oracle_stoch(h, lo, c, n, ks, ds, full=False)[2], where=f"chart {name}")
    # S60 differs between the variants: single SMA10 with NaN warm-up vs double SMA10 from bar 0
    assert np.isnan(model["s60"][:68]).all() and not np.isnan(model["s60"][68])
    assert not np.isnan(chart["s60"]).any()
    for line in (*model.values(), *chart.values()):  # one scale everywhere: 0-100
        v = line[~np.isnan(line)]
        assert v.min() >= 0 and v.max() <= 100 and v.max() > 50  # not 0-1
    np.testing.assert_array_equal(indicators.pct_to_unit(model["s60"]), model["s60"] / 100)


# -- ATR -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["wilder", "sma"])
@pytest.mark.parametrize("n", [1, 2, 14, 50])
def test_atr_matches_oracle(seed, method, n):
    h, lo, c = random_bars(seed)
    same(indicators.atr(h, lo, c, n, method), oracle_atr(h, lo, c, n, method))


def test_atr_warm_up_and_flat_market():
    h, lo, c = random_bars(4)
    w, s = indicators.atr(h, lo, c, 14, "wilder"), indicators.atr(h, lo, c, 14, "sma")
    assert np.isnan(w[:14]).all() and not np.isnan(w[14])
    assert np.isnan(s[:13]).all() and not np.isnan(s[13])
    flat = np.full(40, 5.0)
    assert np.all(indicators.atr(flat, flat, flat, 14, "wilder")[14:] == 0.0)
    assert np.all(indicators.atr(flat, flat, flat, 14, "sma")[13:] == 0.0)
    short = indicators.atr(h[:10], lo[:10], c[:10], 14)
    assert short.shape == (10,) and np.isnan(short).all()


# -- regression and slope rule ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [2, 3, 20, 100])
def test_linreg_matches_centred_least_squares(seed, n):
    _, _, c = random_bars(seed)
    r = indicators.linreg(c, n)
    want = oracle_linreg(c, n)
    for got, exp, name in zip((r.slope, r.intercept, r.r2, r.resid_std), want,
                              ("slope", "intercept", "r2", "std"), strict=True):
        same(got, exp, rtol=1e-9, atol=1e-9, where=name)
    same(linreg_slope_nb(c, n, np.empty_like(c)), r.slope, rtol=0, atol=0, where="slope only")
    lower, upper = r.channel(2.0)
    same(upper - lower, 4 * r.resid_std, rtol=1e-12, atol=1e-12)


def test_linreg_flat_window_has_zero_slope_r2_and_std():
    _, _, c = random_bars(5)
    r = indicators.linreg(c, 20)
    flat = slice(219, 280)  # windows entirely inside the flat stretch
    assert np.all(r.slope[flat] == 0) and np.all(r.r2[flat] == 0) and np.all(r.resid_std[flat] == 0)
    np.testing.assert_allclose(r.intercept[flat], c[199], rtol=1e-15)
    line = indicators.linreg(np.arange(50.0) * 2 + 7, 10)  # a perfect line
    np.testing.assert_allclose(line.slope[9:], 2.0, rtol=1e-12)
    np.testing.assert_allclose(line.r2[9:], 1.0, rtol=1e-12)
    np.testing.assert_allclose(line.intercept[9:], np.arange(9, 50) * 2.0 + 7, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_slope_rule_is_last_minus_first_over_n(seed):
    _, _, c = random_bars(seed)
    got = indicators.slope_rule(c, 20)
    want = pd.Series(c).rolling(20).apply(lambda w: (w.iloc[-1] - w.iloc[0]) / 20).to_numpy()
    same(got, want, rtol=1e-14, atol=0)
    assert got[19] == (c[19] - c[0]) / 20  # divides by n = 20, not by the 19 bars between


# -- real data -------------------------------------------------------------------------------------
@pytest.mark.real_data
def test_oracles_on_real_data_slice(real_bars):
    sl = slice(30_000, 33_000)
    h, lo, c = real_bars.high[sl], real_bars.low[sl], real_bars.close[sl]
    same(indicators.stochastic(h, lo, c)[1], oracle_stoch(h, lo, c, 14, 3, 3)[2])
    chart = indicators.multi_stochastic(h, lo, c, "chart")["s60"]
    same(chart, oracle_stoch(h, lo, c, 60, 10, 10, full=False)[2])
    for method in ("wilder", "sma"):
        same(indicators.atr(h, lo, c, 14, method), oracle_atr(h, lo, c, 14, method))
    r = indicators.linreg(c, 100)
    for got, exp in zip((r.slope, r.intercept, r.r2, r.resid_std), oracle_linreg(c, 100),
                        strict=True):
        same(got, exp, rtol=1e-9, atol=1e-9)
