"""Volume profile: kernels against a slow plain-numpy oracle, rolling vs from scratch, the bus
handler, causality, degenerate windows, GMM nodes and the trade setup.

The oracle below follows the algorithm as written in ``indicators.kernels.volume_profile``'s
docstring, with numpy and scipy doing the work: ``numpy.linspace`` edges, ``numpy.histogram`` /
``numpy.digitize`` placement (shares rounded to the documented power-of-two quantum),
``numpy.percentile`` for the HVN threshold, a plain loop for the value area and
``scipy.signal.find_peaks`` for the peaks. Because the kernel's sums are exact, every level is
compared for equality, not within a tolerance.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.signal import find_peaks, peak_prominences

import indicators
from engine.bars import Bars, BarStore
from engine.bus import Bus
from engine.errors import DataError
from engine.events import BarClosed
from engine.features import FeatureStore
from indicators.gmm import GmmCache, GmmNodes, fit_nodes
from indicators.kernels.peaks import find_peaks_nb
from indicators.kernels.volume_profile import (
    CLOSE,
    N_OUT,
    RANGE,
    SUMMARY,
    rolling_profile_nb,
    rolling_state_nb,
)
from indicators.profile import (
    VolumeProfileHandler,
    VolumeProfileParams,
    WindowProfile,
    ranked_targets,
    trade_setup,
    volume_profile,
    window_profile,
)

MODES = ("close", "range")
CODE = {"close": CLOSE, "range": RANGE}


# -- the oracle ------------------------------------------------------------------------------------
def oracle_profile(h, lo, c, v, bins, mode):
    """(prices, volumes) of one window, straight from the written rules."""
    glo, ghi = float(lo.min()), float(h.max())
    n = c.shape[0]
    vmax = float(v.max())
    q = math.ldexp(1.0, math.frexp(n * vmax)[1] - 52) if vmax > 0 else 1.0
    edges = np.linspace(glo, ghi, bins + 1)
    prices = (edges[:-1] + edges[1:]) / 2
    vols = np.zeros(bins)
    if ghi == glo:  # documented: everything in the first bin
        vols[0] = (np.rint(v / q) * q).sum()
    elif mode == "close":
        vols = np.histogram(c, edges, weights=np.rint(v / q) * q)[0]
    else:
        a = np.clip(np.digitize(lo, edges) - 1, 0, bins - 1)
        b = np.clip(np.digitize(h, edges) - 1, 0, bins - 1)
        for i in range(n):
            vols[a[i]:b[i] + 1] += np.rint(v[i] / (b[i] - a[i] + 1) / q) * q
    return prices, vols


def oracle_peaks(x, prominence, distance):
    """``scipy.signal.find_peaks(x, prominence=, distance=)`` with the documented tie rule.

    scipy visits peaks by ``numpy.argsort`` of their heights, which is not stable, so which of
    two exactly equal peaks closer than ``distance`` survives depends on numpy's sort. The
    written rule visits equal heights right-most first (a stable sort): scipy's local maxima,
    then its distance loop with a stable sort, then its prominences.
    """
    peaks = find_peaks(x)[0]
    keep = np.ones(peaks.size, bool)
    for j in np.argsort(x[peaks], kind="stable")[::-1]:
        if keep[j]:
            near = np.abs(peaks - peaks[j]) < distance
            near[j] = False
            keep[near] = False
    peaks = peaks[keep]
    if peaks.size:
        peaks = peaks[peak_prominences(x, peaks)[0] >= prominence]
    return peaks


def oracle_levels(prices, vols, va_frac=0.70, hvn_pct=75.0, prominence=0.05, distance=3):
    """dict(poc, poc_volume, vah, val, hvns, peaks) of one profile."""
    top = vols.max()
    if not top > 0:
        return {"poc": np.nan, "poc_volume": 0.0, "vah": np.nan, "val": np.nan, "hvns": [],
                "peaks": []}
    poc = int(np.argmax(vols))
    lo_i = hi_i = poc
    acc = vols[poc]
    total = vols.sum()
    while acc < va_frac * total and (lo_i > 0 or hi_i < len(vols) - 1):
        lower = vols[lo_i - 1] if lo_i > 0 else None
        upper = vols[hi_i + 1] if hi_i < len(vols) - 1 else None
        if lower is not None and (upper is None or lower > upper):
            lo_i -= 1
            acc += lower
        else:
            hi_i += 1
            acc += upper
    thr = np.percentile(vols[vols > 0], hvn_pct)
    hvns = prices[(vols > 0) & (vols >= thr)]
    pk = oracle_peaks(vols / top, prominence, distance) \
        if prices[0] != prices[-1] else np.array([], int)
    return {"poc": prices[poc], "poc_volume": top, "vah": prices[hi_i], "val": prices[lo_i],
            "hvns": list(hvns), "peaks": list(prices[pk])}


def nearest(levels, ref):
    below = [p for p in levels if p <= ref]
    above = [p for p in levels if p > ref]
    return (below[-1] if below else np.nan), (above[0] if above else np.nan)


def oracle_row(h, lo, c, v, i, lookback, bins, mode, include_current, **kw):
    """The ``SUMMARY`` row of bar ``i``, or None during warm-up."""
    stop = i + 1 if include_current else i
    start = stop - lookback
    if start < 0:
        return None
    prices, vols = oracle_profile(h[start:stop], lo[start:stop], c[start:stop], v[start:stop],
                                  bins, mode)
    L = oracle_levels(prices, vols, **kw)
    hb, ha = nearest(L["hvns"], c[i])
    pb, pa = nearest(L["peaks"], c[i])
    return [L["poc"], L["poc_volume"], L["vah"], L["val"], len(L["hvns"]), hb, ha,
            len(L["peaks"]), pb, pa]


def check_rows(cols, h, lo, c, v, rows, lookback, bins, mode, include_current=False, **kw):
    got = np.column_stack([getattr(cols, name) for name in SUMMARY])
    for i in rows:
        want = oracle_row(h, lo, c, v, i, lookback, bins, mode, include_current, **kw)
        if want is None:
            assert np.isnan(got[i]).all(), i
        else:
            np.testing.assert_array_equal(got[i], np.array(want, float),
                                          err_msg=f"bar {i} ({mode}, {SUMMARY})")


def random_bars(n, seed, tick=None, zero_frac=0.05):
    """A random walk with wicks, some zero volumes and (``tick``) prices on a coarse grid, so
    that equal bins, plateaus and exact ties occur."""
    rng = np.random.default_rng(seed)
    c = 100 + np.cumsum(rng.normal(0, 0.5, n))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) + rng.exponential(0.3, n)
    lo = np.minimum(o, c) - rng.exponential(0.3, n)
    if tick:
        c, o = np.round(c / tick) * tick, np.round(o / tick) * tick
        h = np.maximum(np.ceil(h / tick) * tick, np.maximum(o, c))
        lo = np.minimum(np.floor(lo / tick) * tick, np.minimum(o, c))
    v = rng.lognormal(3, 1, n)
    v[rng.random(n) < zero_frac] = 0.0
    if tick:
        v = np.round(v)  # integer volumes: many exactly equal bins
    return h, lo, c, v


# -- kernels vs the oracle -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("seed", "tick", "bins", "lookback"),
                         [(1, None, 80, 200), (2, 0.5, 24, 40), (3, 1.0, 10, 15),
                          (4, None, 7, 30)])
def test_rolling_levels_match_the_oracle_on_random_data(mode, seed, tick, bins, lookback):
    h, lo, c, v = random_bars(700, seed, tick)
    for inc in (False, True):
        cols = volume_profile(h, lo, c, v, lookback, bins, mode, include_current=inc)
        check_rows(cols, h, lo, c, v, range(0, 700, 3), lookback, bins, mode, inc)


@pytest.mark.parametrize("mode", MODES)
def test_other_parameters_match_the_oracle(mode):
    h, lo, c, v = random_bars(400, 5, 0.5)
    kw = {"va_frac": 0.5, "hvn_pct": 90.0, "prominence": 0.2, "distance": 5}
    cols = volume_profile(h, lo, c, v, 60, 30, mode, kw["va_frac"], hvn_pct=kw["hvn_pct"],
                          prominence=kw["prominence"], distance=kw["distance"])
    check_rows(cols, h, lo, c, v, range(60, 400, 2), 60, 30, mode, **kw)


@pytest.mark.parametrize("mode", MODES)
def test_rolling_levels_match_the_oracle_on_real_data(mode, real_bars):
    b = real_bars
    cols = volume_profile(b.high, b.low, b.close, b.volume, mode=mode)  # 200 bars, 80 bins
    rows = np.r_[0, 199, 200, 201, np.linspace(202, len(b) - 1, 300).astype(int)]
    check_rows(cols, b.high, b.low, b.close, b.volume, rows, 200, 80, mode)


@pytest.mark.parametrize("mode", MODES)
def test_window_profile_matches_the_oracle(mode, real_bars):
    b = real_bars
    for start in (0, 12_345, 40_000, len(b) - 200):
        p = window_profile(b.high, b.low, b.close, b.volume, start, start + 200, mode=mode)
        sl = slice(start, start + 200)
        prices, vols = oracle_profile(b.high[sl], b.low[sl], b.close[sl], b.volume[sl], 80,
                                      mode)
        L = oracle_levels(prices, vols)
        np.testing.assert_array_equal(p.prices, prices)
        np.testing.assert_array_equal(p.volumes, vols)
        assert (p.poc, p.poc_volume, p.vah, p.val) == (L["poc"], L["poc_volume"], L["vah"],
                                                        L["val"])
        assert list(p.hvns) == L["hvns"] and list(p.peaks) == L["peaks"]
        assert p.val <= p.poc <= p.vah and p.low == b.low[sl].min() and p.high == b.high[sl].max()
        assert abs(vols.sum() - b.volume[sl].sum()) < 1e-9 * b.volume[sl].sum()


def test_peaks_kernel_is_scipy_find_peaks():
    rng = np.random.default_rng(7)
    idx, rem, order = (np.empty(64, np.int64), np.empty(64, np.bool_), np.empty(64, np.int64))
    for trial in range(400):
        x = rng.random(rng.integers(1, 64))
        ties = trial % 2 == 1
        if ties:
            x = np.round(x * 4) / 4  # plateaus and equal heights
        x[rng.random(x.size) < 0.3] = 0.0
        for prom, dist in ((0.05, 3), (0.0, 1), (0.3, 2), (0.1, 7)):
            n = find_peaks_nb(x, prom, dist, True, idx, rem, order)
            want = oracle_peaks(x, prom, dist)
            np.testing.assert_array_equal(idx[:n], want, err_msg=f"{x!r} {prom} {dist}")
            if not ties:  # no equal heights: scipy itself, whatever its sort does
                np.testing.assert_array_equal(
                    idx[:n], find_peaks(x, prominence=prom, distance=dist)[0])


# -- rolling == from scratch, per bar == whole array, causality ------------------------------------
def from_scratch(h, lo, c, v, lookback, bins, mode):
    """Every bar's row with a fresh state, so every bar rebuilds its profile."""
    n = c.shape[0]
    out = np.empty((n, N_OUT))
    for i in range(n):
        vols, state = rolling_state_nb(bins)
        rolling_profile_nb(h, lo, c, v, i, i + 1, lookback, bins, CODE[mode], False, 0.7, 75.0,
                           0.05, 3, vols, state, out[i:i + 1])
        assert state[5] == 0  # no incremental step
    return out


