"""Training features == live features, bit for bit, and both == the engine's own handlers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.bars import BarStore
from engine.features import FeatureStore
from indicators.handlers import MultiStochasticHandler, MultiStochasticParams
from models.features import FeatureSpec, FeatureStream, build_features

LAYOUTS = [FeatureSpec(), FeatureSpec(include_current_bar=True),
           FeatureSpec(window_bars=40, vp_lookback_bars=60, vp_bins=24, vp_mode="range")]


def _stream(bars, spec):
    """Per-bar path: a growing BarStore fed one closed bar at a time (as live)."""
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns, capacity=64)
    fs = FeatureStream(spec)
    s60 = np.full((len(bars), spec.window_bars), np.nan, dtype=np.float32)
    vp = np.full((len(bars), spec.vp_bins), np.nan, dtype=np.float32)
    for i in range(len(bars)):
        store.append(int(bars.ts_open_ns[i]), float(bars.open[i]), float(bars.high[i]),
                     float(bars.low[i]), float(bars.close[i]), float(bars.volume[i]))
        fs.push(float(bars.high[i]), float(bars.low[i]), float(bars.close[i]))
        x = fs.current(store, i)
        if x is not None:
            s60[i], vp[i] = x
    return s60, vp


@pytest.mark.parametrize("spec", LAYOUTS, ids=["reference", "current_bar", "custom_range"])
def test_batch_features_equal_per_bar_features(real_slice, spec):
    batch = build_features(real_slice, spec)
    s60, vp = _stream(real_slice, spec)
    valid = np.isfinite(s60).all(axis=1) & np.isfinite(vp).all(axis=1)
    np.testing.assert_array_equal(valid, batch.valid)
    assert valid.sum() > len(real_slice) - spec.first_valid_bar - 5
    # Bit-identical, not merely close: training and inference see the same numbers.
    np.testing.assert_array_equal(s60[valid], batch.s60[valid])
    np.testing.assert_array_equal(vp[valid], batch.vp[valid])
    assert not batch.valid[: spec.first_valid_bar].any()
    assert batch.valid[spec.first_valid_bar]


def test_s60_is_the_engine_handlers_model_variant_on_a_0_1_scale(real_slice):
    """The window values are the multi_stochastic handler's s60 column (0-100) / 100."""
    store = BarStore.preloaded(real_slice)
    feats = FeatureStore(store)
    h = MultiStochasticHandler("st", MultiStochasticParams(variant="model"), store, feats)
    h.precompute()
    store.count = len(real_slice)
    s60_col = feats.column("st_s60")
    spec = FeatureSpec()
    fs = build_features(real_slice, spec)
    i = 900
    expect = (s60_col[i - spec.window_bars : i] / 100.0).astype(np.float32)  # bars [i-100, i)
    np.testing.assert_array_equal(fs.s60[i], expect)
    assert 0.0 <= fs.s60[fs.valid].min() and fs.s60[fs.valid].max() <= 1.0


def test_volume_profile_is_the_reference_close_histogram(real_slice):
    """Row i: the 80-bin close-only histogram of bars [i-200, i) over their low..high, / max.

    numpy.histogram (the reference bot's) is the oracle; the kernel's floor((p-lo)/width) binning
    may put a close lying within rounding of a bin edge in the neighbouring bin, so allow a few
    windows in a thousand to differ."""
    fs = build_features(real_slice, FeatureSpec())
    b = real_slice
    same = 0
    rows = range(200, len(b), 3)
    for i in rows:
        w = slice(i - 200, i)
        edges = np.linspace(b.low[w].min(), b.high[w].max(), 81)
        h, _ = np.histogram(b.close[w], bins=edges, weights=b.volume[w])
        same += np.allclose(fs.vp[i], h / h.max(), rtol=0, atol=1e-6)
    assert same >= 0.995 * len(rows)


def test_features_never_read_the_sample_bar_in_the_reference_layout(real_slice):
    """Changing bar i (and later bars) leaves sample i unchanged when windows end at i-1."""
    spec = FeatureSpec()
    i = 700
    base = build_features(real_slice.slice(0, i + 1), spec)
    bumped_close = real_slice.close[: i + 1].copy()
    bumped_close[i] *= 1.05
    bumped = type(real_slice).from_columns(
        real_slice.symbol, real_slice.timeframe, real_slice.tf_ns, real_slice.ts_open_ns[: i + 1],
        real_slice.open[: i + 1], np.maximum(real_slice.high[: i + 1], bumped_close),
        real_slice.low[: i + 1], bumped_close, real_slice.volume[: i + 1] * 3)
    other = build_features(bumped, spec)
    np.testing.assert_array_equal(base.s60[i], other.s60[i])
    np.testing.assert_array_equal(base.vp[i], other.vp[i])


def test_whole_real_history_builds(real_bars):
    """Every bar of the real history from the first valid one (``make bench`` times it)."""
    spec = FeatureSpec()
    fs = build_features(real_bars, spec)
    assert fs.valid.sum() > 68_000
    assert fs.valid[spec.first_valid_bar:].mean() > 0.999


def test_stream_refuses_skipped_bars(real_slice):
    spec = FeatureSpec()
    store = BarStore.preloaded(real_slice)
    store.count = 300
    fs = FeatureStream(spec)
    fs.push(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="push every closed bar"):
        fs.current(store, 250)

