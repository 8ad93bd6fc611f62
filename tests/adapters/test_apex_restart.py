"""A live run survives a crash (issue 9, "State that survives a crash"): the real engine as a
subprocess (`tradebot run configs/live.yaml --venue URL`) against a local venue in lockstep over
real candles, killed with SIGKILL while a position is open and its stop rests on the venue, then
started again: it finds its journal in the staging folder the killed run left (the dead
process's lock does not block it), rebuilds its state, reconciles with the venue and trades on.
Checked against the venue's own records (``venue.book``): the same position, every venue fill
booked once, no clientId used twice, and the same trades as an uninterrupted run (a backtest of
the same candles, which a live run matches bar by bar: tests/adapters/test_apex_live.py).

Also: the process dies after an order's record was journaled but before the venue's reply (the
reply is lost, the look-up hangs): the restart adopts the venue's fill and gives the position
its stop; and a venue state the journal cannot explain (someone else's order) halts new entries
while exits still work, which ``tradebot status`` shows.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adapters.apex.client import ApexClient, ApexCredentials
from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.bootstrap import build_engine
from engine.config import load_config
from engine.events import OrderCanceled, OrderFilled, OrderReply, OrderSent, Reconciled
from engine.journal import read_events
from tests.adapters.real_sample import real_sample

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "configs" / "live.yaml"
N_BARS = 110  # one trade 36 -> 103 (STOP_LOSS), then a position from 106 to the end
SECRETS = ApexCredentials("rs-key-51d0", "rs-SECRET-a9c2e7", "rs-PASS-77b1", "d00dad" * 22)
OVERRIDES = {"strategies": [{"name": "trailing_stop", "kind": "trailing_stop",
                             "params": {"min_lock_pct": 0.0}}],
             "output.report": False, "risk": None, "account.initial_cash": 10_000.0,
             "account.position_size_frac": 0.5, "costs.maker_fee_bps": 5}


@pytest.fixture(scope="module")
def sample(real_bars: Bars, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bars, Path]:
    return real_sample(real_bars, tmp_path_factory.mktemp("restart"), N_BARS)


@pytest.fixture(scope="module")
def backtest(sample: tuple[Bars, Path], tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """The trades of an uninterrupted run: a backtest of the same candles."""
    _, path = sample
    cfg = load_config(LIVE, {**OVERRIDES, "mode": "backtest", "data.file": str(path),
                             "data.venue": None, "execution.workers": 1,
                             "execution.close_at_end": False,
                             "output.dir": str(tmp_path_factory.mktemp("bt"))})
    bt = build_engine(cfg)
    bt.run()
    trades = [(t.side, t.entry_seq, t.exit_seq, t.exit_reason)
              for t in bt.accounts["trailing_stop"].trades]
    assert trades == [("short", 36, 103, "STOP_LOSS")]  # the sample the tests are built on
    assert bt.accounts["trailing_stop"].qty < 0  # and a short open at the end
    return trades


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> ApexCredentials:
    for k, v in (("APEX_API_KEY", SECRETS.key), ("APEX_API_SECRET", SECRETS.secret),
                 ("APEX_API_PASSPHRASE", SECRETS.passphrase), ("APEX_ZK_SEEDS", SECRETS.zk_seeds)):
        monkeypatch.setenv(k, v)
    return SECRETS


def _config_file(tmp: Path) -> Path:
    """configs/live.yaml with the test's overrides, as a file for the CLI."""
    raw = yaml.safe_load(LIVE.read_text())
    raw["strategies"] = OVERRIDES["strategies"]
    raw.pop("risk")
    raw["account"].update(initial_cash=10_000.0, position_size_frac=0.5)
    raw["costs"]["maker_fee_bps"] = 5
    raw["data"].update(warmup_bars=0, poll_interval_s=0.005)
    raw["output"]["report"] = False
    p = tmp / "live.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


_STARTED: list[subprocess.Popen] = []  # type: ignore[type-arg]


@pytest.fixture(autouse=True)
def _no_engine_left_behind() -> object:
    """A failed assertion between starting an engine and killing it must not leave a live
    engine retrying its vanished venue after the test session (it did, for half an hour)."""
    yield
    while _STARTED:
        p = _STARTED.pop()
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=30)