@pytest.mark.parametrize("mode", MODES)
def test_incremental_equals_from_scratch_on_real_data(mode, real_bars):
    b = real_bars.slice(0, 30_000)
    h, lo, c, v = b.high, b.low, b.close, b.volume
    cols = volume_profile(h, lo, c, v, mode=mode)
    whole = np.column_stack([getattr(cols, k) for k in SUMMARY])
    assert cols.updates > 5 * cols.rebuilds > 0  # mostly one bar out, one in
    np.testing.assert_array_equal(whole, from_scratch(h, lo, c, v, 200, 80, mode))
    # the kernel called bar by bar, and in uneven chunks, with state carried over
    vols, state = rolling_state_nb(80)
    chunked = np.empty_like(whole)
    edges = [0, 1, 150, 199, 200, 201, 777, 5000, 5001, 29_999, 30_000]
    for a, z in itertools.pairwise(edges):
        rolling_profile_nb(h, lo, c, v, a, z, 200, 80, CODE[mode], False, 0.7, 75.0, 0.05, 3,
                           vols, state, chunked[a:z])
    np.testing.assert_array_equal(chunked, whole)
    assert (int(state[4]), int(state[5])) == (cols.rebuilds, cols.updates)


def events(bars: Bars):
    close_ns = bars.ts_open_ns + bars.tf_ns
    for i in range(len(bars)):
        yield BarClosed(ts_event_ns=int(close_ns[i]), ts_init_ns=int(close_ns[i]),
                        symbol=bars.symbol, timeframe=bars.timeframe, seq=i,
                        open=float(bars.open[i]), high=float(bars.high[i]),
                        low=float(bars.low[i]), close=float(bars.close[i]),
                        volume=float(bars.volume[i]))


