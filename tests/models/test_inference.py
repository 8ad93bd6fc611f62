"""The CNN handler: batch == per-bar, causal (prefix test), and refusal of mismatched models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from engine.bars import BarStore
from engine.errors import DataError
from engine.events import BarClosed
from engine.features import FeatureStore
from models.card import ModelMismatchError, load_card
from models.features import FeatureSpec
from models.inference import DEFAULT_MODEL, CnnHandler, CnnParams, load_model

CUTS = (260, 611, 1299)
PER_BAR_BARS = 800  # bars run through the (slower) per-bar path: 600 scored samples


def _events(bars):
    close_ns = bars.ts_open_ns + bars.tf_ns
    for i in range(len(bars)):
        yield BarClosed(ts_event_ns=int(close_ns[i]), ts_init_ns=int(close_ns[i]),
                        symbol=bars.symbol, timeframe=bars.timeframe, seq=i,
                        open=float(bars.open[i]), high=float(bars.high[i]),
                        low=float(bars.low[i]), close=float(bars.close[i]),
                        volume=float(bars.volume[i]))


def per_bar(bars, params):
    """The live path: a growing store, one on_bar_closed per bar."""
    store = BarStore(bars.symbol, bars.timeframe, bars.tf_ns, capacity=64)
    feats = FeatureStore(store)
    h = CnnHandler("cnn", params, store, feats)
    for ev in _events(bars):
        store.append(int(bars.ts_open_ns[ev.seq]), ev.open, ev.high, ev.low, ev.close, ev.volume)
        h.on_bar_closed(ev)
    return np.column_stack([feats.column(c) for c in h.outputs])


def batch(bars, params):
    """The backtest path: preloaded store, one precompute."""
    store = BarStore.preloaded(bars)
    feats = FeatureStore(store)
    h = CnnHandler("cnn", params, store, feats)
    h.precompute()
    store.count = len(bars)
    return np.column_stack([feats.column(c) for c in h.outputs])


def _same_nan(a, b):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))


@pytest.mark.parametrize(("precision", "atol"), [("float64", 1e-12), ("float32", 1e-6)])
def test_batch_equals_per_bar(tiny_model, real_slice, precision, atol):
    params = CnnParams(model=str(tiny_model), precision=precision, device="cpu", batch_size=256)
    cut = real_slice.slice(0, PER_BAR_BARS)
    a, b = per_bar(cut, params), batch(cut, params)
    _same_nan(a, b)
    ok = ~np.isnan(a[:, 0])
    first = FeatureSpec().first_valid_bar
    assert not ok[:first].any() and ok[first:].all()
    np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=atol)
    np.testing.assert_allclose(a[ok].sum(axis=1), 1.0, atol=1e-9)


def test_prefix_causality(tiny_model, real_slice):
    """Output at bar k is the same whether the data ends at k or goes on (both paths).

    The batch path must match exactly (not just closely): fixed aligned chunks make a bar's
    probabilities independent of how many bars follow it."""
    params = CnnParams(model=str(tiny_model), device="cpu", batch_size=256)
    full_b = batch(real_slice, params)
    full_p = per_bar(real_slice.slice(0, PER_BAR_BARS), params)
    for k in CUTS:
        cut = real_slice.slice(0, k + 1)
        got_b = batch(cut, params)
        _same_nan(got_b, full_b[: k + 1])
        np.testing.assert_array_equal(got_b[~np.isnan(got_b)],
                                      full_b[: k + 1][~np.isnan(got_b)])
        if k < PER_BAR_BARS:  # the per-bar path is incremental by construction
            got_p = per_bar(cut, params)
            np.testing.assert_array_equal(np.nan_to_num(got_p, nan=-1.0),
                                          np.nan_to_num(full_p[: k + 1], nan=-1.0))


def test_future_bars_do_not_move_past_outputs(tiny_model, real_slice):
    """Scramble every bar after k: outputs up to k stay identical (batch path)."""
    params = CnnParams(model=str(tiny_model), device="cpu", batch_size=256)
    k = 800
    base = batch(real_slice, params)
    rng = np.random.default_rng(0)
    close = real_slice.close.copy()
    close[k + 1 :] *= rng.uniform(0.9, 1.1, close.size - k - 1)
    hi = np.maximum(real_slice.high, close)
    lo = np.minimum(real_slice.low, close)
    volume = real_slice.volume.copy()
    volume[k + 1 :] = volume[k + 1 :][::-1]  # only the future bars' volumes
    other = type(real_slice).from_columns(real_slice.symbol, real_slice.timeframe, real_slice.tf_ns,
                                          real_slice.ts_open_ns, real_slice.open, hi, lo, close,
                                          volume)
    got = batch(other, params)
    np.testing.assert_array_equal(np.nan_to_num(got[: k + 1], nan=-1),
                                  np.nan_to_num(base[: k + 1], nan=-1))


def test_handler_started_late_replays_missed_bars(tiny_model, real_slice):
    """A handler that first sees bar 500 of a store already holding bars 0..499 scores those
    too (as the indicator handlers replay); an old bar is refused."""
    params = CnnParams(model=str(tiny_model), device="cpu")
    cut = real_slice.slice(0, 520)
    store = BarStore(cut.symbol, cut.timeframe, cut.tf_ns, capacity=64)
    feats = FeatureStore(store)
    h = CnnHandler("cnn", params, store, feats)
    for ev in _events(cut):
        store.append(int(cut.ts_open_ns[ev.seq]), ev.open, ev.high, ev.low, ev.close, ev.volume)
        if ev.seq >= 500:
            h.on_bar_closed(ev)
    got = np.column_stack([feats.column(c) for c in h.outputs])
    np.testing.assert_array_equal(np.nan_to_num(got, nan=-1.0),
                                  np.nan_to_num(per_bar(cut, params), nan=-1.0))
    with pytest.raises(DataError, match="once, in order"):
        h.on_bar_closed(next(_events(cut)))


def test_weights_load_with_weights_only(tiny_model):
    state = torch.load(tiny_model, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def _copy(tiny_model, tmp_path):
    dst = tmp_path / "m.pt"
    shutil.copy(tiny_model, dst)
    shutil.copy(tiny_model.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def _edit_card(weights, fn):
    path = weights.with_suffix(".json")
    card = json.loads(path.read_text())
    fn(card)
    path.write_text(json.dumps(card))


def test_refuses_model_trained_on_other_features(tiny_model):
    engine = FeatureSpec(include_current_bar=True)
    want = r"include_current_bar \(model False, engine True\)"
    with pytest.raises(ModelMismatchError, match=want):
        load_model(tiny_model, engine, device="cpu")


def test_refuses_edited_feature_spec(tiny_model, tmp_path):
    w = _copy(tiny_model, tmp_path)
    _edit_card(w, lambda c: c["features"].update(window_bars=90))
    with pytest.raises(ModelMismatchError, match="feature hash"):
        load_model(w, FeatureSpec(window_bars=90), device="cpu")


def test_refuses_other_feature_code_version(tiny_model, tmp_path):
    w = _copy(tiny_model, tmp_path)
    _edit_card(w, lambda c: c.update(feature_version=0))
    with pytest.raises(ModelMismatchError, match="feature code version 0"):
        load_model(w, FeatureSpec(), device="cpu")


def test_refuses_weights_from_another_training(tiny_model, tmp_path):
    w = _copy(tiny_model, tmp_path)
    state = torch.load(w, weights_only=True)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, w)
    with pytest.raises(ModelMismatchError, match="different trainings"):
        load_model(w, FeatureSpec(), device="cpu")


def test_refuses_missing_card(tiny_model, tmp_path):
    w = tmp_path / "lonely.pt"
    shutil.copy(tiny_model, w)
    with pytest.raises(ModelMismatchError, match=r"card .* not found"):
        load_model(w, FeatureSpec(), device="cpu")


def test_handler_refuses_through_its_params(tiny_model):
    store = BarStore("BTC-USDT", "15m", 900 * 10**9)
    with pytest.raises(ModelMismatchError, match="window_bars"):
        CnnHandler("cnn", CnnParams(model=str(tiny_model), features=FeatureSpec(window_bars=50)),
                   store, FeatureStore(store))


def test_unknown_params_are_refused():
    with pytest.raises(ValueError, match="extra"):
        CnnParams(modle="x")


@pytest.fixture(scope="module")
def shipped():
    if not DEFAULT_MODEL.is_file():
        pytest.fail(f"the shipped model {DEFAULT_MODEL} is missing; run "
                    "`tradebot train configs/train.yaml --out models/weights`")
    return DEFAULT_MODEL


def test_shipped_model_loads_and_is_small(shipped):
    card = load_card(shipped.with_suffix(".json"))
    load_model(shipped, FeatureSpec(), device="cpu")  # default engine features: accepted
    assert shipped.stat().st_size < 2_000_000
    assert card.weights.bytes == shipped.stat().st_size
    assert card.data.n_bars > 60_000 and {"val", "test"} <= set(card.metrics)
    # untouched test part: after validation, separated by the purge gap
    assert card.parts["test"].start_seq - card.parts["val"].stop_seq >= card.purge_bars


def test_shipped_model_batch_equals_per_bar(shipped, real_slice):
    params = CnnParams(device="cpu")
    cut = real_slice.slice(0, 700)
    a, b = per_bar(cut, params), batch(cut, params)
    _same_nan(a, b)
    ok = ~np.isnan(a)
    np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=1e-12)
