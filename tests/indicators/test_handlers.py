"""The indicator bus handlers: per-bar path == precompute, prefix causality, params, contract.

Three ways to produce every column, which must agree to 1e-9 with equal NaN positions:

- *per bar*: bars appended one by one to a live ``BarStore`` (``append``) and pushed through
  ``on_bar_closed`` (the live path, the reference);
- *precompute*: the whole-array kernels on a preloaded store (``BarStore.preloaded``), read
  back bar by bar as the store reveals them (``reveal_next``), as a backtest does;
- either of them on data *truncated* at bar k (prefix / causality test).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from engine.bars import Bars, BarStore
from engine.errors import ConfigError, DataError
from engine.events import BarClosed
from engine.features import FeatureStore
from engine.ports import FeatureHandler
from engine.registry import FEATURE_HANDLERS, Registry
from indicators.handlers import (
    AtrHandler,
    LinregHandler,
    MultiStochasticHandler,
    SlopeRuleHandler,
    StochasticHandler,
    warm_up_kernels,
)

REG = Registry.installed(FEATURE_HANDLERS)
OURS = {
    "stochastic": StochasticHandler,
    "multi_stochastic": MultiStochasticHandler,
    "atr": AtrHandler,
    "linreg": LinregHandler,
    "slope_rule": SlopeRuleHandler,
}
# (kind, params): defaults plus the non-default variants
CASES = [
    ("stochastic", {}),
    ("stochastic", {"k": 5, "k_smooth": 1, "d_smooth": 4}),
    ("multi_stochastic", {"variant": "model"}),
    ("multi_stochastic", {"variant": "chart"}),
    ("atr", {"method": "wilder"}),
    ("atr", {"method": "sma", "n": 20}),
    ("linreg", {}),
    ("linreg", {"n": 2}),
    ("slope_rule", {}),
]
IDS = [f"{k}-{'-'.join(map(str, p.values())) or 'default'}" for k, p in CASES]
N = 1500
CUTS = (0, 5, 67, 68, 150, 777, N - 2)


def events(bars: Bars):
    close_ns = bars.ts_open_ns + bars.tf_ns
    for i in range(len(bars)):
        yield BarClosed(ts_event_ns=int(close_ns[i]), ts_init_ns=int(close_ns[i]),
                        symbol=bars.symbol, timeframe=bars.timeframe, seq=i,
                        open=float(bars.open[i]), high=float(bars.high[i]),
                        low=float(bars.low[i]), close=float(bars.close[i]),
                        volume=float(bars.volume[i]))


def make(kind, params, store):
    cls = OURS[kind]
    feats = FeatureStore(store)
    return cls("f", cls.Params(**params), store, feats), feats


def per_bar(kind, params, bars):
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns, capacity=64)  # forces growth
    h, feats = make(kind, params, store)
    for ev in events(bars):
        store.append(int(bars.ts_open_ns[ev.seq]), ev.open, ev.high, ev.low, ev.close, ev.volume)
        h.on_bar_closed(ev)
    return {c: feats.column(c).copy() for c in h.outputs}


def precomputed(kind, params, bars):
    store = BarStore.preloaded(bars)
    h, feats = make(kind, params, store)
    h.precompute()
    cols = {c: np.empty(len(bars)) for c in h.outputs}
    for seq in range(len(bars)):  # read as a backtest does: one revealed bar at a time
        assert store.reveal_next() == seq
        for c in h.outputs:
            cols[c][seq] = feats.value(c, seq)
    return cols


def equal(a, b, where):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"NaN positions {where}")
    m = ~np.isnan(a)
    np.testing.assert_allclose(a[m], b[m], rtol=0, atol=1e-9, err_msg=where)


@pytest.fixture(scope="module")
def sample(real_bars) -> Bars:
    return real_bars.slice(40_000, 40_000 + N)


@pytest.mark.real_data
@pytest.mark.parametrize(("kind", "params"), CASES, ids=IDS)
def test_precompute_equals_per_bar(kind, params, sample):
    a, b = per_bar(kind, params, sample), precomputed(kind, params, sample)
    assert a.keys() == b.keys()
    for col in a:
        equal(a[col], b[col], f"{kind}:{col}")
        assert np.isfinite(a[col][-100:]).all(), f"{kind}:{col} has no values"


@pytest.mark.real_data
@pytest.mark.parametrize(("kind", "params"), CASES, ids=IDS)
def test_prefix_causality(kind, params, sample):
    """Output at bar k is the same whether the data ends at k or goes on, on both paths."""
    full_bar = per_bar(kind, params, sample)
    full_pre = precomputed(kind, params, sample)
    for k in CUTS:
        cut = sample.slice(0, k + 1)
        for got, full in ((per_bar(kind, params, cut), full_bar),
                          (precomputed(kind, params, cut), full_pre)):
            for col, v in got.items():
                equal(v, full[col][: k + 1], f"{kind}:{col} cut at {k}")


@pytest.mark.real_data
@pytest.mark.parametrize(("kind", "params"), CASES, ids=IDS)
def test_warmup_bars_is_the_first_value(kind, params, sample):
    h, _ = make(kind, params, BarStore.preloaded(sample))
    cols = precomputed(kind, params, sample)
    first = max(int(np.argmax(~np.isnan(v))) for v in cols.values())
    assert h.warmup_bars == first


def test_column_names_and_the_feature_handler_contract():
    store = BarStore("BTC-USDT", "15m", 900 * 10**9)
    want = {
        "stochastic": ("f_k", "f_d"),
        "multi_stochastic": ("f_s9", "f_s14", "f_s40", "f_s60"),
        "atr": ("f_atr",),
        "linreg": ("f_slope", "f_intercept", "f_r2", "f_std"),
        "slope_rule": ("f_slope",),
    }
    for kind, cls in OURS.items():
        h, feats = make(kind, {}, store)
        assert h.outputs == want[kind] and set(feats.names()) == set(want[kind])
        assert isinstance(h.Params(), cls.Params)
        for attr in ("Params", "outputs", "warmup_bars", "on_bar_closed", "precompute"):
            assert hasattr(h, attr), f"{kind} lacks {attr} of {FeatureHandler.__name__}"
    assert make("multi_stochastic", {}, store)[0].warmup_bars == 68
    assert make("multi_stochastic", {"variant": "chart"}, store)[0].warmup_bars == 0
    assert make("atr", {"method": "sma"}, store)[0].warmup_bars == 13


def test_registered_under_their_entry_point_names():
    for name, cls in OURS.items():
        assert REG.load(name) is cls


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (StochasticHandler, {"k": 0}, "greater than or equal to 1"),
        (StochasticHandler, {"k": 14, "smooth": 3}, "Extra inputs are not permitted"),
        (MultiStochasticHandler, {"variant": "display"}, "'model' or 'chart'"),
        (AtrHandler, {"method": "ema"}, "'wilder' or 'sma'"),
        (LinregHandler, {"n": 1}, "greater than or equal to 2"),
        (SlopeRuleHandler, {"n": 1.5}, "valid integer"),
    ],
)
def test_params_are_validated(cls, params, match):
    with pytest.raises(ValidationError, match=match):
        cls.Params(**params)


def test_params_are_frozen():
    p = StochasticHandler.Params()
    with pytest.raises(ValidationError):
        p.k = 5  # type: ignore[misc]


def test_two_handlers_with_one_id_are_refused():
    store = BarStore("BTC-USDT", "15m", 900 * 10**9)
    feats = FeatureStore(store)
    AtrHandler("x", AtrHandler.Params(), store, feats)
    with pytest.raises(ConfigError, match="produced twice"):
        AtrHandler("x", AtrHandler.Params(), store, feats)


@pytest.mark.real_data
def test_missed_bars_are_replayed_from_the_store_and_old_bars_refused(sample):
    """A handler that starts late (history already in the store) catches up on its first bar."""
    bars = sample.slice(0, 300)
    want = per_bar("stochastic", {}, bars)
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns)
    h, feats = make("stochastic", {}, store)
    evs = list(events(bars))
    for ev in evs:
        store.append(int(bars.ts_open_ns[ev.seq]), ev.open, ev.high, ev.low, ev.close, ev.volume)
        if ev.seq >= 200:  # bars 0..199 never reached the handler
            h.on_bar_closed(ev)
    for col in h.outputs:
        equal(feats.column(col), want[col], col)
    with pytest.raises(DataError, match="seq 150 arrived after seq 299"):
        h.on_bar_closed(evs[150])


def test_warm_up_kernels_runs():
    warm_up_kernels()