def live_handler(bars: Bars, params: VolumeProfileParams, upto: int | None = None):
    """Bars appended one by one to a live store and published on a real bus."""
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns, capacity=64)
    feats = FeatureStore(store)
    h = VolumeProfileHandler("vp", params, store, feats)
    bus = Bus()
    bus.subscribe(BarClosed, h.on_bar_closed, priority=10, name="feature:vp")
    for ev in events(bars if upto is None else bars.slice(0, upto)):
        store.append(int(bars.ts_open_ns[ev.seq]), ev.open, ev.high, ev.low, ev.close, ev.volume)
        bus.publish(ev)
    return h, feats


@pytest.mark.parametrize("mode", MODES)
def test_handler_per_bar_on_a_bus_equals_precompute_and_the_array_api(mode, real_bars):
    b = real_bars.slice(20_000, 26_000)
    params = VolumeProfileParams(mode=mode)
    h, feats = live_handler(b, params)
    pre_store = BarStore.preloaded(b)
    pre_feats = FeatureStore(pre_store)
    pre = VolumeProfileHandler("vp", params, pre_store, pre_feats)
    pre.precompute()
    assert pre.gmm.fits == 0 and h.gmm.fits == 0  # no GMM per bar
    cols = volume_profile(b.high, b.low, b.close, b.volume, mode=mode)
    for name in SUMMARY:
        np.testing.assert_array_equal(feats.column(f"vp_{name}"), getattr(cols, name), name)
        np.testing.assert_array_equal(pre_feats.backing(f"vp_{name}")[:len(b)],
                                      getattr(cols, name), name)
    assert np.isnan(cols.poc[:200]).all() and not np.isnan(cols.poc[200:]).any()
    assert h.warmup_bars == 200 and h.rebuilds == cols.rebuilds


