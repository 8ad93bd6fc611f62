"""The ZeroMQ bridge with real sockets on loopback (random ports, linger 0 everywhere): sequence
and gaps, snapshot on late join, a stalled subscriber, commands (ids, timeouts, validation,
journal), pause stopping entries, manual trading in paper mode, and CURVE refusing strangers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from adapters.csv_feed import CsvFeed
from adapters.zmq_bridge import Settings, ZmqBridge, is_local
from adapters.zmq_client import CommandClient, CurveKeys, request
from engine import wire
from engine.bootstrap import build_engine
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.events import BarClosed, OrderCanceled, SignalRaised, SubmitOrder, TradeClosed
from engine.journal import read_events

BARS = 1500


def _config(mode: str = "backtest", **extra: object) -> RunConfig:
    return RunConfig.model_validate({
        "name": "bridge-test", "mode": mode, "data": {"file": "unused.csv"},
        "features": [{"id": "vp", "kind": "volume_profile",
                      "params": {"lookback": 200, "bins": 80, "mode": "close"}}],
        "signals": {"kind": "signals", "params": {}},
        "strategies": [{"name": "poc_target", "kind": "poc_target"},
                       {"name": "trailing_stop", "kind": "trailing_stop"}],
        "execution": {"close_at_end": False},
        **extra,
    })


def _settings(**kw: object) -> Settings:
    base = {"pub": "tcp://127.0.0.1:0", "commands": "tcp://127.0.0.1:0", "max_cpu_share": 1.0,
            "snapshot_bars": 5000}
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def bars(real_bars):
    return real_bars.slice(0, BARS)


def _engine(bars, mode="backtest", n=None, **cfg):
    return build_engine(_config(mode, **cfg), feed=CsvFeed.from_bars(bars if n is None
                                                                      else bars.slice(0, n)))


def _sub(ctx, bridge, topic=b"", rcvhwm=100_000):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.rcvhwm = rcvhwm
    if rcvhwm < 10:
        s.rcvbuf = 1024  # a small kernel buffer too: the pipe fills within a few messages
    s.subscribe(topic)
    s.connect(bridge.pub_addr)
    return s


def _wait_subscribed(bridge, timeout=5.0):
    """Before the run the test thread is the engine thread: idle() reads XPUB's subscriptions."""
    end = time.monotonic() + timeout
    while not bridge._subscribed:
        assert time.monotonic() < end, "the subscription never reached the bridge"
        bridge.idle()
        time.sleep(0.01)


def _drain(sock, quiet_ms=300):
    out = []
    while sock.poll(quiet_ms):
        topic, payload = sock.recv_multipart()
        out.append((topic, wire.decode(payload)))
    return out


def _run_in_thread(engine):
    t = threading.Thread(target=engine.run, daemon=True)
    t.start()
    return t


def test_every_message_in_order_with_one_sequence(bars, ctx):
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(), context=ctx)
    sub = _sub(ctx, br)
    _wait_subscribed(br)
    eng.run()
    br.run_finished(None)
    msgs = _drain(sub)
    br.close()
    seqs = [m["seq"] for _, m in msgs]
    # the heartbeats idle() published while the subscription travelled may predate it
    assert seqs == list(range(seqs[0], br.seq + 1))
    assert all(m["type"] == "status" for _, m in msgs[:1])
    assert br.skipped == 0 and br.sent == br.seq
    assert {m["run"] for _, m in msgs} == {br.run_id}
    bar_msgs = [m for t, m in msgs if t == b"bar.BTC-USDT"]
    assert [m["data"]["seq"] for m in bar_msgs] == list(range(BARS))
    assert bar_msgs[5]["data"]["close"] == bars.close[5]
    # each bar: bar, features, the bar's events, equity - with that bar's seq
    kinds = [t.split(b".")[0] for t, _ in msgs]
    i = kinds.index(b"bar")
    assert kinds[i + 1] == b"features"
    # every bar's own events (placed by time: the bridge queues them without a bar count) sit
    # between its features and its equity, none before its bar or after its equity
    at, open_bar, placed = None, False, 0
    for kind, (_, m) in zip(kinds, msgs, strict=True):
        if kind == b"bar":
            at, open_bar = m["ts"], True
        elif kind == b"equity":
            assert open_bar
            open_bar = False
        elif kind in (b"signal", b"order", b"fill", b"trade"):
            assert open_bar and m["ts"] == at, (kind, m)
            placed += 1
    assert placed > 20, "the test needs events"
    feats = next(m for t, m in msgs if t.startswith(b"features.") and m["data"]["bar_seq"] == 900)
    assert {"vp_poc", "vp_vah", "vp_val"} <= set(feats["data"]["values"])
    assert feats["data"]["values"]["vp_poc"] == eng.features.backing("vp_poc")[900]
    eq = [m for t, m in msgs if t.startswith(b"equity.")]
    assert len(eq) == BARS and set(eq[-1]["data"]["equity"]) == {"poc_target", "trailing_stop"}
    # the equity stream equals the accounts' own marking
    close = bars.close
    for name, acct in eng.accounts.items():
        curve = acct.equity_curve(close)
        assert eq[-1]["data"]["equity"][name] == pytest.approx(curve[-1], rel=1e-12)
        assert eq[700]["data"]["equity"][name] == pytest.approx(curve[700], rel=1e-12)
    signals = [m for t, m in msgs if t.startswith(b"signal.")]
    assert signals and all(wire.to_event(m).alarm_id for m in signals)
    status = [m for t, m in msgs if t.startswith(b"status.")][-1]["data"]
    assert status["finished"] and not status["alive"] and status["bar_seq"] == BARS - 1


