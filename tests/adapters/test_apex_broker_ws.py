"""The Apex broker's fills from the account's private websocket (the real apexomni websocket
client against the local venue): a pushed fill is booked on the engine thread without reading
the fills endpoint, a fill seen on both is booked once, and a websocket drop (the venue cuts the
connection and refuses the next logins) ends with a reconnect after backoff and a back-fill from
the fills endpoint: nothing lost, nothing twice.

apexomni's connect waits about 1 s per socket, so each test takes a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from adapters.apex.account_stream import AccountStream
from adapters.apex.venue import TEST_CREDENTIALS, LocalVenue
from engine.bars import Bars
from engine.clock import SimClock
from engine.events import OrderFilled, TimerFired
from tests.adapters.test_apex_broker import START, Harness

N = 40


def _until(pred, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def hw(real_bars: Bars) -> Iterator[Harness]:
    sample = real_bars.slice(START, START + N)
    with LocalVenue(sample, speed=0, credentials=TEST_CREDENTIALS, websocket=True) as venue:
        stream = AccountStream(venue.ws_url, TEST_CREDENTIALS, backoff_s=0.1, name="s1").start()
        hh = Harness(venue, sample, stream=stream)
        try:
            assert stream.wait_ready(10), "the account websocket did not log in"
            hh.bar()
            yield hh
        finally:
            hh.broker.close()


def _fills_reads(h: Harness) -> int:
    return sum(1 for r in h.venue.requests if r["path"] == "/api/v3/fills")


def _advance(h: Harness) -> None:
    """Close the next candle on the venue without handing it to the broker (the feed's poll
    moves the venue's clock; the bar reaches the broker later)."""
    h.venue.advance(1)
    h.k += 1


def test_a_pushed_fill_is_booked_from_the_websocket_and_once(hw: Harness) -> None:
    h = hw
    h.submit("s1-1", "buy", qty=0.01, tag="ENTRY")  # filled at once (after_bar)
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1"]
    hi = max(float(x) for x in h.bars.high[h.k + 1: h.k + 6])
    h.submit("s1-2", "sell", "limit", qty=0.01, price=hi - 1.0, reduce_only=True, tag="TP")
    reads = _fills_reads(h)
    # the venue closes candles (as for the next feed polls) without the broker seeing a bar: the
    # fill can only come from the websocket, drained on the broker's clock timer
    for _ in range(5):
        _advance(h)
        if h.venue.book.qty == 0.0:
            break
    assert h.venue.book.qty == 0.0, "the target was reached on the venue"
    # the engine drains it on one clock timer shared by every account's broker
    clock = SimClock(0)
    fired: list[TimerFired] = []
    clock.bind(fired.append)
    h.broker.bind_clock(clock)
    h.broker.bind_clock(clock)  # a second broker on the same clock: still one timer
    assert list(clock.timers()) == ["apex-ws"]
    clock.advance(2 * 10**9)
    assert [t.name for t in fired] == ["apex-ws", "apex-ws"]
    assert _until(lambda: (h.broker.on_timer_fired(fired[-1]) or h.acct.qty == 0.0)), \
        "the pushed fill was not booked"
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1", "s1-2"]
    assert h.broker.ws_fills >= 1 and _fills_reads(h) == reads  # no read of the endpoint
    # the next bar reads the endpoint (the authority): the same fill is not booked again
    h.bar()
    h.bar()
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1", "s1-2"]
    assert len(h.of(OrderFilled)) == len(h.venue.book.fills)


def test_a_websocket_drop_reconnects_with_backoff_and_back_fills(hw: Harness) -> None:
    h = hw
    stream = h.broker.stream
    assert stream is not None
    h.submit("s1-1", "buy", qty=0.02, tag="ENTRY")
    hi = max(float(x) for x in h.bars.high[h.k + 1: h.k + 6])
    h.submit("s1-2", "sell", "limit", qty=0.01, price=hi - 1.0, reduce_only=True, tag="TP")
    # the drop: the connection is cut and the next two logins are refused
    h.venue.inject("*", "ws_drop", count=3)
    assert h.venue.stream.drops == 1
    for _ in range(5):  # meanwhile the target fills on the venue: pushed to nobody
        _advance(h)
        if h.venue.book.qty == pytest.approx(0.01):
            break
    assert h.venue.book.qty == pytest.approx(0.01)
    assert _until(lambda: stream.sessions >= 2, 20), "no reconnect"
    assert stream.waits[:3] == [0.1, 0.2, 0.4]  # a lost session, then two refused logins
    assert h.venue.stream.logins == 2
    reads = _fills_reads(h)
    h.broker.poll_stream()  # what the clock timer does: the back-fill, before any bar
    assert h.broker.backfills == 1 and _fills_reads(h) == reads + 1
    assert [f.order_id for f in h.of(OrderFilled)] == ["s1-1", "s1-2"]
    assert h.acct.qty == pytest.approx(0.01)
    # after the reconnect, pushes are booked again; nothing is booked twice
    h.submit("s1-3", "sell", qty=0.01, reduce_only=True, tag="EXIT")
    h.bar()
    h.bar()
    fills = h.of(OrderFilled)
    assert [f.order_id for f in fills] == ["s1-1", "s1-2", "s1-3"]
    assert len({(f.order_id, f.qty, f.price) for f in fills}) == 3 == len(h.venue.book.fills)
    assert h.acct.qty == 0.0 and h.venue.book.qty == 0.0


def test_network_names_match_apexomni_and_a_non_websocket_url_is_refused() -> None:
    from adapters.apex.account_stream import WS_NETWORKS, ws_endpoint
    from adapters.apex.client import load_apexomni
    from engine.errors import ConfigError

    load_apexomni()
    from apexomni.constants import APEX_OMNI_WS_MAIN, APEX_OMNI_WS_TEST

    assert WS_NETWORKS == {"main": APEX_OMNI_WS_MAIN, "test": APEX_OMNI_WS_TEST}
    assert ws_endpoint("ws://127.0.0.1:9/") == "ws://127.0.0.1:9"
    with pytest.raises(ConfigError, match="not a websocket URL.*--ws-port"):
        ws_endpoint("http://127.0.0.1:8888")