def test_handler_catches_up_missed_bars_and_refuses_old_ones(real_bars):
    b = real_bars.slice(0, 700)
    store = BarStore.preloaded(b)
    feats = FeatureStore(store)
    h = VolumeProfileHandler("vp", VolumeProfileParams(lookback=50, bins=20), store, feats)
    evs = list(events(b))
    for _ in range(100):
        store.reveal_next()
    h.on_bar_closed(evs[99])  # bars 0..98 computed from the store first
    for ev in evs[100:]:
        store.reveal_next()
        h.on_bar_closed(ev)
    cols = volume_profile(b.high, b.low, b.close, b.volume, 50, 20)
    np.testing.assert_array_equal(feats.column("vp_poc"), cols.poc)
    with pytest.raises(DataError, match="arrived after"):
        h.on_bar_closed(evs[500])
    with pytest.raises(DataError, match="arrived after"):
        h.on_bar_closed(evs[-1])  # the same bar twice


@pytest.mark.parametrize("mode", MODES)
def test_prefix_causality(mode, real_bars):
    b = real_bars.slice(0, 3000)
    h, lo, c, v = b.high, b.low, b.close, b.volume
    for inc in (False, True):
        full = volume_profile(h, lo, c, v, 200, 80, mode, include_current=inc)
        for k in (1, 199, 200, 201, 1234, 2999):
            cut = volume_profile(h[:k], lo[:k], c[:k], v[:k], 200, 80, mode, include_current=inc)
            for name in SUMMARY:
                np.testing.assert_array_equal(getattr(cut, name), getattr(full, name)[:k],
                                              f"{name} k={k}")
    # the live handler truncated at k agrees too, and so does profile_at
    hk, fk = live_handler(b, VolumeProfileParams(mode=mode), upto=1500)
    np.testing.assert_array_equal(fk.column("vp_vah"),
                                  volume_profile(h, lo, c, v, mode=mode).vah[:1500])
    p = hk.profile_at(1499)
    assert (p.start, p.stop) == (1299, 1499)
    assert p.poc == fk.value("vp_poc", 1499)


