"""Several strategies in one live run, one Apex account each (``apex_env``), against the local
venue serving the six accounts in lockstep with the real apexomni clients (REST and the private
websocket), over real candles: every strategy's trades equal its backtest's (side, entry bar,
exit bar, exit reason: the same checks as tests/adapters/test_apex_live.py for one), each
account's stops and targets are attached on the venue, each account's own records (fills,
position) are its strategy's, a websocket drop of every account in the middle of the run is
reconnected and back-filled without losing or doubling a fill, and two strategies on one account
are refused."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pytest

from adapters.apex.client import ApexCredentials
from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.bootstrap import build_engine
from engine.bus import PRIORITY_SINK
from engine.config import load_config
from engine.errors import ConfigError
from engine.events import BarClosed, OrderFilled, SubmitOrder
from tests.adapters.real_sample import real_sample

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "configs" / "live.yaml"
N_BARS = 260
SIX = ("poc_target", "vah_exit", "lvn_acceleration", "multi_tier", "trailing_stop",
       "volume_divergence")


def _creds(i: int) -> ApexCredentials:
    return ApexCredentials(f"multi-key-{i}", f"multi-secret-{i}", f"multi-pass-{i}",
                           f"{i + 1:02x}" * 64)


def _prefix(name: str) -> str:
    return f"APEX_{name.upper()}"


@pytest.fixture
def accounts_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, ApexCredentials]:
    out = {}
    for i, name in enumerate(SIX):
        c = _creds(i)
        p = _prefix(name)
        for k, v in (("API_KEY", c.key), ("API_SECRET", c.secret),
                     ("API_PASSPHRASE", c.passphrase), ("ZK_SEEDS", c.zk_seeds)):
            monkeypatch.setenv(f"{p}_{k}", v)
        out[name] = c
    return out


def _trade_keys(acct) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(t.side, t.entry_seq, t.exit_seq, t.exit_reason) for t in acct.trades]


def test_six_strategies_trade_live_each_on_its_own_account_like_the_backtest(
        real_bars: Bars, tmp_path: Path, accounts_env: dict[str, ApexCredentials],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bars, path = real_sample(real_bars, tmp_path, N_BARS)
    strategies = [{"name": n, "kind": n, "apex_env": _prefix(n),
                   "params": {"min_lock_pct": 0.0} if n == "trailing_stop" else {}}
                  for n in SIX]
    common = {"strategies": strategies, "output.report": False, "risk": None,
              "account.initial_cash": 10_000.0, "account.position_size_frac": 0.5,
              "costs.maker_fee_bps": 5}
    bt = build_engine(load_config(LIVE, {
        **common, "output.dir": str(tmp_path / "bt"), "mode": "backtest", "data.file": str(path),
        "data.venue": None, "execution.workers": 1, "execution.close_at_end": False}))
    bt_targets: set[str] = set()  # the accounts whose plans have a target (attached or not)
    bt.bus.subscribe_all(lambda e: bt_targets.add(e.account) if isinstance(e, SubmitOrder)
                         and ((e.reduce_only and e.type == "limit")
                              or math.isfinite(e.take_profit)) else None, name="test")
    bt.run()

    creds = [accounts_env[n] for n in SIX]
    with LocalVenue(bars, speed=0, taker_fee=0.0005, maker_fee=0.0005, credentials=creds[0],
                    accounts=creds[1:], websocket=True) as venue:
        cfg = load_config(LIVE, {**common, "output.dir": str(tmp_path / "live"),
                                 "data.venue": venue.url, "data.websocket": venue.ws_url,
                                 "data.warmup_bars": 0, "data.poll_interval_s": 0.005})
        live = build_engine(cfg, journal_path=tmp_path / "live" / "journal.sqlite")
        live.feed.max_bars = len(bars)  # type: ignore[attr-defined]
        fills: list[OrderFilled] = []
        live.bus.subscribe_all(lambda e: fills.append(e) if isinstance(e, OrderFilled) else None,
                               name="test")

        def drop(bar: BarClosed) -> None:  # a websocket drop in the middle of the run
            if bar.seq == N_BARS // 2:
                venue.inject("*", "ws_drop", count=2)  # every account, and one login refused

        live.bus.subscribe(BarClosed, drop, priority=PRIORITY_SINK, name="test:ws_drop")
        brokers = [getattr(b, "inner", b) for b in live.brokers.values()]
        try:
            live.run()
            # the drop in the middle: every account's stream reconnects (with backoff); what
            # the broker then does on its clock timer: back-fill from the fills endpoint
            end = time.monotonic() + 20
            while time.monotonic() < end and any(b.stream.sessions < 2 for b in brokers):
                time.sleep(0.05)
            for b in brokers:
                b.poll_stream()
        finally:
            for b in brokers:
                b.close()
        books = {n: venue.accounts[accounts_env[n].key].book for n in SIX}
        ws_fills = sum(b.ws_fills for b in brokers)
        assert venue.stream.drops == len(SIX)

    traded = 0
    attached_tp: set[str] = set()  # accounts whose attached first target filled
    for n in SIX:
        bt_trades, live_trades = _trade_keys(bt.accounts[n]), _trade_keys(live.accounts[n])
        assert live_trades == bt_trades, n
        traded += bool(bt_trades)
        book = books[n]
        mine = [f for f in fills if f.account == n]
        assert len(mine) == len(book.fills), n  # each account's own fills, once each
        assert math.isclose(live.accounts[n].qty, book.qty, abs_tol=1e-9), n
        entries = [o for o in book.orders.values() if o.type == "MARKET" and not o.reduce_only]
        still_open = bt.accounts[n].qty != 0.0  # partial exits: several trades, one entry
        assert len(entries) == len({t[1] for t in bt_trades}) + still_open, n
        if bt_trades:  # a stop and a target went out on this account for each position
            stops = [o for o in book.orders.values() if o.type == "STOP_MARKET"]
            targets = [o for o in book.orders.values()
                       if o.reduce_only and o.type in ("LIMIT", "TAKE_PROFIT_MARKET")]
            assert stops and all(o.reduce_only for o in stops), n
            assert len(stops) >= len(entries), n
            # a target on the venue exactly where the backtest had one (trailing_stop and
            # volume_divergence plans have none: they exit by trail or by signal)
            assert bool(targets) == (n in bt_targets), n
            # the plan's stop and first target ride on the entry (isOpenTpslOrder): the venue
            # activated them as the entry's children when it filled, reduce-only
            assert all(o.is_open_tpsl and o.form.get("isSetOpenSl") == "True"
                       for o in entries), n
            kids = {(o.parent_id, o.type) for o in book.orders.values() if o.parent_id}
            assert all((o.id, "STOP_MARKET") in kids for o in entries if o.status == "FILLED"), n
            assert all(((o.id, "TAKE_PROFIT_MARKET") in kids) == (n in bt_targets)
                       for o in entries if o.status == "FILLED"), n
            attached_tp.update(f.account for f in mine if f.order_id.endswith("-take_profit"))
    assert traded >= 4, "the sample must exercise most strategies"
    assert attached_tp, "an attached first target must fill (a partial) in the sample"
    # no account's keys or secrets in the run's files (journal) or in a log line
    blobs = [p.read_bytes() for p in (tmp_path / "live").rglob("*") if p.is_file()]
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert blobs
    for c in accounts_env.values():
        for secret in (c.key, c.secret, c.passphrase, c.zk_seeds):
            assert all(secret.encode() not in b for b in blobs) and secret not in text
    assert ws_fills > 0  # some fills came from the websocket first (each booked once above)
    # the drop in the middle: every account's stream lost its session, reconnected after a
    # refused login, and its broker back-filled; trades, fills and positions above (checked
    # after the back-fill) stayed exact through it: nothing lost, nothing twice
    assert all(b.stream.drops == 1 and b.stream.sessions == 2 for b in brokers)
    # each waited 0.25 s after the drop; the one refused login (the venue's, whichever account
    # came first) waited 0.5 s more
    assert sorted(b.stream.waits for b in brokers) == [[0.25]] * 5 + [[0.25, 0.5]]
    assert all(b.backfills == 1 for b in brokers)


def test_two_strategies_on_one_account_are_refused(
        accounts_env: dict[str, ApexCredentials], monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.apex.broker import ApexBroker

    two = [{"name": "a", "kind": "trailing_stop"}, {"name": "b", "kind": "multi_tier"}]
    cfg = load_config(LIVE, {"strategies": two})
    with pytest.raises(ConfigError, match=r"strategies a, b would share the account of "
                                          r"APEX_API_KEY.*apex_env"):
        ApexBroker.from_config(cfg)
    same = [{**two[0], "apex_env": "APEX_POC_TARGET"}, {**two[1], "apex_env": "APEX_POC_TARGET"}]
    with pytest.raises(ConfigError, match="would share the account of APEX_POC_TARGET_API_KEY"):
        ApexBroker.from_config(load_config(LIVE, {"strategies": same}))
    # two prefixes holding one key: the same account under two names
    monkeypatch.setenv("APEX_OTHER_API_KEY", accounts_env["poc_target"].key)
    monkeypatch.setenv("APEX_OTHER_API_SECRET", "s")
    monkeypatch.setenv("APEX_OTHER_API_PASSPHRASE", "p")
    dup = [{**two[0], "apex_env": "APEX_POC_TARGET"}, {**two[1], "apex_env": "APEX_OTHER"}]
    with pytest.raises(ConfigError, match="the same API key"):
        ApexBroker.from_config(load_config(LIVE, {"strategies": dup}))
    missing = [{**two[0], "apex_env": "APEX_NOBODY"}]
    with pytest.raises(ConfigError, match="APEX_NOBODY_API_KEY is not set"):
        ApexBroker.from_config(load_config(LIVE, {"strategies": missing}))
    with pytest.raises(ConfigError, match="apex_env"):  # a prefix must look like one
        load_config(LIVE, {"strategies": [{**two[0], "apex_env": "apex-lower"}]})


def test_the_venue_keeps_each_accounts_orders_fills_and_position_apart(real_bars: Bars) -> None:
    from adapters.apex.client import ApexClient
    from tests.adapters.test_apex_venue import order_kw

    bars = real_bars.slice(30_000, 30_040)
    a, b = _creds(0), _creds(1)
    with LocalVenue(bars, speed=0, credentials=a, accounts=[b], start=int(
            bars.ts_open_ns[5]) // 1_000_000) as venue:
        ca, cb = ApexClient(venue.url, a), ApexClient(venue.url, b)
        assert ca.account()["id"] != cb.account()["id"]
        px = f"{float(bars.close[4]) * 1.01:.1f}"
        cb.create_order(**order_kw("b-1", price=px))
        assert [p["side"] for p in cb.account()["positions"]] == ["LONG"]
        assert ca.account()["positions"] == [] and ca.fills()["orders"] == []
        assert [f["clientId"] for f in cb.fills()["orders"]] == ["b-1"]
        ca.create_order(**order_kw("b-1", price=px))  # a clientId is unique per account only
        assert venue.book is venue.accounts[a.key].book and len(venue.book.fills) == 1
        with pytest.raises(Exception, match="API_KEY_INVALID|apikey"):
            ApexClient(venue.url, ApexCredentials("nobody", "x", "y", a.zk_seeds)).balance()


def test_flatten_closes_every_strategys_account(
        real_bars: Bars, accounts_env: dict[str, ApexCredentials],
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import yaml

    from adapters.apex.client import ApexClient
    from engine.cli import main
    from tests.adapters.test_apex_venue import order_kw

    bars = real_bars.slice(30_000, 30_040)
    a, b = accounts_env["poc_target"], accounts_env["multi_tier"]
    with LocalVenue(bars, speed=0, credentials=a, accounts=[b], start=int(
            bars.ts_open_ns[5]) // 1_000_000) as venue:
        px = float(bars.close[4])
        ApexClient(venue.url, a).create_order(**order_kw("a-1", price=f"{px * 1.01:.1f}"))
        ApexClient(venue.url, b).create_order(**order_kw("b-1", side="SELL", size="0.020",
                                                         price=f"{px * 0.99:.1f}"))
        books = [venue.accounts[c.key].book for c in (a, b)]
        assert [bk.qty for bk in books] == pytest.approx([0.01, -0.02])
        raw = yaml.safe_load(LIVE.read_text())
        raw["strategies"] = [{"name": n, "kind": n, "apex_env": _prefix(n)}
                             for n in ("poc_target", "multi_tier")]
        cfg = tmp_path / "live2.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        assert main(["flatten", str(cfg), "--venue", venue.url]) == 0
        out = capsys.readouterr().out
        assert "flatten [poc_target]: closed the LONG position of 0.01" in out
        assert "flatten [multi_tier]: closed the SHORT position of 0.02" in out
        assert [bk.qty for bk in books] == [0.0, 0.0]