def test_nobody_subscribed_costs_no_trade_events_and_snapshots_stay_complete(bars, ctx):
    """With nobody on the PUB socket the bridge hears only what snapshots keep: TradeClosed stays
    unheard (the engine does not publish it; snapshots read the accounts' trades). A subscriber
    makes it subscribe to everything; when the last one leaves, it goes back."""
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(), context=ctx)
    # orders reach the bridge last (a deque's append, under the bridge's name); bars never do
    assert eng.bus.handler_names(SubmitOrder, "poc_target")[-1] == "zmq-bridge"
    assert "zmq-bridge" not in eng.bus.handler_names(BarClosed) and eng.bus.tickers
    eng.run()
    br.run_finished(None)  # the last round: a snapshot shows the trades up to it
    assert TradeClosed in eng.bus.unheard and OrderCanceled not in eng.bus.unheard
    assert br.sent == br.seq - br.skipped  # nothing but heartbeats went out
    rep = request(br.commands_addr, "snapshot", ctx=ctx)
    assert rep["ok"]
    snap = rep["snapshot"]
    trades = sorted((t for a in eng.accounts.values() for t in a.trades),
                    key=lambda t: t.ts_event_ns)
    assert len(trades) > 3, "the test needs trades"
    first_ts = snap["bars"][0]["ts_event_ns"]
    want = [(t.account, t.exit_seq, t.pnl) for t in trades if t.ts_event_ns >= first_ts]
    assert [(t["account"], t["exit_seq"], t["pnl"]) for t in snap["trades"]] == want
    assert snap["signals"] and snap["fills"] and snap["orders"]
    assert any("stop" in o.get("order_id", "") for o in snap["orders"]), "children canceled"
    sub = _sub(ctx, br)
    _wait_subscribed(br)  # a round saw the subscriber: every type is heard now
    assert not {TradeClosed, OrderCanceled, SignalRaised} & eng.bus.unheard
    br(trades[-1])  # a trade published while watched: the round learns it is not kept...
    br.idle()
    sub.close()
    deadline = time.monotonic() + 5
    while TradeClosed not in eng.bus.unheard:
        assert time.monotonic() < deadline, "the bridge never noticed the subscriber left"
        br.idle()
        time.sleep(0.01)
    # ...which does not make it heard again once nobody is subscribed
    assert eng.bus.handler_names(SubmitOrder, "poc_target")[-1] == "zmq-bridge"
    br.close()


def test_a_budget_overrun_is_a_gap_and_a_snapshot_repairs_it(bars, ctx):
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(max_cpu_share=0.0001), context=ctx)  # nearly nothing fits
    br._every, br._interval = 1, 1e-9  # a round every bar, each over budget
    sub = _sub(ctx, br)
    _wait_subscribed(br)
    _drain(sub, 100)
    br.idle()  # one heartbeat: the subscriber's starting point
    assert sub.poll(2000)
    start = wire.decode(sub.recv_multipart()[1])["seq"]
    eng.run()
    br.run_finished(None)
    msgs = _drain(sub)
    tracker = wire.SeqTracker()
    tracker.reset(br.run_id, start)
    verdicts = [tracker.check(m["run"], m["seq"]) for _, m in msgs]
    assert "gap" in verdicts and br.skipped > 0
    rep = request(br.commands_addr, "snapshot", ctx=ctx)
    br.close()
    assert rep["ok"] and rep["seq"] == br.seq
    snap = rep["snapshot"]
    assert [b["seq"] for b in snap["bars"]] == list(range(BARS))  # complete despite the skips
    assert len(snap["features"]) == BARS and len(snap["equity"]) == BARS


