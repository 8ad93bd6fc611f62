"""The label rules on hand-built series, with the expected labels worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from engine.bars import Bars
from models.features import FeatureSpec
from models.labels import (
    BUY,
    HOLD,
    SELL,
    UNKNOWN,
    BarrierLabel,
    PointReturnLabel,
    QuadSetup,
    barrier_outcome_nb,
    make_labels,
)

TF_NS = 900 * 10**9


def _bars(close, high=None, low=None) -> Bars:
    close = np.asarray(close, dtype=np.float64)
    high = close + 0.1 if high is None else np.asarray(high, dtype=np.float64)
    low = close - 0.1 if low is None else np.asarray(low, dtype=np.float64)
    ts = np.arange(close.size, dtype=np.int64) * TF_NS
    return Bars.from_columns("BTC-USDT", "15m", TF_NS, ts, close, high, low, close,
                             np.ones(close.size))


def _falling_then_jump() -> Bars:
    """Bars 0..300 fall by 1 (1000 -> 700); bar 301 gaps up to 760, then +3 a bar.

    While falling every stochastic sits near 0 (close at the window's low: %K9 = 0.1/8.2) and
    the 100-close regression is a perfect falling line: the BUY setup holds on bars 99..300.
    At the gap bar %K9 jumps to ~100, so S9 = (1.2 + 1.2 + 99.8) / 3 = 34 % > 25 %: no setup.
    """
    i = np.arange(500)
    return _bars(np.where(i <= 300, 1000.0 - i, 760.0 + 3.0 * (i - 301)))


def _rising_then_drop() -> Bars:
    """The mirror image: 100 -> 400 by +1, a gap down to 340 at bar 301, then -0.5 a bar."""
    i = np.arange(500)
    return _bars(np.where(i <= 300, 100.0 + i, 340.0 - 0.5 * (i - 301)))


def _runs(labels, value):
    idx = np.flatnonzero(labels == value)
    return (int(idx[0]), int(idx[-1]), idx.size) if idx.size else None


def test_quad_rule_buy_by_hand():
    y = make_labels(_falling_then_jump(), PointReturnLabel(), FeatureSpec())
    # BUY at bar i needs the setup at i - 1 (bars 99..300 -> i in 100..301) and
    # close[i + 32] / close[i] > 1.015. For i <= 268, close[i + 32] is still on the falling
    # line (lower). From i = 269, close[i + 32] = 760 + 3 (i - 269) = 3 i - 47, and
    # 3 i - 47 > 1.015 (1000 - i) <=> i > 264.5; i = 301: 856 / 760 = 1.126. So BUY exactly on
    # 269..301 (33 bars).
    assert _runs(y, BUY) == (269, 301, 33)
    assert _runs(y, SELL) is None  # the rise after bar 301 is a SELL setup, but it keeps rising
    assert (y[-32:] == UNKNOWN).all() and (y[:-32] != UNKNOWN).all()
    assert y[250] == HOLD and y[268] == HOLD and y[302] == HOLD


def test_quad_rule_sell_by_hand():
    y = make_labels(_rising_then_drop(), PointReturnLabel(), FeatureSpec())
    # SELL setup on 99..300 (all four near 100 %, perfect rising line). From i = 269,
    # close[i + 32] = 340 - 0.5 (i - 269) < 0.985 (100 + i): 340 / 369 = 0.92 at 269,
    # 324 / 340 = 0.95 at 301; at 268 close[300] = 400 > close[268].
    assert _runs(y, SELL) == (269, 301, 33)
    assert _runs(y, BUY) is None


def test_quad_rule_is_configurable():
    bars = _falling_then_jump()
    strict = PointReturnLabel(setup=QuadSetup(low_frac=0.001))  # S9 ~ 1.2 % is not below 0.1 %
    assert _runs(make_labels(bars, strict, FeatureSpec()), BUY) is None
    far = PointReturnLabel(min_return_frac=0.13)  # only bars whose 32-bar return > 13 %
    y = make_labels(bars, far, FeatureSpec())
    # (3 i - 47) / (1000 - i) > 1.13 <=> 4.13 i > 1177 <=> i >= 285, up to i = 300
    # (i = 301: 856 / 760 = 1.126 < 1.13).
    assert _runs(y, BUY) == (285, 300, 16)


def test_quad_rule_reads_the_setup_at_the_sample_bar_with_current_bar_features():
    y = make_labels(_falling_then_jump(), PointReturnLabel(), FeatureSpec(include_current_bar=True))
    # Setup at i itself (99..300): bar 301 (the gap bar) no longer qualifies.
    assert _runs(y, BUY) == (269, 300, 32)


def test_barrier_outcome_kernel_by_hand():
    #            0      1      2      3      4      5      6      7
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    high = np.array([100.5, 100.5, 101.2, 100.5, 103.0, 100.5, 100.5, 100.5])
    low = np.array([99.5, 99.5, 99.8, 97.5, 97.0, 99.5, 99.5, 99.5])
    stop = np.full(8, 2.0)  # long stop 98, short stop 102; targets 101 / 99 (1 %)
    out_l = np.empty(8, np.int64)
    out_s = np.empty(8, np.int64)
    barrier_outcome_nb(high, low, close, stop, 0.01, 3, out_l, out_s)
    # i=0: bar 2 high 101.2 -> long target after 2 bars; bar 3 low 97.5 -> short target (<= 99)
    #      after 3 bars, before its stop. i=1: long target at bar 2 (1), short at bar 3 (2).
    # i=2: bar 3 low 97.5 <= 98: long stopped; short target after 1 bar.
    # i=3: bar 4 touches 103 and 97: stop and target on one bar -> stop first for both sides.
    # i=4: bars 5..7 stay inside 99.5..100.5: neither reached -> 0. i >= 5: horizon past data.
    assert out_l.tolist() == [2, 1, 0, 0, 0, -1, -1, -1]
    assert out_s.tolist() == [3, 2, 1, 0, 0, -1, -1, -1]


def test_barrier_label_by_hand():
    n = 80
    close = np.full(n, 100.0)
    high = np.full(n, 100.5)
    low = np.full(n, 99.5)
    high[30] = 101.5  # long targets (101) of entries 13..29 are reached here
    low[40] = 98.5  # short targets (99) of entries 30..39 (and 13..29, later) are reached here
    spec = BarrierLabel(setup=None, target_frac=0.01, stop_atr_mult=4.5, atr_bars=14)
    y = make_labels(_bars(close, high, low), spec, FeatureSpec())
    assert (y[:13] == UNKNOWN).all()  # SMA-14 ATR warms up until bar 13
    # 13..29: both sides win (long at bar 30, short at bar 40): the earlier one, BUY.
    assert (y[13:30] == BUY).all()
    assert (y[30:40] == SELL).all()
    assert (y[40:48] == HOLD).all()
    assert (y[48:] == UNKNOWN).all()  # the last 32 bars


@pytest.mark.parametrize("spec", [PointReturnLabel(), BarrierLabel()])
def test_last_horizon_bars_are_unknown(spec):
    y = make_labels(_falling_then_jump(), spec, FeatureSpec())
    assert (y[-spec.horizon_bars :] == UNKNOWN).all()