def _tradebot(*args: str) -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "NUMBA_CACHE_DIR": str(ROOT / ".cache" / "numba")}
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _STARTED.append(p)
    return p


def _wait(cond, what: str, p: subprocess.Popen, timeout: float = 120.0) -> None:  # type: ignore
    deadline = time.monotonic() + timeout
    while not cond():
        if p.poll() is not None:
            raise AssertionError(f"the engine exited ({p.returncode}) before {what}: "
                                 f"{p.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _kill(p: subprocess.Popen) -> None:  # type: ignore[type-arg]
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL


def _staged_journal(out: Path) -> Path:
    staged = list(out.parent.glob(f".{out.name}.partial-*/journal.sqlite"))
    assert len(staged) == 1, staged
    return staged[0]


def _last_seq(journal: Path) -> int:
    return max(e.seq for e in read_events(journal) if type(e).__name__ == "BarClosed")


def _trades_csv(out: Path) -> list[tuple]:
    with (out / "trades.csv").open() as fh:
        return [(r["side"], int(r["entry_seq"]), int(r["exit_seq"]), r["exit_reason"])
                for r in csv.DictReader(fh)]


def _check_against_the_venue(venue: LocalVenue, journal: Path) -> list:
    """The venue's own records: every venue fill booked once, no clientId used twice, the
    same position."""
    events = list(read_events(journal))
    book = venue.book
    cids = Counter(o.client_id for o in book.orders.values())
    assert all(n == 1 for n in cids.values()), "a clientId was used twice"
    fills = [e for e in events if type(e) is OrderFilled]
    assert len(fills) == len(book.fills), "a fill was lost or booked twice"
    assert sorted(round(f.qty, 9) for f in fills) == sorted(round(float(f["size"]), 9)
                                                             for f in book.fills)
    qty = sum(f.qty if f.side == "buy" else -f.qty for f in fills)
    assert abs(qty - book.qty) < 1e-9
    return events


def test_kill_9_with_an_open_position_and_a_resting_stop_then_restart(
        sample: tuple[Bars, Path], backtest: list[tuple], tmp_path: Path,
        secrets_env: ApexCredentials) -> None:
    bars, _ = sample
    cfg = _config_file(tmp_path)
    out = tmp_path / "out"
    with LocalVenue(bars, speed=0, taker_fee=0.0005, maker_fee=0.0005) as venue:
        p = _tradebot("run", str(cfg), "--venue", venue.url, "--out", str(out))

        def in_position_with_stop() -> bool:
            with venue.lock:
                b = venue.book
                return (venue.n_closed() >= 45 and b.qty != 0.0
                        and any(o["type"] == "STOP_MARKET" for o in b.open_orders()))

        _wait(in_position_with_stop, "a position with its stop on the venue", p)
        _kill(p)
        with venue.lock:
            killed_qty = venue.book.qty
            assert any(o["type"] == "STOP_MARKET" for o in venue.book.open_orders())
            # the position's first stop came with its entry (isOpenTpslOrder), not after it
            entry = [o for o in venue.book.orders.values()
                     if o.type == "MARKET" and not o.reduce_only][-1]
            assert entry.is_open_tpsl and any(
                o.parent_id == entry.id and o.type == "STOP_MARKET"
                for o in venue.book.orders.values())
        assert killed_qty < 0
        # a killed run leaves its staging folder, journal included, and its lock file
        assert not out.exists()
        staged = _staged_journal(out)
        assert (tmp_path / ".out.lock").is_file()
        rest = (N_BARS - 1) - _last_seq(staged)
        assert rest > 20  # killed mid-position: the stop exit at 103 is still to come

        p = _tradebot("run", str(cfg), "--venue", venue.url, "--out", str(out),
                      "--max-bars", str(rest))
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0, e[-3000:]
        assert "continuing run" in e and "Traceback" not in e
        events = _check_against_the_venue(venue, out / "journal.sqlite")
        book_qty = venue.book.qty

    # the same trades and position as the uninterrupted run
    assert _trades_csv(out) == backtest
    assert book_qty < 0
    rec = [x for x in events if type(x) is Reconciled]
    assert len(rec) == 1 and not rec[0].halted, rec
    assert f"journal: position {killed_qty:+g} BTC-USDT" in rec[0].found[0]
    assert (out / "reconciliation.json").is_file()
    # the journal's history: the whole run, both sessions, in one file
    bars_seen = sorted(x.seq for x in events if type(x).__name__ == "BarClosed")
    assert bars_seen == list(range(N_BARS))
    # every order record was committed before its reply
    sent = {x.client_id: i for i, x in enumerate(events) if type(x) is OrderSent}
    for i, x in enumerate(events):
        if type(x) is OrderReply:
            assert sent[x.client_id] < i


def test_killed_between_the_order_record_and_the_reply_adopts_the_venues_fill(
        sample: tuple[Bars, Path], backtest: list[tuple], tmp_path: Path,
        secrets_env: ApexCredentials) -> None:
    bars, _ = sample
    cfg = _config_file(tmp_path)
    out = tmp_path / "out"
    with LocalVenue(bars.slice(0, 60), speed=0, taker_fee=0.0005, maker_fee=0.0005) as venue:
        # the entry is accepted but its reply is lost, and the look-up that follows hangs
        venue.inject("/api/v3/order", "drop_reply_after_accept")
        venue.inject("/api/v3/order-by-client-order-id", "timeout", delay=60)
        p = _tradebot("run", str(cfg), "--venue", venue.url, "--out", str(out))

        def hanging() -> bool:
            with venue.lock:
                return bool(venue.book.orders) and any(
                    r["path"] == "/api/v3/order-by-client-order-id" and r["fault"] == "timeout"
                    for r in venue.requests)

        _wait(hanging, "the entry accepted and its look-up hanging", p)
        _kill(p)
        staged = _staged_journal(out)
        first = list(read_events(staged))
        sent = [x for x in first if type(x) is OrderSent and not x.parent]
        assert len(sent) == 1 and sent[0].tag == "ENTRY"  # journaled before it was sent
        # with its attached stop (isOpenTpslOrder), journaled as its child before the request
        kids = [x for x in first if type(x) is OrderSent and x.parent]
        assert [(k.order_id, k.parent, k.tag) for k in kids] == [
            (f"{sent[0].order_id}-stop_loss", sent[0].order_id, "STOP_LOSS")]
        assert not [x for x in first if type(x) in (OrderReply, OrderFilled)]
        with venue.lock:
            assert venue.book.qty != 0.0  # the venue filled it

        rest = 59 - _last_seq(staged)
        p = _tradebot("run", str(cfg), "--venue", venue.url, "--out", str(out),
                      "--max-bars", str(rest))
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0, e[-3000:]
        events = _check_against_the_venue(venue, out / "journal.sqlite")
        with venue.lock:
            entries = [x for x in venue.book.orders.values()
                       if x.type == "MARKET" and not x.reduce_only]
            stops = [x for x in venue.book.open_orders() if x["type"] == "STOP_MARKET"]
    rec = next(x for x in events if type(x) is Reconciled)
    assert not rec.halted, rec
    assert any("accepted by the venue before the restart" in a for a in rec.actions), rec
    assert any("adopted a fill the journal missed" in a for a in rec.actions), rec
    assert len(entries) == 1 and entries[0].client_id == sent[0].client_id  # never sent twice
    assert len(stops) == 1  # the adopted position has its stop: the entry's attached one,
    # or the replacement the exit plugin moved it to (new first, then the attached one canceled)
    assert stops[0]["clientId"] in {kids[0].client_id} | {
        x.client_id for x in events if type(x) is OrderSent and x.replaces}
    assert _trades_csv(out) == []  # still in the trade the backtest opened at 36
    adopted = [x for x in events if type(x) is OrderFilled and x.order_id == sent[0].order_id]
    assert len(adopted) == 1 and adopted[0].seq == backtest[0][1]


def test_a_venue_state_the_journal_cannot_explain_halts_entries_not_exits(
        sample: tuple[Bars, Path], backtest: list[tuple], tmp_path: Path,
        secrets_env: ApexCredentials, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    bars, _ = sample
    with LocalVenue(bars, speed=0, taker_fee=0.0005, maker_fee=0.0005) as venue:
        cfg = load_config(LIVE, {**OVERRIDES, "output.dir": str(tmp_path / "live"),
                                 "data.venue": venue.url, "data.warmup_bars": 0,
                                 "data.poll_interval_s": 0.005})
        journal = tmp_path / "live" / "journal.sqlite"
        first = build_engine(cfg, journal_path=journal)
        first.feed.max_bars = 60  # type: ignore[attr-defined]
        first.run()
        assert first.accounts["trailing_stop"].qty < 0
        # someone else's order on the account while the engine is down
        ApexClient(venue.url).create_order(symbol="BTC-USDT", side="BUY", type="LIMIT",
                                           size="0.01", price="20000", clientId="424242",
                                           reduceOnly=False)
        again = build_engine(cfg, journal_path=journal)
        broker = again.brokers["trailing_stop"]
        assert "424242" in broker.halted
        canceled: list[OrderCanceled] = []
        again.bus.subscribe(OrderCanceled, canceled.append, priority=10_000, name="test")
        again.feed.max_bars = N_BARS - 1 - 60  # type: ignore[attr-defined]
        again.run()
        with venue.lock:
            entries = [x for x in venue.book.orders.values()
                       if x.type == "MARKET" and not x.reduce_only]
    acct = again.accounts["trailing_stop"]
    # the exit still happened (the stop at 103), the entry at 106 was refused
    assert [(t.side, t.entry_seq, t.exit_seq, t.exit_reason) for t in acct.trades] == backtest
    assert acct.qty == 0.0 and len(entries) == 1
    assert any(c.reason.startswith("halted: ") and "424242" in c.reason for c in canceled)
    rec = [x for x in read_events(journal) if type(x) is Reconciled]
    assert len(rec) == 1 and rec[0].halted and "424242" in rec[0].problems[0]

    # tradebot status: from the journal alone
    capsys.readouterr()
    assert main(["status", str(tmp_path / "live")]) == 0
    text = capsys.readouterr().out
    assert "trailing_stop: flat" in text
    assert "HALTED: new entries refused" in text and "424242" in text
    assert "realized" in text and f"last bar: seq {N_BARS - 2}" in text


def test_status_refuses_what_is_not_a_journal(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    assert main(["status", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "notes.sqlite"
    bad.write_text("not a database")
    assert main(["status", str(bad)]) == 2
    assert "is not a tradebot journal" in capsys.readouterr().err


def test_a_paper_run_restarts_with_its_simulated_orders(sample: tuple[Bars, Path],
                                                       backtest: list[tuple],
                                                       tmp_path: Path) -> None:
    """Paper: the simulated broker keeps no venue, so the orders still working at the stop are
    placed on it again; the run ends with the uninterrupted run's trades."""
    bars, _ = sample
    with LocalVenue(bars, speed=0) as venue:
        cfg = load_config(LIVE, {**OVERRIDES, "mode": "paper", "costs.maker_fee_bps": 5,
                                 "output.dir": str(tmp_path / "p"), "data.venue": venue.url,
                                 "data.warmup_bars": 0, "data.poll_interval_s": 0.005,
                                 "risk": {"max_daily_loss": 1_000_000}})
        journal = tmp_path / "p" / "journal.sqlite"
        first = build_engine(cfg, journal_path=journal)
        first.feed.max_bars = 60  # type: ignore[attr-defined]
        first.run()
        held = [w.order_id for w in first.brokers["trailing_stop"].working_orders()]
        assert first.accounts["trailing_stop"].qty < 0 and held
        again = build_engine(cfg, journal_path=journal)
        assert [w.order_id for w in again.brokers["trailing_stop"].working_orders()] == held
        assert again.accounts["trailing_stop"].qty == first.accounts["trailing_stop"].qty
        # the risk limits' UTC day goes on: its starting equity is not reset by the restart
        book0, book1 = (e.brokers["trailing_stop"].book for e in (first, again))  # type: ignore
        assert (book1.day, book1.day_start_equity) == (book0.day, book0.day_start_equity)
        again.feed.max_bars = N_BARS - 1 - 60  # type: ignore[attr-defined]
        again.run()
    acct = again.accounts["trailing_stop"]
    assert [(t.side, t.entry_seq, t.exit_seq, t.exit_reason) for t in acct.trades] == backtest
    assert acct.qty < 0  # the entry at 106, as in the backtest
    assert "placed 1 working order(s) again" in (tmp_path / "p" / "reconciliation.json").read_text()
