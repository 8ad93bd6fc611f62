"""The Telegram front end end to end: the real python-telegram-bot client against the loopback
fake Bot API, real ZeroMQ sockets, a real engine over real candles publishing through the bridge.
"""

from __future__ import annotations

import logging
import time

import pytest

from adapters.telegram.security import REDACTED
from adapters.zmq_client import request
from tests.telegram.harness import (
    CHAT,
    EngineRun,
    FrontEndThread,
    Records,
    closed_trades,
    free_addr,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def records():
    root = logging.getLogger()
    h, level = Records(), root.level
    root.addHandler(h)
    root.setLevel(logging.INFO)  # what `tradebot telegram` runs at; httpx logs URLs at INFO
    yield h
    root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture
def bars(real_bars):
    return real_bars


def _quiet(fake, seconds: float = 0.4, timeout: float = 15) -> None:
    """Wait until the bot has sent nothing for ``seconds``."""
    end = time.monotonic() + timeout
    n = -1
    while time.monotonic() < end:
        if len(fake.sent) == n:
            return
        n = len(fake.sent)
        time.sleep(seconds)
    raise AssertionError("the bot never went quiet")


def test_paper_run_alerts_commands_and_confirm(bars, tmp_path, records):
    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(bars, 400, "paper", pub, cmd, speed=150.0)
    fe = FrontEndThread(tmp_path, pub, cmd, confirm_timeout_s=30, rate_limit_per_min=600).start()
    try:
        fe.synced()
        assert "mode: paper" in fe.ask("/status")
        eng.start()
        fake = fe.fake
        # a trading command while the engine runs: confirm, then it reaches the engine
        prompt = fe.ask("/flatten")
        assert prompt.startswith("Confirm: flatten")
        (p,) = [p for m, p in fake.sent if p.get("text", "").startswith("Confirm: flatten")]
        assert "ok:" in p["reply_markup"] and "no:" in p["reply_markup"]
        token = p["reply_markup"].split('"ok:')[1].split('"')[0]
        fake.push_tap(f"ok:{token}", p["_message_id"])
        done = fake.wait(lambda: [q for m, q in fake.sent if m == "editMessageText"],
                         "the confirmed flatten")
        assert done[0]["text"].startswith("✅ Done: flatten"), done[0]["text"]
        # pause (no signal entry races ours), then a manual long with a stop and a target
        assert fe.ask("/pause") == "⏸ entries paused"
        store = eng.engine.store
        close = float(store.raw_column("close")[store.count - 1])
        stop, target = round(close * 0.97, 2), round(close * 1.05, 2)
        fe.ask(f"/buy stop={stop} target={target} strategy=poc_target")
        p = [p for m, p in fake.sent if p.get("text", "").startswith("Confirm: buy")][0]
        assert p["text"].startswith(f"Confirm: buy poc_target: market stop {stop} target "
                                    f"{target}")
        token = p["reply_markup"].split('"ok:')[1].split('"')[0]
        fake.push_tap(f"ok:{token}", p["_message_id"])
        (bought,) = fake.wait(lambda: [q for m, q in fake.sent if m == "editMessageText"
                                       and "buy poc_target" in q["text"]], "the confirmed buy")
        assert bought["text"].startswith("✅ Done: buy poc_target"), bought["text"]
        assert f"stop: {stop:,.2f}" in bought["text"]
        eng.thread.join(30)
        eng.idle(0.5)
        br = eng.bridge
        fake.wait_sent(len(br.signals), "sendPhoto", timeout=30)  # a chart takes ~0.1-0.5 s
        _quiet(fake)
        # every signal alerted once: its text at once, then its chart
        sigs = [p for m, p in fake.sent if m == "sendMessage" and p["text"].startswith("🔔")]
        photos = [p for m, p in fake.sent if m == "sendPhoto"]
        assert len(br.signals) >= 3
        assert [p["text"].split("\n")[1].split()[1] for p in sigs] == \
            [s.alarm_id for s in br.signals]
        assert [p["caption"].split("\n")[0].split()[2] for p in photos] == \
            [s.alarm_id for s in br.signals]
        order = [p.get("text") or p.get("caption") for m, p in fake.sent]
        for s, c in zip(sigs, photos, strict=True):  # each chart after its text
            assert order.index(s["text"]) < order.index(c["caption"])
        first, sig = photos[0], br.signals[0]
        assert first["photo"].startswith(PNG) and len(first["photo"]) > 10_000
        assert first["caption"].startswith(f"📈 {sig.side.upper()} {sig.alarm_id}")
        cap = sigs[0]["text"]
        side = "LONG" if sig.side == "long" else "SHORT"
        assert cap.startswith(f"🔔 {side} signal BTC-USDT 15m")
        assert f"price: {sig.entry_price:,.2f}" in cap and f"stop: {sig.stop_price:,.2f}" in cap
        assert "  poc_target: entry" in cap and "  trailing_stop: entry" in cap
        assert "POC" in cap and "confidence" not in cap  # rule signals carry no confidence
        texts = fake.texts(CHAT)
        trades = [t for t in texts if "Trade closed" in t]
        closed = closed_trades(eng.engine)
        assert len(trades) == len(closed) > 0
        t0 = closed[0]
        assert f"PnL {t0.pnl:+,.2f}" in trades[0] and t0.account in trades[0]
        assert len([t for t in texts if t.startswith("✅ Filled")]) == len(br.fills)
        # the journaled commands carry the chat id
        ops = {c.op: c for c in br.commands}
        assert [c.op for c in br.commands] == ["flatten", "pause", "buy"]
        assert all(c.ok and c.args.get("reason") == f"telegram chat {CHAT}"
                   for c in br.commands)
        assert ops["buy"].args["stop"] == stop and ops["buy"].args["target"] == target
        # the buy reached the engine: a market entry that filled, carrying our stop as its
        # attached child (the exit plan rides on the entry: engine/exits.py)
        mine = [o for o in br.orders if o.account == "poc_target"
                and type(o).__name__ == "SubmitOrder"]
        entry = mine[max(k for k, o in enumerate(mine) if o.tag == "ENTRY")]
        assert entry.side == "buy" and entry.type == "market"
        assert any(f.order_id == entry.order_id for f in br.fills)
        assert abs(entry.stop_loss - stop) < 1e-6
        # paper mode: a signal alert built while the engine trades carries one-tap "Take it" /
        # "Skip" buttons (alerts built after the run finished do not: nothing could take them)
        def token(p, verb):
            return p["reply_markup"].split(f'"{verb}:')[1].split('"')[0]

        def alarm(p):
            return p["text"].split("\n")[1].split()[1]
        assert not any("take:" in p.get("reply_markup", "") for p in photos)
        live = [p for p in sigs if "take:" in p.get("reply_markup", "")]
        assert live and all("skip:" in p["reply_markup"] for p in live)
        n = len(fake.texts(CHAT))
        fake.push_tap(f"skip:{token(live[0], 'skip')}", live[0]["_message_id"])
        fake.wait(lambda: len(fake.texts(CHAT)) > n, "the skip")
        assert fake.texts(CHAT)[n] == f"✖️ Skipped {alarm(live[0])}"
        last = live[-1]
        fake.push_tap(f"take:{token(last, 'take')}", last["_message_id"])
        fake.wait(lambda: any(t.startswith("❌ Refused: ") for t in fake.texts(CHAT)),
                  "the take on a finished run")
        refused = [t for t in fake.texts(CHAT) if t.startswith("❌ Refused: ")][0]
        assert alarm(last) in refused and "the run has finished" in refused
        fake.push_tap(f"take:{token(last, 'take')}", last["_message_id"])  # a second tap
        fake.wait(lambda: any(t.startswith("⌛ This alert's buttons expired")
                              for t in fake.texts(CHAT)), "the second tap refused")
        # commands on the final state
        bal = fe.ask("/balance")
        last = br.bar_seq
        snap = request(cmd, "snapshot", bars=1)["snapshot"]
        assert snap["equity"][-1]["bar_seq"] == last
        for name, v in snap["equity"][-1]["equity"].items():
            assert f"{name}: {v:,.2f}" in bal
        tr = fe.ask("/trades 2").split("\n")
        assert tr[0] == f"last {min(2, len(closed))} trades:"
        assert f"{closed[-1].pnl:+,.2f}" in tr[-1]
        al = fe.ask("/alarms 1").split("\n")
        assert al[0] == "last 1 alarms:" and br.signals[-1].alarm_id in al[1]
        week = fe.ask("/pnl week")
        day0 = (br.bar_ts // 86_400_000_000_000 - 6) * 86_400_000_000_000
        in_week = [t for t in closed if t.exit_ts_ns >= day0]
        assert week.startswith("PnL week") and \
            f"{sum(t.pnl for t in in_week):+,.2f} over {len(in_week)} trades" in week
        positions = snap["positions"]
        pos = fe.ask("/positions")
        if positions:
            for name, p in positions.items():
                assert f"{name}: {p['side']} {p['qty']:.6g}" in pos
        else:
            assert pos == "no open positions"
        st = fe.ask("/status")
        assert "mode: paper" in st and "finished" in st and f"#{last}" in st
    finally:
        fe.stop()
        eng.close()
    lines = "\n".join(records.lines)
    assert fe.fake.token not in lines and fe.fake.token.split(":")[1] not in lines
    assert f"/bot{REDACTED}/sendPhoto" in lines  # httpx's request lines were there, redacted


def test_backtest_refusal_expiry_unauthorised_and_restart(bars, tmp_path, records):
    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(bars, 300, "backtest", pub, cmd, speed=100.0)
    fe = FrontEndThread(tmp_path, pub, cmd, confirm_timeout_s=1.0).start()
    fake = fe.fake
    try:
        fe.synced()
        eng.start()
        # a stranger: one refusal, logged without the message's contents
        fake.push_text("/balance my-private-words", chat_id=666)
        fake.push_text("/flatten", chat_id=666)
        fake.wait(lambda: len(fake.texts(666)) == 1 and len(
            [r for r in records.lines if "chat 666" in r]) == 2, "the refusal")
        assert fake.texts(666) == ["⛔ This bot is private: this chat is not authorised."]
        # a trading command in a backtest: confirmed, refused by the bridge, shown to the user
        fe.ask("/close poc_target")
        p = [p for m, p in fake.sent if p.get("text", "").startswith("Confirm: close")][0]
        token = p["reply_markup"].split('"ok:')[1].split('"')[0]
        fake.push_tap(f"ok:{token}", p["_message_id"])
        (ref,) = fake.wait(lambda: [q for m, q in fake.sent if m == "editMessageText"],
                           "the refusal edit")
        assert ref["text"].startswith("❌ Refused: close poc_target") and "not live" in \
            ref["text"]
        # expiry: the prompt is edited to expired, and a late tap sends nothing
        fe.ask("/flatten")
        p = [p for m, p in fake.sent if p.get("text", "").startswith("Confirm: flatten")][0]
        token = p["reply_markup"].split('"ok:')[1].split('"')[0]
        exp = fake.wait(lambda: [q for m, q in fake.sent if m == "editMessageText"
                                 and q["text"].startswith("⌛")], "the expiry edit", 5)
        assert int(exp[0]["message_id"]) == p["_message_id"]
        fake.push_tap(f"ok:{token}", p["_message_id"])
        fake.wait(lambda: [q for m, q in fake.calls if m == "answerCallbackQuery"
                           and q.get("text") == "expired"], "the late tap's answer")
        eng.thread.join(30)
        assert [c.op for c in eng.bridge.commands] == ["close"]  # the expired flatten never went
        assert fake.token not in "".join(fake.texts())
        # a backtest takes no trades: its signal alerts carry no buttons
        assert all("take:" not in p.get("reply_markup", "")
                   for m, p in fake.sent if m in ("sendPhoto", "sendMessage"))
        # the engine restarts (a new run on the same addresses): the front end follows
        old_run = eng.bridge.run_id
        eng.close()
        eng2 = EngineRun(bars, 200, "backtest", pub, cmd, speed=200.0).start()
        try:
            fake.wait(lambda: fe.fe.state.run == eng2.bridge.run_id, "the resync to the new run")
            assert eng2.bridge.run_id != old_run
            st = fe.ask("/status")
            assert eng2.bridge.run_id in st and "mode: backtest" in st
        finally:
            eng2.close()
    finally:
        fe.stop()
    lines = "\n".join(records.lines)
    assert "my-private-words" not in lines
    assert fake.token not in lines


def test_trading_command_arguments(tmp_path):
    """What /buy, /sell, /close send to the bridge, on a known state (no network needed)."""
    from adapters.telegram.bot import FrontEnd
    from adapters.telegram.security import Secrets
    from engine.config import TelegramConfig

    fe = FrontEnd(TelegramConfig(outbox=tmp_path / "o.sqlite"),
                  Secrets("1:abcdefghijklmn", frozenset({CHAT})))
    assert "no strategy known yet" in fe.parse_trade("buy", [])
    fe.state.equity = {"poc_target": 1.0, "trailing_stop": 1.0}
    assert "no long alarm yet" in fe.parse_trade("buy", [])
    fe.state.signals.extend([
        {"alarm_id": "L1", "side": "long", "entry_price": 100.0, "stop_price": 95.0},
        {"alarm_id": "S1", "side": "short", "entry_price": 101.0, "stop_price": 104.0},
        {"alarm_id": "L2", "side": "long", "entry_price": 102.0, "stop_price": 99.0}])
    assert fe.parse_trade("buy", [])[0] == {"strategy": "poc_target", "alarm_id": "L2"}
    assert fe.parse_trade("sell", ["strategy=trailing_stop"])[0] == {
        "strategy": "trailing_stop", "alarm_id": "S1"}
    assert fe.parse_trade("buy", ["L1"])[0]["alarm_id"] == "L1"
    assert "'nope' is not among the recent alarms" in fe.parse_trade("buy", ["nope"])
    assert fe.parse_trade("buy", ["stop=95", "target=110"])[0] == {
        "strategy": "poc_target", "stop": 95.0, "target": 110.0}
    assert "not a price" in fe.parse_trade("buy", ["stop=abc"])
    assert "unknown argument(s) ['size']" in fe.parse_trade("buy", ["size=3", "stop=1"])
    assert fe.parse_trade("close", ["poc_target"])[0] == {"strategy": "poc_target"}
    assert "usage: /close <strategy>" in fe.parse_trade("close", [])
    fe.outbox.close()