# -- degenerate windows ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_all_bars_at_one_price(mode):
    n = 30
    x = np.full(n, 123.25)
    v = np.arange(1.0, n + 1)
    cols = volume_profile(x, x, x, v, 10, 8, mode)
    assert (cols.poc[10:] == 123.25).all() and (cols.vah[10:] == 123.25).all()
    assert (cols.val[10:] == 123.25).all() and (cols.n_hvn[10:] == 1).all()
    assert (cols.n_peaks[10:] == 0).all() and (cols.hvn_below[10:] == 123.25).all()
    assert np.isnan(cols.hvn_above[10:]).all()
    p = window_profile(x, x, x, v, 0, 10, bins=8, mode=mode)
    assert (p.prices == 123.25).all() and p.volumes[0] == v[:10].sum()
    assert (p.volumes[1:] == 0).all() and p.hvns == (123.25,) and p.peaks == ()
    assert p.nodes().n_components == 0 and p.lvns() == () and p.two_peak_means() == ()


@pytest.mark.parametrize("mode", MODES)
def test_zero_volume_windows(mode):
    h, lo, c, v = random_bars(120, 9)
    v[30:80] = 0.0
    cols = volume_profile(h, lo, c, v, 20, 10, mode)
    z = slice(50, 81)  # windows [i-20, i) inside the silent stretch
    assert np.isnan(cols.poc[z]).all() and (cols.poc_volume[z] == 0).all()
    assert np.isnan(cols.vah[z]).all() and np.isnan(cols.val[z]).all()
    assert (cols.n_hvn[z] == 0).all() and (cols.n_peaks[z] == 0).all()
    assert np.isnan(cols.hvn_below[z]).all() and np.isnan(cols.peak_above[z]).all()
    assert not np.isnan(cols.poc[81:]).any()  # and it recovers
    check_rows(cols, h, lo, c, v, range(120), 20, 10, mode)
    p = window_profile(h, lo, c, v, 40, 70, mode=mode)
    assert math.isnan(p.poc) and p.poc_volume == 0 and p.hvns == () and p.peaks == ()
    assert p.lvns() == ()
    s = trade_setup(p, "long", 100.0, 1.0)
    assert s.targets == (104.0,) and s.target_sources == ("fallback",)


def test_bad_inputs_are_refused():
    h, lo, c, v = random_bars(50, 1)
    with pytest.raises(ValueError, match="mode"):
        volume_profile(h, lo, c, v, mode="precise")
    with pytest.raises(ValueError, match="lookback=0"):
        volume_profile(h, lo, c, v, lookback=0)
    with pytest.raises(ValueError, match="negative volume"):
        volume_profile(h, lo, c, -v)
    c2 = c.copy()
    c2[3] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        volume_profile(h, lo, c2, v)
    with pytest.raises(ValueError, match="empty"):
        window_profile(h, lo, c, v, 10, 10)


# -- GMM nodes -------------------------------------------------------------------------------------
def two_humps(bins=80, a=20, b=58, width=4.0):
    prices = 100.0 + np.arange(bins)
    j = np.arange(bins)
    vols = (1000 * np.exp(-0.5 * ((j - a) / width) ** 2)
            + 600 * np.exp(-0.5 * ((j - b) / width) ** 2))
    vols[vols < 1] = 0.0
    return prices, vols


