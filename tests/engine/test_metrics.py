from __future__ import annotations

import math

import numpy as np
import pytest

from engine.events import TradeClosed
from engine.metrics import cagr_note, compute_metrics, format_table

TF_15M = 15 * 60 * 10**9


def trade(pnl, hours=2.0, ambiguous=False):
    return TradeClosed(ts_event_ns=0, ts_init_ns=0, account="a", symbol="X", side="long",
                       entry_seq=0, entry_ts_ns=0, entry_price=1, exit_seq=1,
                       exit_ts_ns=int(hours * 3.6e12), exit_price=1, qty=1, pnl=pnl, fees=0.1,
                       exit_reason="STOP_LOSS", ambiguous=ambiguous)


def test_hand_computed_metrics():
    eq = [100.0, 110.0, 99.0, 121.0]
    trades = [trade(10), trade(-11, 4), trade(22, 6, ambiguous=True)]
    m = compute_metrics(eq, trades, initial_cash=100.0, tf_ns=TF_15M, fees_paid=0.3,
                        exposed_bars=3)
    assert m["total_return_pct"] == pytest.approx(21.0)
    assert m["trades"] == 3 and m["ambiguous_trades"] == 1
    assert m["win_rate_pct"] == pytest.approx(200 / 3)
    assert m["profit_factor"] == pytest.approx(32 / 11)
    assert m["max_drawdown_pct"] == pytest.approx(100 * (99 / 110 - 1))
    assert m["exposure_pct"] == pytest.approx(75.0)
    assert m["avg_holding_hours"] == pytest.approx(4.0)
    r = np.array([0.0, 0.1, 99 / 110 - 1, 121 / 99 - 1])
    per_year = 365 * 96
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(per_year))
    down = np.minimum(r, 0)
    assert m["sortino"] == pytest.approx(r.mean() / np.sqrt((down**2).mean()) * math.sqrt(per_year))
    assert math.isnan(m["cagr_pct"])  # one hour of data: no annualised growth
    year = compute_metrics([100.0] * 35039 + [121.0], [], initial_cash=100.0, tf_ns=TF_15M,
                           fees_paid=0.0, exposed_bars=0)
    assert year["cagr_pct"] == pytest.approx(21.0, rel=1e-3)


def test_no_trades_and_flat_equity():
    m = compute_metrics([100.0] * 5, [], initial_cash=100.0, tf_ns=TF_15M, fees_paid=0.0,
                        exposed_bars=0)
    assert m["trades"] == 0 and m["sharpe"] == 0.0 and m["max_drawdown_pct"] == 0.0
    assert m["profit_factor"] == 0.0
    assert "strategy" in format_table({"s": m})


def test_less_than_a_year_is_not_annualised():
    # 31 days growing 7.7 %: annualised, that would print as about +140 % a year
    month = [100.0] * (31 * 96 - 1) + [107.7]
    m = compute_metrics(month, [], initial_cash=100.0, tf_ns=TF_15M, fees_paid=0.0,
                        exposed_bars=0)
    assert math.isnan(m["cagr_pct"]) and m["days"] == pytest.approx(31.0)
    assert m["total_return_pct"] == pytest.approx(7.7)
    table = format_table({"s": m})
    assert "n/a" in table.splitlines()[2] and "+140" not in table
    assert "CAGR n/a: the run covers 31.0 days" in cagr_note({"s": m})
    year = compute_metrics([100.0] * 35039 + [121.0], [], initial_cash=100.0, tf_ns=TF_15M,
                           fees_paid=0.0, exposed_bars=0)
    assert year["cagr_pct"] == pytest.approx(21.0, rel=1e-3) and cagr_note({"s": year}) == ""
