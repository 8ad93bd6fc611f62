from __future__ import annotations

import sqlite3

from engine.bus import Bus
from engine.events import BarClosed, OrderFilled, OrderSent, SignalRaised, TradeClosed
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


def _sent(oid: str) -> OrderSent:
    return OrderSent(ts_event_ns=1, ts_init_ns=2, account="a", order_id=oid, client_id="0" * 20,
                     side="buy", type="market", qty=0.1, price=100.0, reduce_only=False, seq=3,
                     tag="ENTRY")


def _signal(seq: int) -> SignalRaised:
    return SignalRaised(ts_event_ns=1, ts_init_ns=1, symbol="BTC-USDT", timeframe="15m",
                        seq=seq, alarm_id=f"x{seq}", rule="quad", side="long",
                        entry_price=100.0, stop_price=95.0, atr=1.0)


def test_durable_journal_commits_an_order_record_before_anything_else_happens(tmp_path):
    """Live: an ``OrderSent`` is on disk (readable by another connection, i.e. after a kill)
    the moment it is journaled, with everything buffered before it; without durable mode it
    waits for the batch."""
    path = tmp_path / "j.sqlite"
    j = Journal(path, "live", batch=512, durable=True)
    j(_signal(3))
    j(_sent("a-1"))
    assert [type(e) for e in read_events(path)] == [SignalRaised, OrderSent]  # committed at once
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.close()

    lazy = Journal(tmp_path / "b.sqlite", "bt", batch=512)
    lazy(_sent("a-1"))
    assert list(read_events(tmp_path / "b.sqlite")) == []  # batched until flush
    lazy.close()


def test_early_types_are_journaled_when_published_not_after_their_handlers(tmp_path):
    """A signal and the order it causes are journaled before what the broker publishes while
    handling it (its ``OrderSent``), and the bar before the bar's events."""
    path = tmp_path / "j.sqlite"
    j = Journal(path, "live", include_bars=True, durable=True)
    bus = Bus()
    bus.subscribe_all(j, name="journal")
    j.subscribe_early(bus, -100)
    bus.subscribe(SignalRaised, lambda s: bus.publish(_sent("a-1")), priority=200, name="broker")
    bar = BarClosed(ts_event_ns=5, ts_init_ns=6, symbol="BTC-USDT", timeframe="15m", seq=0,
                    open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)
    bus.subscribe(BarClosed, lambda b: bus.publish(_signal(b.seq)), priority=150, name="rule")
    bus.publish(bar)
    # the bar's end committed it all, each event once
    assert [type(e) for e in read_events(path)] == [BarClosed, SignalRaised, OrderSent]
    j.close()