def test_lvn_between_two_humps():
    prices, vols = two_humps()
    nodes = fit_nodes(prices, vols)
    assert nodes.n_components >= 2
    assert len(nodes.lvns) == 1 and 130 <= nodes.lvns[0] <= 148  # in the gap (bins 30..48)
    lo_mean, hi_mean = nodes.two_peak_means
    assert abs(lo_mean - 120) < 1.5 and abs(hi_mean - 158) < 1.5
    assert nodes.curve.max() == pytest.approx(vols.max())
    assert np.argmax(nodes.curve) in range(18, 23)


def test_no_lvn_in_a_single_hump():
    prices, vols = two_humps(b=20)
    assert fit_nodes(prices, vols).lvns == ()


def fields(n: GmmNodes):
    return (n.n_components, n.means, n.stds, n.weights, n.bic, n.lvns, n.two_peak_means,
            n.curve.tobytes(), n.mixture_curve.tobytes())


def test_gmm_is_deterministic(real_bars):
    b = real_bars
    p = window_profile(b.high, b.low, b.close, b.volume, 50_000, 50_200, mode="range")
    first = fit_nodes(p.prices, p.volumes)
    assert fields(fit_nodes(p.prices, p.volumes)) == fields(first)
    cache = GmmCache()
    assert fields(cache.get("w", p.prices, p.volumes)) == fields(first)
    assert cache.get("w", p.prices, p.volumes) is cache.get("w", p.prices, p.volumes)
    assert cache.fits == 1
    assert fields(GmmCache().get("w", p.prices, p.volumes)) == fields(first)  # a fresh cache
    assert p.lvns() == first.lvns and p.two_peak_means() == first.two_peak_means


def test_gmm_runs_only_on_request_and_is_cached_per_window(real_bars):
    b = real_bars.slice(0, 1000)
    store = BarStore.preloaded(b)
    for _ in range(1000):
        store.reveal_next()
    feats = FeatureStore(store)
    h = VolumeProfileHandler("vp", VolumeProfileParams(mode="range"), store, feats)
    h.precompute()
    assert h.gmm.fits == 0
    s1 = h.trade_setup(700, "long", float(b.close[700]), 100.0, stop_atr_mult=4.5)
    s2 = h.trade_setup(700, "short", float(b.close[700]), 100.0, stop_atr_mult=4.5)
    h.target_candidates(700, "long", float(b.close[700]))
    assert h.gmm.fits == 1 and s1.profile.two_peak_means() == s2.profile.two_peak_means()
    h.profile_at(701).lvns()
    assert h.gmm.fits == 2


# -- trade setup -----------------------------------------------------------------------------------
def made_profile(peaks, peak_vols, poc, vah, val, two=(), bins=40):
    prices = 90.0 + np.arange(bins) * 0.5
    vols = np.zeros(bins)
    peak_bins = []
    for p, pv in zip(peaks, peak_vols, strict=True):
        j = int(np.argmin(abs(prices - p)))
        vols[j] = pv
        peak_bins.append(j)
    nodes = GmmNodes(2 if two else 0, (), (), (), math.nan, (), tuple(two), np.zeros(bins),
                     np.zeros(bins))
    return WindowProfile(start=0, stop=200, mode="close", low=prices[0], high=prices[-1],
                         prices=prices, volumes=vols, poc=poc, poc_volume=float(vols.max()),
                         vah=vah, val=val, hvn_threshold=1.0, hvns=(), peaks=tuple(peaks),
                         peak_bins=tuple(peak_bins), _memo={"nodes": nodes})


