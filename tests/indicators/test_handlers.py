"""Every installed feature handler: batch precompute == per-bar path, and causality (prefix).

Parametrised over the ``tradebot.feature_handlers`` entry points, so a new handler is covered
the day it is registered.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bars import BarStore
from engine.events import BarClosed
from engine.features import FeatureStore
from engine.registry import FEATURE_HANDLERS, Registry

REG = Registry.installed(FEATURE_HANDLERS)
N = 2500
CUTS = (150, 700, 1999)


def _events(bars):
    close_ns = bars.ts_open_ns + bars.tf_ns
    for i in range(len(bars)):
        yield BarClosed(ts_event_ns=int(close_ns[i]), ts_init_ns=int(close_ns[i]),
                        symbol=bars.symbol, timeframe=bars.timeframe, seq=i,
                        open=float(bars.open[i]), high=float(bars.high[i]),
                        low=float(bars.low[i]), close=float(bars.close[i]),
                        volume=float(bars.volume[i]))


def per_bar(name, bars):
    cls = REG.load(name)
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns, capacity=64)  # forces growth
    feats = FeatureStore(store)
    h = cls(name, cls.Params(), store, feats)
    for ev in _events(bars):
        store.append(int(bars.ts_open_ns[ev.seq]), ev.open, ev.high, ev.low, ev.close, ev.volume)
        h.on_bar_closed(ev)
    return {c: feats.column(c).copy() for c in h.outputs}


def batch(name, bars):
    cls = REG.load(name)
    store = BarStore.preloaded(bars)
    feats = FeatureStore(store)
    h = cls(name, cls.Params(), store, feats)
    h.precompute()
    store.count = len(bars)
    return {c: feats.column(c).copy() for c in h.outputs}


def equal(a, b, where):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=where)
    m = ~np.isnan(a)
    np.testing.assert_allclose(a[m], b[m], rtol=0, atol=1e-9, err_msg=where)


@pytest.fixture(scope="module")
def sample(real_bars):
    return real_bars.slice(40_000, 40_000 + N)


@pytest.mark.parametrize("name", REG.names())
def test_batch_equals_per_bar(name, sample):
    a, b = per_bar(name, sample), batch(name, sample)
    assert a.keys() == b.keys()
    for col in a:
        equal(a[col], b[col], f"{name}:{col}")
        assert np.isfinite(a[col][-200:]).any(), f"{name}:{col} never produces a value"


@pytest.mark.parametrize("name", REG.names())
def test_prefix_causality(name, sample):
    full_batch = batch(name, sample)
    full_bar = per_bar(name, sample)
    for k in CUTS:
        cut = sample.slice(0, k + 1)
        for got, full in ((batch(name, cut), full_batch), (per_bar(name, cut), full_bar)):
            for col, v in got.items():
                equal(v[: k + 1], full[col][: k + 1], f"{name}:{col} cut at {k}")


def test_all_reference_handlers_are_registered():
    assert {"stochastic", "multi_stochastic", "atr", "linreg", "slope_rule"} <= set(REG.names())
