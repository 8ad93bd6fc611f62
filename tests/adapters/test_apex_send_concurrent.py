"""Six Apex accounts of one live run send at once (adapters/apex/broker.py, "Sending"), against
the local venue serving the six, with the real apexomni clients: on one signal bar the six entries
are all in flight together (the venue sees them overlap), the replies are booked on the engine
thread in the order sent even when the venue answers them in the reverse order, the stops placed
on the entries' fills are booked before the bar ends, and every account's events are exactly a
serial run's."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from adapters.apex import venue_http
from adapters.apex.broker import ApexBroker, SendDesk
from adapters.apex.client import ApexClient, ApexCredentials
from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.events import (
    BarClosed,
    Event,
    OrderFilled,
    OrderReply,
    OrderSent,
    SubmitOrder,
)
from engine.fills import Costs
from engine.portfolio import Account

N = 6
START = 30_000


def _creds(i: int) -> ApexCredentials:
    return ApexCredentials(f"send-key-{i}", f"send-secret-{i}", f"send-pass-{i}",
                           f"{i + 1:02x}" * 64)


class SlowOrders:
    """Instrument of the fake venue: every ``POST /api/v3/order`` waits before the venue handles
    it (outside the venue's lock), account ``i`` the longest when ``i`` is the first, so the
    venue answers them in the reverse of the order they were sent; counts how many are in
    flight at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        orig = venue_http._Handler.do_POST

        def do_post(handler: venue_http._Handler) -> None:
            if not handler.path.startswith("/api/v3/order"):
                return orig(handler)
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            key = handler.headers.get("APEX-API-KEY", "")
            i = int(key.rsplit("-", 1)[1]) if key.startswith("send-key-") else 0
            try:
                time.sleep(0.05 * (N - i))  # the first sent answers last
                return orig(handler)
            finally:
                with self.lock:
                    self.now -= 1

        monkeypatch.setattr(venue_http._Handler, "do_POST", do_post)


class Run:
    """Six accounts, their brokers (one desk) and the venue; the events every broker published,
    in the order the engine thread saw them. On an entry's fill a reduce-only stop is placed at
    once, as the exit runner does."""

    def __init__(self, venue: LocalVenue, bars: Bars, concurrent: bool) -> None:
        self.venue, self.bars = venue, bars
        self.events: list[Event] = []
        self.threads: set[str] = set()
        desk = SendDesk()
        self.accounts: list[Account] = []
        self.brokers: list[ApexBroker] = []
        for i in range(N):
            acct = Account(f"s{i}", "BTC-USDT", 10_000.0, lambda e: None)
            client = ApexClient(venue.url, _creds(i), timeout=5.0)
            self.accounts.append(acct)
            self.brokers.append(ApexBroker(
                acct, self.publish, Costs.from_bps(5, 2, 0), client=client, symbol="BTC-USDT",
                run_id="send-test", concurrent=concurrent, desk=desk))
        self.k = -1

    def publish(self, ev: Event) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(ev)
        if isinstance(ev, OrderFilled):
            i = int(ev.account[1:])
            self.accounts[i].on_order_filled(ev)
            if ev.tag == "ENTRY":  # the exit runner's stop, placed on the fill
                stop = ev.price * (0.97 if ev.side == "buy" else 1.03)
                self.brokers[i].on_submit_order(SubmitOrder(
                    ts_event_ns=0, ts_init_ns=0, account=ev.account, order_id=f"{ev.account}-2",
                    side="sell" if ev.side == "buy" else "buy", type="stop", seq=ev.seq,
                    qty=float("inf"), price=stop, reduce_only=True, tag="STOP"))

    def bar(self, entries: bool) -> BarClosed:
        """Close the next candle: every broker's bar hook, the entries (one per account, in
        wiring order, as the strategies decide), then every broker's after-bar hook."""
        self.venue.advance(1)
        self.k += 1
        b, k = self.bars, self.k
        bar = BarClosed(ts_event_ns=int(b.ts_open_ns[k]) + b.tf_ns, ts_init_ns=time.time_ns(),
                        symbol="BTC-USDT", timeframe="15m", seq=k, open=float(b.open[k]),
                        high=float(b.high[k]), low=float(b.low[k]), close=float(b.close[k]),
                        volume=float(b.volume[k]))
        for br in self.brokers:
            br.on_bar_closed(bar)
        if entries:
            px = float(b.close[k])
            for i, br in enumerate(self.brokers):
                side = "buy" if i % 2 == 0 else "sell"
                br.on_submit_order(SubmitOrder(
                    ts_event_ns=0, ts_init_ns=0, account=f"s{i}", order_id=f"s{i}-1",
                    side=side, type="market", seq=k, equity_frac=0.2,  # type: ignore[arg-type]
                    take_profit=px * (1.05 if side == "buy" else 0.95), tag="ENTRY"))
        for br in self.brokers:
            br.after_bar(bar)
        return bar

    def close(self) -> None:
        for br in self.brokers:
            br.close()


def _key(ev: Event) -> tuple[object, ...]:
    d = msgspec.structs.asdict(ev)
    d.pop("ts_init_ns", None)
    return (type(ev).__name__, *sorted(d.items()))


@pytest.fixture
def sample(real_bars: Bars) -> Bars:
    return real_bars.slice(START, START + 10)


def _run(sample: Bars, monkeypatch: pytest.MonkeyPatch, concurrent: bool
         ) -> tuple[Run, int, list[list[str]]]:
    """Three bars, the entries on the second: the run, the most orders in flight at once, and
    each account's working orders on the venue at the end (their types)."""
    creds = [_creds(i) for i in range(N)]
    with LocalVenue(sample, speed=0, credentials=creds[0], accounts=creds[1:]) as venue:
        slow = SlowOrders(monkeypatch)
        run = Run(venue, sample, concurrent)
        try:
            run.bar(entries=False)
            run.bar(entries=True)  # the signal bar
            assert not any(b._pending for b in run.brokers)  # nothing left in flight
            run.bar(entries=False)
        finally:
            run.close()
            monkeypatch.undo()
        working = [sorted(o.type for o in venue.accounts[c.key].book.working.values())
                   for c in creds]
    return run, slow.most, working


def test_six_entries_are_in_flight_at_once_and_booked_like_a_serial_run(
        sample: Bars, monkeypatch: pytest.MonkeyPatch) -> None:
    serial, serial_most, serial_working = _run(sample, monkeypatch, concurrent=False)
    conc, conc_most, conc_working = _run(sample, monkeypatch, concurrent=True)
    assert serial_most == 1  # one after another
    assert conc_most == N  # the six entries (and then the six stops) overlap on the venue

    # engine events are published on the engine thread only
    assert serial.threads == conc.threads == {threading.current_thread().name}
    # the same events per account as the serial run, in the same order (timestamps aside):
    # journal-before-send (OrderSent first), the reply, the entry's fill, the stop's send and
    # reply, all booked before the signal bar ended (nothing was left in flight)
    for i in range(N):
        s = [_key(e) for e in serial.events if getattr(e, "account", "") == f"s{i}"]
        c = [_key(e) for e in conc.events if getattr(e, "account", "") == f"s{i}"]
        assert c == s, i
        kinds = [k[0] for k in c]
        assert kinds[:3] == ["OrderSent", "OrderSent", "OrderReply"], kinds  # entry + target
        assert "OrderFilled" in kinds and kinds.count("OrderReply") == 2, kinds
    # the venue answered the six entries last-sent first; they were booked in the order sent
    replies = [e.account for e in conc.events if isinstance(e, OrderReply)
               and e.order_id.endswith("-1")]
    assert replies == [f"s{i}" for i in range(N)]
    # every OrderSent of the signal bar came before the first reply: all sent before any was
    # waited for (the serial run alternates sent/reply account by account)
    kinds = [type(e).__name__ for e in conc.events if isinstance(e, (OrderSent, OrderReply))]
    assert kinds[:2 * N] == ["OrderSent"] * (2 * N)
    # each account's position and stop on the venue are its own, as in the serial run
    for i in range(N):
        assert conc.accounts[i].qty == pytest.approx(serial.accounts[i].qty) != 0.0
    assert conc_working == serial_working == [["STOP_MARKET", "TAKE_PROFIT_MARKET"]] * N