def test_trade_setup_stop_is_k_atr_and_targets_follow_the_priority():
    p = made_profile(peaks=[95.0, 101.0, 104.5, 106.0], peak_vols=[9, 5, 3, 7], poc=102.0,
                     vah=103.0, val=96.5, two=(97.0, 105.0))
    long = trade_setup(p, "long", 100.0, 2.0)
    assert long.stop == 100.0 - 4.5 * 2.0 and long.stop_distance_pct == pytest.approx(9.0)
    assert long.stop_from_atr and long.target == 105.0
    # the higher GMM mean, the volume peaks beyond 0.5 % by bin volume, POC, VAH, fallback
    assert long.targets == (105.0, 106.0, 101.0, 104.5, 102.0, 103.0, 104.0)
    assert long.target_sources == ("gmm_peak", "volume_peak", "volume_peak", "volume_peak",
                                   "poc", "vah", "fallback")
    short = trade_setup(p, "short", 100.0, 2.0)
    assert short.stop == 100.0 + 9.0
    assert short.targets == (97.0, 95.0, 96.5, 96.0)
    assert short.target_sources == ("gmm_peak", "volume_peak", "val", "fallback")
    # within 0.5 % of the entry nothing qualifies but the fallback
    near = made_profile(peaks=[100.2], peak_vols=[5], poc=100.4, vah=100.4, val=99.6,
                        two=(99.8, 100.3))
    assert ranked_targets(near, "long", 100.0) == ((104.0, "fallback"),)
    assert ranked_targets(near, "short", 100.0) == ((96.0, "fallback"),)
    # no usable ATR: 1 % stop
    s = trade_setup(near, "short", 100.0, float("nan"))
    assert s.stop == 101.0 and not s.stop_from_atr
    with pytest.raises(ValueError, match="side"):
        trade_setup(near, "buy", 100.0, 1.0)  # type: ignore[arg-type]


def test_handler_trade_setup_uses_its_own_mode_everywhere(real_bars):
    b = real_bars.slice(0, 800)
    store = BarStore.preloaded(b)
    for _ in range(800):
        store.reveal_next()
    h = VolumeProfileHandler("vp", VolumeProfileParams(mode="range"), store, FeatureStore(store))
    entry = float(b.close[600])
    s = h.trade_setup(600, "long", entry, 150.0, stop_atr_mult=3.0)
    direct = window_profile(b.high, b.low, b.close, b.volume, 400, 600, mode="range")
    np.testing.assert_array_equal(s.profile.volumes, direct.volumes)
    assert s.stop == entry - 3.0 * 150.0 and s.seq == 600  # the caller's (signal rule's) stop
    assert h.target_candidates(600, "long", entry) == s.targets
    assert all(t > entry * 1.005 for t in s.targets)
    assert s.target_sources[-1] == "fallback" and s.targets[-1] == entry * 1.04


def test_array_api_is_reexported():
    assert indicators.volume_profile is volume_profile
    assert indicators.window_profile is window_profile


def test_the_profile_is_split_into_modules_found_by_name():
    """No module is shadowed by a function of its name, and the entry point still resolves."""
    import importlib

    from engine.registry import FEATURE_HANDLERS, Registry
    from indicators.profile import columns, handler, targets, window

    assert columns.volume_profile is volume_profile and window.window_profile is window_profile
    assert targets.trade_setup is trade_setup
    assert handler.VolumeProfileHandler is VolumeProfileHandler
    assert Registry.installed(FEATURE_HANDLERS).load("volume_profile") is VolumeProfileHandler
    for name in ("columns", "window", "targets", "handler"):
        mod = importlib.import_module(f"indicators.profile.{name}")
        assert getattr(indicators.profile, name) is mod  # a module, not a function
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("indicators.volume_profile")


def test_the_stop_is_the_signal_rules_setting_only():
    """One setting, one trade setup: the profile's stop settings never reached a run, so they
    are refused with the setting to use instead."""
    from engine.config import validate_params
    from engine.errors import ConfigError

    for key in ("stop_atr_mult", "stop_fallback_pct"):
        with pytest.raises(ConfigError, match=r"signals\.params\.stop_atr_mult"):
            validate_params(VolumeProfileParams, {key: 3.0}, "features[vp]")
    assert "stop_atr_mult" not in VolumeProfileParams.model_fields
    with pytest.raises(TypeError, match="stop_atr_mult"):
        VolumeProfileHandler.trade_setup(None, 1, "long", 1.0, 1.0)  # type: ignore[call-arg]