def test_late_joiner_is_complete_with_no_duplicates(bars, ctx):
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(speed=3000.0, snapshot_bars=BARS), context=ctx)
    t = _run_in_thread(eng)
    time.sleep(0.2)  # the run is well under way when the UI opens
    sub = _sub(ctx, br)
    tracker = wire.SeqTracker()
    have: dict[int, dict] = {}
    snapshots = 0

    def resync():
        nonlocal snapshots
        rep = request(br.commands_addr, "snapshot", ctx=ctx)
        assert rep["ok"], rep
        snapshots += 1
        tracker.reset(rep["snapshot"]["run"], rep["seq"])
        for b in rep["snapshot"]["bars"]:
            have[b["seq"]] = b

    resync()
    first_snapshot_bars = len(have)
    assert 0 < first_snapshot_bars < BARS
    applied = 0
    while t.is_alive() or sub.poll(200):
        if not sub.poll(100):
            continue
        _, payload = sub.recv_multipart()
        m = wire.decode(payload)
        verdict = tracker.check(m["run"], m["seq"])
        if verdict in ("gap", "restart"):
            resync()
            continue
        if verdict == "dup":
            continue
        if m["type"] == "BarClosed":
            assert m["data"]["seq"] not in have, "a bar arrived twice after the seq rule"
            have[m["data"]["seq"]] = m["data"]
            applied += 1
    br.run_finished(None)
    br.close()
    assert sorted(have) == list(range(BARS))
    assert applied > 0 and snapshots >= 1


def test_a_stalled_subscriber_does_not_slow_the_engine(bars, ctx):
    def run(stalled: bool) -> tuple[float, ZmqBridge, zmq.Socket, threading.Thread | None]:
        eng = _engine(bars)
        br = ZmqBridge(eng, _settings(hwm=1 if stalled else 1000), context=ctx)
        sub = _sub(ctx, br, rcvhwm=1 if stalled else 1000)
        _wait_subscribed(br)
        reader = None
        if not stalled:  # a subscriber that keeps up, read in another thread
            stop = threading.Event()

            def read():
                while not stop.is_set():
                    if sub.poll(20):
                        sub.recv_multipart()
            reader = threading.Thread(target=read, daemon=True)
            reader.stop = stop  # type: ignore[attr-defined]
            reader.start()
        t0 = time.perf_counter()
        eng.run()
        dt = time.perf_counter() - t0
        br.run_finished(None)
        return dt, br, sub, reader

    t_ok, br_ok, sub_ok, reader = run(stalled=False)
    reader.stop.set()
    reader.join()
    br_ok.close()
    t_stalled, br, sub, _ = run(stalled=True)
    # the engine finished; a subscriber that never reads costs it nothing extra (the reading one
    # even competes for the GIL). Loose bound: this machine is shared and timings are noisy.
    assert t_stalled < 1.5 * t_ok + 0.5, (t_stalled, t_ok)
    assert br.sent == br.seq and br.sent > 3 * BARS  # everything went out, none waited
    got = _drain(sub, 200)
    br.idle()  # one more heartbeat, now that the pipe has room: the message after the gap
    got += _drain(sub, 500)
    br.close()
    # ZeroMQ dropped what did not fit the stalled pipe: the subscriber sees fewer and a gap
    assert 0 < len(got) < br.sent // 10
    tracker = wire.SeqTracker()
    tracker.reset(br.run_id, got[0][1]["seq"] - 1)
    assert "gap" in [tracker.check(m["run"], m["seq"]) for _, m in got]


