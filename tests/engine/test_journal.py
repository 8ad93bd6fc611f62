from __future__ import annotations

from engine.events import BarClosed, OrderFilled, TradeClosed
from engine.journal import Journal, read_events


def test_events_round_trip_through_sqlite_in_order(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path, "run1", batch=2)
    bar = BarClosed(ts_event_ns=5, ts_init_ns=6, symbol="BTC-USDT", timeframe="15m", seq=0,
                    open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)
    fill = OrderFilled(ts_event_ns=7, ts_init_ns=7, account="a", order_id="o1", side="buy",
                       qty=0.25, price=100.5, fee=0.01, liquidity="taker", seq=1, tag="ENTRY")
    trade = TradeClosed(ts_event_ns=9, ts_init_ns=9, account="a", symbol="BTC-USDT",
                        side="long", entry_seq=1, entry_ts_ns=7, entry_price=100.5, exit_seq=2,
                        exit_ts_ns=9, exit_price=101.0, qty=0.25, pnl=0.1, fees=0.02,
                        exit_reason="STOP_LOSS", ambiguous=True)
    for e in (bar, fill, trade):
        j(e)
    j.close()
    assert list(read_events(path, "run1")) == [fill, trade]  # bars are off by default

    j2 = Journal(path, "run2", include_bars=True)
    j2(bar)
    j2.close()
    assert list(read_events(path, "run2")) == [bar]
    assert len(list(read_events(path))) == 3
