"""Purged time splits: no sample's window (features or label) crosses a split boundary."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from models.features import FeatureSpec, build_features
from models.labels import BarrierLabel, PointReturnLabel, make_labels
from models.splits import SplitSpec, min_purge_bars, time_split

SPECS = [FeatureSpec(), FeatureSpec(include_current_bar=True),
         FeatureSpec(window_bars=40, vp_lookback_bars=300)]


def _reads(i: int, lookback: int, horizon: int) -> tuple[int, int]:
    """Bars a sample at bar i may read: features [i - lookback, i], label (i, i + horizon]."""
    return i - lookback, i + horizon


@pytest.mark.parametrize("spec", SPECS, ids=["reference", "current_bar", "long_profile"])
@pytest.mark.parametrize("folds", [0, 3])
def test_no_sample_window_crosses_a_boundary(spec, folds):
    horizon = 32
    split = time_split(20_000, SplitSpec(walk_forward_folds=folds), spec.lookback_bars, horizon)
    assert split.purge_bars == min_purge_bars(spec.lookback_bars, horizon)
    assert split.purge_bars >= spec.lookback_bars + horizon
    pairs = [(split.train, split.val), (split.val, split.test), *split.folds]
    for before, after in pairs:
        _, last_read = _reads(before.stop - 1, spec.lookback_bars, horizon)
        first_read, _ = _reads(after.start, spec.lookback_bars, horizon)
        assert last_read < first_read, (before, after)
    # parts are contiguous, ordered, non-empty; the test part runs to the end
    assert 0 == split.train.start < split.train.stop < split.val.start < split.val.stop
    assert split.val.stop < split.test.start < split.test.stop == 20_000


def test_lookback_covers_what_the_features_really_read(real_slice):
    """Empirical check of FeatureSpec.lookback_bars: changing every bar older than
    ``i - lookback`` leaves sample i's features unchanged; changing bar ``i - lookback`` does
    not (so the bound is tight)."""
    spec = FeatureSpec()
    i, lb = 1200, spec.lookback_bars
    base = build_features(real_slice, spec)

    def scrambled(upto: int):
        b = real_slice
        close = b.close.copy()
        close[: upto + 1] *= 1.2
        vol = b.volume.copy()
        vol[: upto + 1] *= 7.0
        other = type(b).from_columns(b.symbol, b.timeframe, b.tf_ns, b.ts_open_ns, b.open * 1.2,
                                     np.maximum(b.high, close), np.minimum(b.low, close), close,
                                     vol)
        return build_features(other, spec)

    old = scrambled(i - lb - 1)
    np.testing.assert_array_equal(old.s60[i], base.s60[i])
    np.testing.assert_array_equal(old.vp[i], base.vp[i])
    edge = scrambled(i - lb)
    assert not (np.array_equal(edge.s60[i], base.s60[i])
                and np.array_equal(edge.vp[i], base.vp[i]))


@pytest.mark.parametrize("label", [PointReturnLabel(), BarrierLabel(setup=None)],
                         ids=["point_return", "barrier"])
def test_training_samples_do_not_change_when_validation_bars_change(real_bars, label):
    """Scramble every bar a validation sample can read: train features and labels stay equal."""
    bars = real_bars.slice(20_000, 24_000)
    spec = FeatureSpec()
    split = time_split(len(bars), SplitSpec(train_frac=0.5, val_frac=0.25), spec.lookback_bars,
                       label.horizon_bars)
    first_val_read = split.val.start - spec.lookback_bars
    b = bars
    rng = np.random.default_rng(3)
    close = b.close.copy()
    close[first_val_read:] *= rng.uniform(0.8, 1.2, close.size - first_val_read)
    vol = b.volume.copy()
    vol[first_val_read:] = rng.permutation(vol[first_val_read:])
    other = type(b).from_columns(b.symbol, b.timeframe, b.tf_ns, b.ts_open_ns, b.open,
                                 np.maximum(b.high, close), np.minimum(b.low, close), close, vol)
    tr = slice(split.train.start, split.train.stop)
    f0, f1 = build_features(bars, spec), build_features(other, spec)
    np.testing.assert_array_equal(f0.s60[tr], f1.s60[tr])
    np.testing.assert_array_equal(f0.vp[tr], f1.vp[tr])
    np.testing.assert_array_equal(make_labels(bars, label, spec)[tr],
                                  make_labels(other, label, spec)[tr])
    # and the scramble did reach the validation samples
    va = slice(split.val.start, split.val.stop)
    assert not np.array_equal(f0.vp[va], f1.vp[va])


def test_too_small_purge_is_refused():
    with pytest.raises(ConfigError, match=r"purge_bars=100 is below .* = 232"):
        time_split(10_000, SplitSpec(purge_bars=100), 200, 32)
    assert time_split(10_000, SplitSpec(purge_bars=500), 200, 32).purge_bars == 500


def test_empty_part_is_refused():
    with pytest.raises(ConfigError, match="empty"):
        time_split(600, SplitSpec(), 200, 32)


def test_fractions_must_leave_a_test_part():
    with pytest.raises(ValueError, match="room for the test part"):
        SplitSpec(train_frac=0.8, val_frac=0.2)


def test_part_seqs_keep_only_usable_bars():
    split = time_split(2_000, SplitSpec(), 200, 32)
    usable = np.zeros(2_000, dtype=bool)
    usable[::7] = True
    seqs = split.val.seqs(usable)
    assert seqs.min() >= split.val.start and seqs.max() < split.val.stop
    assert (seqs % 7 == 0).all()