def test_requests_ids_validation_and_timeouts(bars, ctx, tmp_path):
    eng = _engine(bars, n=400, journal={"enabled": True, "path": str(tmp_path / "j.sqlite")})
    br = ZmqBridge(eng, _settings(speed=200.0), context=ctx)
    client = CommandClient(br.commands_addr, timeout_s=3.0)
    r: dict[str, dict] = {}

    def front_end() -> None:  # the UI's side, while this test's thread runs the engine
        r["ping"] = request(br.commands_addr, "ping", id="my-id-1", ctx=ctx)
        r["bad"] = request(br.commands_addr, "explode", ctx=ctx)
        r["missing"] = request(br.commands_addr, "close", ctx=ctx)
        r["no_alarm"] = client.buy("poc_target", alarm_id="BTC-USDT-15m-nope")
        r["refused"] = client.close("poc_target")
        r["paused"] = client.pause(reason="test")

        def ask(i: int) -> None:
            r[f"t{i}"] = request(br.commands_addr, "ping", id=f"t{i}", ctx=ctx)
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    fe = threading.Thread(target=front_end)
    fe.start()
    eng.run()
    fe.join()
    br.run_finished(None)
    assert r["ping"]["id"] == "my-id-1" and r["ping"]["ok"]
    assert r["ping"]["result"]["run"] == br.run_id
    assert not r["bad"]["ok"] and "unknown op 'explode'" in r["bad"]["error"]
    assert not r["missing"]["ok"] and "needs ['strategy']" in r["missing"]["error"]
    assert not r["no_alarm"]["ok"]
    assert "alarm 'BTC-USDT-15m-nope' is not among" in r["no_alarm"]["error"]
    # backtest: trading refused with the reason, pause accepted (and reported)
    assert not r["refused"]["ok"] and "backtest mode" in r["refused"]["error"]
    assert "not live" in r["refused"]["error"]
    assert r["paused"]["ok"] and r["paused"]["result"]["paused"] and r["paused"]["paused"]
    # concurrent requests from threads each get their own reply
    assert all(r[f"t{i}"]["id"] == f"t{i}" and r[f"t{i}"]["ok"] for i in range(8))
    after = client.pause()
    assert not after["ok"] and "finished" in after["error"]
    br.close()
    # nobody listening: the client times out with the reason instead of hanging
    s = ctx.socket(zmq.ROUTER)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close(0)
    t0 = time.perf_counter()
    gone = request(f"tcp://127.0.0.1:{port}", "ping", timeout_s=0.3, ctx=ctx)
    assert gone["timeout"] and not gone["ok"] and "no reply" in gone["error"]
    assert time.perf_counter() - t0 < 2.0
    # the applied and the refused command are in the journal
    cmds = [e for e in read_events(tmp_path / "j.sqlite") if type(e).__name__ == "CommandApplied"]
    assert [(c.op, c.ok) for c in cmds] == [("close", False), ("pause", True)]
    assert cmds[1].args == {"reason": "test"} and cmds[1].request_id == r["paused"]["id"]


def test_pause_stops_new_entries(bars, ctx):
    def entries(pause: bool) -> tuple[list[SubmitOrder], list[SignalRaised], int]:
        eng = _engine(bars)
        orders: list[SubmitOrder] = []
        signals: list[SignalRaised] = []
        eng.bus.subscribe(SubmitOrder, orders.append, priority=999, name="test-orders")
        eng.bus.subscribe(SignalRaised, signals.append, priority=999, name="test-signals")
        br = ZmqBridge(eng, _settings(speed=4000.0), context=ctx)
        at = -1
        t = _run_in_thread(eng)
        if pause:
            rep = request(br.commands_addr, "pause", ctx=ctx, timeout_s=5)
            assert rep["ok"], rep
            at = rep["bar_seq"]
        t.join(30)
        br.run_finished(None)
        br.close()
        return [o for o in orders if o.tag == "ENTRY"], signals, at

    free, free_signals, _ = entries(pause=False)
    held, held_signals, at = entries(pause=True)
    assert at < BARS // 3
    late = [o for o in free if o.seq > at + 1]
    assert late, "the unpaused run must enter after the pause bar (else this test proves nothing)"
    # paused: the signals keep coming, no strategy opens a position after the pause
    assert len(held_signals) == len(free_signals)
    assert [o for o in held if o.seq > at] == []


