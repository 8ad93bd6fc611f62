"""Live mode end to end (mode: live = the Apex feed + the Apex broker) against the local venue in
lockstep, with the real apexomni client, over real candles: the same bars through a backtest and
a live run give the same trades bar by bar; stops are on the venue from the entry's fill and are
replaced (new first) as the plugin trails them, never absent; partial exits are reduce-only venue
orders; and the distinctive API secrets of the run appear in no output file and no log line.

What must match the backtest and why: the side, entry bar, exit bar and exit reason of every
trade, because the venue matches with the engine's own intrabar policy on the same candles, a
market order placed on bar N's close fills at N+1's open there as in the backtest
(``market_fill: next_open``), and the broker books it before bar N+1 so the plugin's stop works
from N+1's open in both. What may differ: sizes (the live broker sizes at the venue's worst-price
guard, 0.1 % above the market, rounded down to the 0.001 step; the backtest at the fill price) and
so PnL and fees; prices are equal here because the venue has no slippage configured.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from adapters.apex.client import ApexCredentials
from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.bootstrap import build_engine
from engine.config import load_config
from engine.events import ModifyOrder, OrderFilled, SubmitOrder
from tests.adapters.real_sample import real_sample

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "configs" / "live.yaml"
N_BARS = 420
SECRETS = ApexCredentials("tb-key-7c1f9e", "tb-SECRET-93af0d2b", "tb-PASS-5e8a71",
                          "c0ffee" * 22)


def _trade_keys(acct) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(t.side, t.entry_seq, t.exit_seq, t.exit_reason) for t in acct.trades]


@pytest.fixture(scope="module")
def sample(real_bars: Bars, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bars, Path]:
    return real_sample(real_bars, tmp_path_factory.mktemp("live"), N_BARS)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> ApexCredentials:
    for k, v in (("APEX_API_KEY", SECRETS.key), ("APEX_API_SECRET", SECRETS.secret),
                 ("APEX_API_PASSPHRASE", SECRETS.passphrase), ("APEX_ZK_SEEDS", SECRETS.zk_seeds)):
        monkeypatch.setenv(k, v)
    return SECRETS


@pytest.mark.parametrize("strategy", ["trailing_stop", "multi_tier"])
def test_live_run_trades_like_the_backtest_with_stops_on_the_venue(
        sample: tuple[Bars, Path], tmp_path: Path, strategy: str, secrets_env: ApexCredentials,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bars, path = sample
    params = {"min_lock_pct": 0.0} if strategy == "trailing_stop" else {}  # trail early
    one = {"strategies": [{"name": strategy, "kind": strategy, "params": params}],
           "output.report": False, "risk": None,  # the limits: tests/engine/test_risk.py
           "account.initial_cash": 10_000.0, "account.position_size_frac": 0.5,
           "costs.maker_fee_bps": 5}
    bt_cfg = load_config(LIVE, {**one, "output.dir": str(tmp_path / "bt"), "mode": "backtest",
                                "data.file": str(path), "data.venue": None,
                                "execution.workers": 1, "execution.close_at_end": False})
    bt = build_engine(bt_cfg)
    bt_mods: list[ModifyOrder] = []
    bt.bus.subscribe_all(lambda e: bt_mods.append(e) if isinstance(e, ModifyOrder) else None,
                         name="test")
    bt.run()

    # the venue's fees as the backtest's (5 bps both ways), no slippage, the env's credentials
    with LocalVenue(bars, speed=0, taker_fee=0.0005, maker_fee=0.0005) as venue:
        assert venue.credentials.secret == SECRETS.secret  # one .env drives both
        cfg = load_config(LIVE, {**one, "output.dir": str(tmp_path / "live"),
                                 "data.venue": venue.url, "data.warmup_bars": 0,
                                 "data.poll_interval_s": 0.005})
        live = build_engine(cfg, journal_path=tmp_path / "live" / "journal.sqlite")
        live.feed.max_bars = len(bars)  # type: ignore[attr-defined]
        subs: list[SubmitOrder] = []
        mods: list[ModifyOrder] = []
        fills: list[OrderFilled] = []
        live.bus.subscribe_all(lambda e: (subs.append(e) if isinstance(e, SubmitOrder) else
                                          mods.append(e) if isinstance(e, ModifyOrder) else
                                          fills.append(e) if isinstance(e, OrderFilled) else None),
                               name="test")
        live.run()
        book = venue.book
        orders = list(book.orders.values())
        requests = list(venue.requests)

    bt_trades, live_trades = _trade_keys(bt.accounts[strategy]), _trade_keys(
        live.accounts[strategy])
    assert len(bt_trades) >= 3, "the sample must exercise the strategy"
    assert live_trades == bt_trades
    # the venue's own records agree: one MARKET entry per trade, every fill the engine booked
    assert len(fills) == len(book.fills)
    still_open = bt.accounts[strategy].qty != 0.0  # no close at the end: positions stay
    assert (live.accounts[strategy].qty != 0.0) == still_open
    assert sum(1 for o in orders if o.type == "MARKET" and not o.reduce_only) == \
        len(bt_trades) + still_open
    assert math.isclose(live.accounts[strategy].qty, book.qty, abs_tol=1e-9)

    # stops: attached to the entry (isOpenTpslOrder: on the venue from its fill), replaced
    # new-first, never absent while a position is open. Replay the venue's order log: every
    # entry carries its stop, and every POST /order of a stop comes before the cancel of the
    # stop it replaces.
    stops = [o for o in orders if o.type == "STOP_MARKET"]
    assert stops and all(o.reduce_only for o in stops)
    entries = [o for o in orders if o.type == "MARKET" and not o.reduce_only]
    assert all(o.is_open_tpsl and o.form.get("isSetOpenSl") == "True" for o in entries)
    by_parent = {o.parent_id: o for o in stops if o.parent_id}
    filled = [o for o in entries if o.status == "FILLED"]
    assert filled and all(o.id in by_parent for o in filled)  # each fill activated its stop
    assert all(by_parent[o.id].client_id == o.form["slClientOrderId"] for o in filled)
    posts = [r for r in requests if r["method"] == "POST" and r.get("error") is None]
    live_stops: set[str] = set()  # clientIds of the stops working for the current position
    for r in posts:
        f = r["form"]
        if r["path"] == "/api/v3/order" and f.get("type") == "MARKET" and \
                f.get("reduceOnly") != "True":
            # a new position (the last one closed: its stops died with it), its stop attached
            live_stops = {f["slClientOrderId"]}
        elif r["path"] == "/api/v3/order" and f.get("type") == "STOP_MARKET":
            live_stops.add(f["clientId"])
        elif r["path"] == "/api/v3/delete-client-order-id":
            assert f["id"] in live_stops and len(live_stops) >= 2, \
                "a stop was canceled before its replacement was placed"
            live_stops.discard(f["id"])
    if strategy == "trailing_stop":
        assert mods, "the plugin trailed its stop"
        assert [(m.price, m.tag) for m in mods] == [(m.price, m.tag) for m in bt_mods]
        assert len(stops) > len(bt_trades)  # replaced at least once
        n_del = sum(1 for r in posts if r["path"] == "/api/v3/delete-client-order-id")
        assert n_del == len(mods)  # every move: new stop placed, then the old one canceled
        # the first move of a position replaces the stop attached to its entry
        attached = {o.form["slClientOrderId"] for o in entries}
        deleted = [r["form"]["id"] for r in posts
                   if r["path"] == "/api/v3/delete-client-order-id"]
        assert attached & set(deleted)
        assert all(m.order_id.endswith("-stop_loss") for m in mods)
        assert any(o.form.get("triggerPrice") for o in stops)
    if strategy == "multi_tier":
        partials = [o for o in orders if o.reduce_only and o.type in ("LIMIT", "MARKET")
                    and o.parent_id == ""]
        assert partials, "multi_tier takes partial profits"
        assert sum(1 for s in subs if s.reduce_only and s.type == "limit") >= len(partials)
        # tier 1 is the entry's attached target: 15 % of the entry's size, reduce-only
        assert all(o.form.get("isSetOpenTp") == "True" for o in entries)
        tps = [o for o in orders if o.type == "TAKE_PROFIT_MARKET"]
        assert tps and all(o.reduce_only and o.parent_id for o in tps)
        sizes = {o.id: o.size for o in entries}
        step = 0.001  # the venue's stepSize: the target is rounded down to it
        assert all(sizes[o.parent_id] * 0.15 - step < o.size <= sizes[o.parent_id] * 0.15 + 1e-9
                   for o in tps)

    # secrets: in no output file and no log line
    blobs = [p.read_bytes() for p in (tmp_path / "live").rglob("*") if p.is_file()]
    assert blobs, "the live run wrote its journal"
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in (SECRETS.key, SECRETS.secret, SECRETS.passphrase, SECRETS.zk_seeds):
        assert all(secret.encode() not in b for b in blobs), secret
        assert secret not in text, secret


def test_cli_live_run_leaks_no_secret(sample: tuple[Bars, Path], tmp_path: Path,
                                      secrets_env: ApexCredentials,
                                      capsys: pytest.CaptureFixture[str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    """`tradebot run configs/live.yaml` with distinctive secrets in the environment: none of
    them in any file of the output folder (config.resolved.yaml, journal, results), stdout,
    stderr or a log record, including a refused signature's error."""
    from engine.cli import main

    caplog.set_level(logging.DEBUG)
    bars, _ = sample
    b = bars.slice(0, 260)
    out = tmp_path / "out"
    with LocalVenue(b, speed=0, start=int(b.ts_open_ns[230]) // 1_000_000) as venue:
        rc = main(["run", str(LIVE), "--venue", venue.url, "--max-bars", "20",
                   "--out", str(out)])
        requests = list(venue.requests)
    o, e = capsys.readouterr()
    assert rc == 0, e
    assert (out / "config.resolved.yaml").is_file() and (out / "journal.sqlite").is_file()
    assert any(r["path"] == "/api/v3/fills" for r in requests)  # the Apex broker was wired
    # a wrong secret: the venue refuses the signature; the error names the variables only
    with LocalVenue(b, speed=0, credentials=ApexCredentials(
            SECRETS.key, "another-secret", SECRETS.passphrase, SECRETS.zk_seeds)) as venue:
        from adapters.apex.client import ApexClient
        from engine.errors import VenueError

        with pytest.raises(VenueError) as err:
            ApexClient(venue.url).balance()
    blobs = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    text = "\n".join([o, e, str(err.value)] + [f"{r.getMessage()} {r.exc_text or ''}"
                                               for r in caplog.records])
    assert "APEX_API_SECRET" in str(err.value)
    for secret in (SECRETS.key, SECRETS.secret, SECRETS.passphrase, SECRETS.zk_seeds):
        assert all(secret.encode() not in blob for blob in blobs), secret
        assert secret not in text, secret
