"""``indicators.bar_order.BarOrder``: the one "each bar once, in order; catch up missed bars" rule
that the indicator, volume-profile and model handlers share."""

from __future__ import annotations

import numpy as np
import pytest

from engine.bars import Bars, BarStore, LookaheadError
from engine.errors import DataError
from engine.events import BarClosed
from engine.features import FeatureStore
from indicators.bar_order import BarOrder
from indicators.handlers import AtrHandler, AtrParams
from indicators.profile import VolumeProfileHandler, VolumeProfileParams

TF = 15 * 60 * 10**9


def _store(n: int, revealed: int) -> BarStore:
    rng = np.random.default_rng(2)
    c = 100 + np.cumsum(rng.normal(0, 1, n))
    store = BarStore.preloaded(Bars("X", "15m", TF, np.arange(n, dtype=np.int64) * TF,
                                    c, c + 1, c - 1, c, np.ones(n)))
    for _ in range(revealed):
        store.reveal_next()
    return store


def _bar(store: BarStore, seq: int) -> BarClosed:
    w = store.window(seq, 1)
    return BarClosed(ts_event_ns=(seq + 1) * TF, ts_init_ns=0, symbol="X", timeframe="15m",
                     seq=seq, open=float(w.open[0]), high=float(w.high[0]), low=float(w.low[0]),
                     close=float(w.close[0]), volume=1.0)


def test_replay_feeds_the_missed_bars_from_the_store_then_expects_the_bar():
    store = _store(20, 10)
    order = BarOrder("f", store)
    seen = []
    order.replay(0, lambda *a: seen.append(a))
    assert seen == [] and order.first(0) == 0
    order.done(0)
    order.replay(4, lambda *a: seen.append(a))  # bars 1..3 never arrived
    w = store.window(3, 3)
    assert seen == [(1 + j, float(w.high[j]), float(w.low[j]), float(w.close[j]))
                    for j in range(3)]
    assert order.next == 4
    order.done(4)
    with pytest.raises(DataError, match=r"'f': bar seq 2 arrived after seq 4; each bar must "
                                        r"reach a feature handler once, in order"):
        order.first(2)
    with pytest.raises(LookaheadError):  # catching up to a bar the store has not revealed
        order.replay(15, lambda *a: None)


@pytest.mark.parametrize("make", [
    lambda s, f: AtrHandler("a", AtrParams(n=5), s, f),
    lambda s, f: VolumeProfileHandler("vp", VolumeProfileParams(lookback=5, bins=4), s, f),
])
def test_every_handler_kind_uses_the_shared_rule(make):
    store = _store(30, 30)
    feats = FeatureStore(store)
    h = make(store, feats)
    assert isinstance(h._order, BarOrder)
    h.on_bar_closed(_bar(store, 0))
    h.on_bar_closed(_bar(store, 12))  # 1..11 caught up from the store
    col = feats.column(h.outputs[0])
    assert h._order.next == 13 and not np.isnan(col[6:13]).any()
    with pytest.raises(DataError, match="bar seq 12 arrived after seq 12"):
        h.on_bar_closed(_bar(store, 12))