def test_manual_trading_in_paper_mode(bars, ctx):
    eng = _engine(bars, mode="paper")
    br = ZmqBridge(eng, _settings(speed=1000.0), context=ctx)
    sub = _sub(ctx, br, b"command.")
    client = CommandClient(br.commands_addr, timeout_s=5.0)
    t = _run_in_thread(eng)
    time.sleep(0.3)
    unknown = client.close("nope")
    assert not unknown["ok"] and "unknown strategy 'nope'" in unknown["error"]
    assert "poc_target" in unknown["error"]
    wrong = client.buy("poc_target", price=100.0, stop=110.0)
    assert not wrong["ok"] and "wrong side" in wrong["error"]
    # the sidebar's question: setups and the profile (not a command: no command event)
    deadline = time.monotonic() + 10
    while not (snap := client.snapshot()["snapshot"])["signals"]:
        assert time.monotonic() < deadline, "no signal yet"
        time.sleep(0.05)
    alarm = snap["signals"][-1]["alarm_id"]
    setup = client.setup(alarm)
    assert setup["ok"], setup
    plans = setup["result"]["strategies"]
    assert set(plans) == {"poc_target", "trailing_stop"}
    sig = snap["signals"][-1]
    for p in plans.values():
        assert p["entry"] == sig["entry_price"] and p["side"] == sig["side"]
        assert (p["stop"] < p["entry"]) == (sig["side"] == "long")
    prof = setup["result"]["profile"]
    assert len(prof["prices"]) == len(prof["volumes"]) == 80 and prof["val"] <= prof["poc"]
    assert prof["poc"] <= prof["vah"]
    assert client.setup()["result"]["profile"]["prices"]  # the current bar's
    assert client.pause()["ok"]  # no signal entry races the manual one
    expected = [("close", False), ("buy", False), ("pause", True)]
    time.sleep(0.1)  # ~100 bars: an entry submitted just before the pause has filled
    name = "poc_target"

    def wait(cond, what):
        deadline = time.monotonic() + 5
        while not cond():
            assert time.monotonic() < deadline, what
            time.sleep(0.01)
    if eng.accounts[name].qty != 0.0:
        assert client.close(name)["ok"]
        expected.append(("close", True))
        wait(lambda: eng.accounts[name].qty == 0.0, "the close never filled")
    last = client.snapshot(1)["snapshot"]["bars"][-1]["close"]
    bought = client.buy(name, stop=last * 0.97, target=last * 1.05)
    assert bought["ok"], bought
    wait(lambda: eng.accounts[name].qty > 0, "the manual entry never filled")
    # the snapshot shows the position with its plan, from the broker's working orders
    wait(lambda: name in client.snapshot(5)["snapshot"]["positions"], "no position in snapshot")
    pos = client.snapshot(5)["snapshot"]["positions"][name]
    assert pos["side"] == "long" and pos["qty"] == pytest.approx(eng.accounts[name].qty)
    assert pos["stop"] < pos["entry_price"] and pos["orders"]
    closed = client.close(name)
    assert closed["ok"], closed
    wait(lambda: eng.accounts[name].qty == 0.0 and eng.accounts[name].trades[-1].exit_reason
         == "MANUAL_CLOSE", "the manual close never filled")
    flatten = client.flatten()
    assert flatten["ok"]
    t.join(30)
    br.run_finished(None)
    expected += [("buy", True), ("close", True), ("flatten", True)]
    events = [wire.decode(p) for _, p in (sub.recv_multipart() for _ in expected)]
    br.close()
    ops = [(e["data"]["op"], e["data"]["ok"]) for e in events]
    assert ops == expected


def test_curve_refuses_peers_without_an_allowed_key(bars, ctx, tmp_path):
    import zmq.auth

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    _, stranger_secret = zmq.auth.create_certificates(keys, "stranger")
    Path(allowed / "client.key").write_bytes(Path(client_public).read_bytes())
    eng = _engine(bars, n=50)
    br = ZmqBridge(eng, _settings(server_secret_file=str(server_secret),
                                  clients_dir=str(allowed)), context=ctx)
    try:
        t = _run_in_thread(eng)
        good = CurveKeys.from_files(client_secret, keys / "server.key")
        rep = request(br.commands_addr, "ping", curve=good, ctx=ctx)
        assert rep["ok"] and rep["result"]["pong"]
        stranger = CurveKeys.from_files(stranger_secret, keys / "server.key")
        assert request(br.commands_addr, "pause", curve=stranger, timeout_s=0.5,
                       ctx=ctx)["timeout"]
        assert request(br.commands_addr, "pause", timeout_s=0.5, ctx=ctx)["timeout"]
        assert not br.paused  # neither reached the engine
        # the event stream is encrypted too: a subscriber with the key gets it
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        good.apply(sub)
        sub.subscribe(b"")
        sub.connect(br.pub_addr)
        t.join(30)
        br.run_finished(None)
        for _ in range(30):  # this thread drives the finished engine: heartbeats
            br.idle()
            if sub.poll(200):
                break
        assert wire.decode(sub.recv_multipart()[1])["run"] == br.run_id
    finally:
        br.close()


def test_non_loopback_needs_curve(bars, ctx):
    assert is_local("tcp://127.0.0.1:5555") and is_local("ipc:///tmp/x")
    assert not is_local("tcp://0.0.0.0:5555") and not is_local("tcp://10.0.0.5:5555")
    eng = _engine(bars, n=10)
    with pytest.raises(ConfigError, match="not loopback: set publish.curve"):
        ZmqBridge(eng, _settings(pub="tcp://0.0.0.0:0"), context=ctx)


def test_config_turns_the_bridge_on(bars):
    eng = _engine(bars, n=200, publish={"enabled": True, "pub": "tcp://127.0.0.1:0",
                                        "commands": "tcp://127.0.0.1:0"})
    try:
        (br,) = eng.sinks
        assert isinstance(br, ZmqBridge)
        eng.run()
        assert br.finished and br.bar_seq == 199
        assert request(br.commands_addr, "ping")["result"]["finished"]
        # the asyncio client (what a python-telegram-bot handler awaits)
        import asyncio

        from adapters.zmq_client import arequest

        rep = asyncio.run(arequest(br.commands_addr, "ping", id="tg-1"))
        assert rep["ok"] and rep["id"] == "tg-1" and rep["result"]["run"] == br.run_id
        refused = asyncio.run(arequest(br.commands_addr, "pause"))
        assert not refused["ok"] and "finished" in refused["error"]
    finally:
        eng.close()


def _free_addr(ctx) -> str:
    s = ctx.socket(zmq.ROUTER)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close(0)
    return f"tcp://127.0.0.1:{port}"


def test_replay_command_paces_real_candles_and_takes_pause_only(real_data_path, ctx, tmp_path):
    import yaml

    from engine.cli import main

    cfg = _config().model_copy(update={"data": _config().data.model_copy(
        update={"file": real_data_path})})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(
        {"config_hash": cfg.config_hash(), **cfg.resolved_dict()}))
    pub, cmd = _free_addr(ctx), _free_addr(ctx)
    rc: list[int] = []
    th = threading.Thread(target=lambda: rc.append(main(
        ["replay", str(run_dir), "--bars", "300", "--speed", "100", "--publish", pub,
         "--commands", cmd])), daemon=True)
    th.start()
    ping = request(cmd, "ping", timeout_s=10, ctx=ctx)  # the bridge is bound
    assert ping["ok"] and ping["result"]["mode"] == "backtest"
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 100_000
    sub.subscribe(b"")
    sub.connect(pub)
    assert sub.poll(10_000)  # the subscription is through (slow joiner): commands come next
    t0 = time.monotonic()
    paused = request(cmd, "pause", ctx=ctx)
    refused = request(cmd, "flatten", ctx=ctx)
    snap = request(cmd, "snapshot", ctx=ctx)["snapshot"]
    th.join(30)
    took = time.monotonic() - t0
    assert rc == [0]
    assert paused["ok"] and not refused["ok"] and "not live" in refused["error"]
    msgs = _drain(sub, 200)
    bars_seen = [m["data"]["seq"] for t, m in msgs if t.startswith(b"bar.")]
    assert bars_seen and bars_seen[-1] == 299
    assert bars_seen == list(range(bars_seen[0], 300))  # in order, none lost
    assert 1.0 < took < 20  # paced at 100 bars/s, not as fast as possible
    cmds = [m["data"] for t, m in msgs if t.startswith(b"command.")]
    assert [(c["op"], c["ok"]) for c in cmds] == [("pause", True), ("flatten", False)]
    assert [(c["op"], c["ok"]) for c in snap["commands"]] == [("pause", True),
                                                             ("flatten", False)]
    assert main(["replay", str(tmp_path / "nope")]) == 2


def test_run_publish_flag(tmp_path, real_data_path, ctx):
    import yaml

    from engine.cli import main

    cfg = _config().resolved_dict()
    cfg["data"] = {"file": str(real_data_path), "end": "2023-04-12 00:00"}
    cfg["output"] = {"dir": str(tmp_path / "out"), "report": False, "progress": False}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    addr = _free_addr(ctx)
    assert main(["run", str(path), "--publish", addr]) == 0
    assert (tmp_path / "out" / "config.resolved.yaml").is_file()
    resolved = yaml.safe_load((tmp_path / "out" / "config.resolved.yaml").read_text())
    assert resolved["publish"]["enabled"] and resolved["publish"]["pub"] == addr


def test_set_speed_changes_the_pace_of_a_running_replay(bars, ctx):
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(speed=20.0), context=ctx)  # 1500 bars would take 75 s
    t = _run_in_thread(eng)
    time.sleep(0.3)
    assert t.is_alive() and eng.store.count < 100
    br.set_speed(0)  # what a UI test does to finish a replay
    t.join(30)
    assert not t.is_alive() and eng.store.count == BARS
    br.run_finished(None)
    br.close()


def test_a_setup_asked_before_the_profile_has_a_bar_has_no_profile(bars, ctx):
    # a front end asking "setup" on the first bar (the profile window of bar 0 holds no bar yet)
    # gets no profile, not an error and a traceback in the log
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(), context=ctx)
    try:
        vp = next(h for h in eng.handlers.values() if hasattr(h, "profile_at"))
        start, stop = vp.window_at(0)
        assert stop == start  # the case: bar 0's profile is of the bars before it
        assert br._profile(0) is None
    finally:
        br.close()


def test_events_are_placed_on_their_bars_by_time(bars, ctx):
    """The bridge queues events without their bar (a builtin append): a round puts an event on
    the bar whose close it is stamped at or before, one stamped after the round's last bar (a
    live fill stamped by the venue) with that last bar, and one with no new bar at once."""
    eng = _engine(bars, n=40)
    br = ZmqBridge(eng, _settings(), context=ctx)
    br._every, br._interval = 10**9, 3600.0  # no round during the run: the test runs them
    sub = _sub(ctx, br)
    _wait_subscribed(br)
    _drain(sub, 100)
    eng.run()  # 40 bars closed, none published yet
    close = [int(t) + eng.store.tf_ns for t in eng.store.raw_column("ts_open_ns")[:40]]
    tag = iter(range(100))

    def cmd(ts: int) -> None:
        br(wire.EVENT_TYPES["CommandApplied"](
            ts_event_ns=ts, ts_init_ns=ts, request_id=f"t{next(tag)}", op="pause", args={},
            ok=True, error="", source="test"))
    cmd(close[5])  # at bar 5's close: with bar 5
    cmd(close[5] + 1)  # after bar 5 closed: with bar 6
    cmd(close[39] + 60_000_000_000)  # a minute after the last bar: with the last bar
    br._round(float("inf"))
    cmd(close[39] + 120_000_000_000)  # no bar since: at the next round, before anything else
    br._round(float("inf"))
    msgs = _drain(sub)
    br.close()
    where: dict[str, int | None] = {}
    bar = None
    for t, m in msgs:
        if t.startswith(b"bar."):
            bar = m["data"]["seq"]
        elif t.startswith(b"equity."):
            assert m["data"]["bar_seq"] == bar
            bar = None  # between bars
        elif t.startswith(b"command."):
            where[m["data"]["request_id"]] = bar
    assert where == {"t0": 5, "t1": 6, "t2": 39, "t3": None}
    assert [m["data"]["seq"] for t, m in msgs if t.startswith(b"bar.")] == list(range(40))


def test_snapshots_of_a_flat_out_run_stay_within_the_budget(bars, ctx):
    """A subscriber that resyncs on every gap asks for a snapshot after every round of a
    flat-out backtest; each holds the interpreter lock for milliseconds, so the service thread
    spaces them by the budget (at most 1 s apart; waiting requests share one), and answers at
    once when the engine is not flat out (a finished run here)."""
    eng = _engine(bars, n=300)
    br = ZmqBridge(eng, _settings(max_cpu_share=0.0001), context=ctx)  # flat out, not finished
    addr = br.commands_addr
    t0 = time.monotonic()
    first = request(addr, "snapshot", ctx=ctx, timeout_s=5)
    t1 = time.monotonic()
    replies: list[tuple[float, dict]] = []

    def ask() -> None:
        rep = request(addr, "snapshot", ctx=ctx, timeout_s=5)
        replies.append((time.monotonic(), rep))
    askers = [threading.Thread(target=ask) for _ in range(2)]
    for a in askers:
        a.start()
    for a in askers:
        a.join(10)
    assert first["ok"] and t1 - t0 < 0.9
    assert [r["ok"] for _, r in replies] == [True, True]
    # the budget: the next snapshot waited (the first took t; t * 9999 is capped at 1 s)
    assert min(t for t, _ in replies) - t1 > 0.5
    assert replies[0][1]["seq"] == replies[1][1]["seq"]
    eng.run()
    br.run_finished(None)  # not flat out any more: no wait
    time.sleep(1.0)  # the wait after the last one
    t2 = time.monotonic()
    assert request(addr, "snapshot", ctx=ctx)["ok"]
    assert request(addr, "snapshot", ctx=ctx)["ok"]
    assert time.monotonic() - t2 < 0.9  # (loopback round trips; a busy machine's margin)
    br.close()


@pytest.mark.parametrize("log_keep", [1000, 2])
def test_a_sampled_flat_out_run_publishes_whole_bars_and_hears_no_more(bars, ctx, log_keep):
    """Flat out under a budget a round publishes the latest bars it can pay for, each with
    exactly the events the engine published on it (read back from the log, in engine order)
    and the trades closed on it (from the accounts), the bars before them skipped as a gap.
    A subscriber makes the engine build nothing more (TradeClosed stays unheard). A log
    trimmed under a round (log_keep 2) costs bars, never a bar's events."""
    eng = _engine(bars)
    br = ZmqBridge(eng, _settings(max_cpu_share=0.5), context=ctx)
    br._every, br._interval = 5, 1e-9  # a round every 5 bars, paying for a few or none
    br._log_keep = log_keep
    seen: list = []
    for cls in (SignalRaised, SubmitOrder, OrderCanceled, wire.EVENT_TYPES["OrderFilled"],
                wire.EVENT_TYPES["ModifyOrder"], wire.EVENT_TYPES["CancelOrder"]):
        eng.bus.subscribe(cls, seen.append, priority=0 if cls is SubmitOrder else 999,
                          name="test-seen")
    sub = _sub(ctx, br)
    _wait_subscribed(br)
    _drain(sub, 100)
    assert br._sampling
    eng.run()
    br.run_finished(None)
    msgs = _drain(sub)
    br.close()
    assert TradeClosed in eng.bus.unheard, "a subscriber made the engine build trades"

    def key(d: dict) -> tuple:
        return (d.get("order_id") or d.get("alarm_id"), d["ts_event_ns"])
    want: dict[int, list] = {}
    for ev in seen:
        want.setdefault(ev.ts_event_ns, []).append(
            (type(ev).__name__, key(msgspec.structs.asdict(ev))))
    trades: dict[int, list] = {}
    for a in eng.accounts.values():
        for t in a.trades:
            trades.setdefault(t.ts_event_ns, []).append((t.account, t.exit_seq, t.pnl))
    published, bar = [], None
    got: list = []
    got_trades: list = []
    for t, m in msgs:
        if t.startswith(b"bar."):
            bar, got, got_trades = m["data"], [], []
        elif t.startswith(b"equity."):
            ts = bar["ts_event_ns"]
            assert got == want.get(ts, []), f"bar {bar['seq']}: events differ"
            assert sorted(got_trades) == sorted(trades.get(ts, [])), f"bar {bar['seq']}: trades"
            published.append(bar["seq"])
            bar = None
        elif bar is not None and t.split(b".")[0] in (b"signal", b"order", b"fill"):
            got.append((m["type"], key(m["data"])))
        elif bar is not None and t.startswith(b"trade."):
            d = m["data"]
            got_trades.append((d["account"], d["exit_seq"], d["pnl"]))
    assert published == sorted(set(published)) and published[-1] == BARS - 1
    assert br.skipped > 0 and len(published) + br.skipped == BARS
    with_events = [s for s in published if want.get(int(eng.store.raw_column("ts_open_ns")[s])
                                                    + eng.store.tf_ns)]
    if log_keep == 1000:
        assert len(published) > 20 and len(with_events) > 3, "the test needs published events"
