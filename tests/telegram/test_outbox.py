"""Alert delivery through the SQLite outbox with the real PTB client against the fake Bot API:
deduplicated by key, in order, 429 ``retry_after`` honoured, a Telegram outage waited out, the
per-chat rate limit, per-kind mute. No engine is needed (the alerts are queued directly)."""

from __future__ import annotations

import asyncio
import time

from adapters.telegram.outbox import Outbox
from tests.telegram.harness import CHAT, FrontEndThread, free_addr

OUTAGE_S = 3.0  # a short one beside the 429s; the 60 s outage with a running engine: test_outage.py


def _enqueue(fe: FrontEndThread, *items: tuple[str, str, str]) -> list[int]:
    async def go() -> list[int]:
        return [fe.fe.enqueue(kind, key, text) for kind, key, text in items]
    return fe.call(go)


def _delivered(fe: FrontEndThread) -> list[str]:
    return [k for _, k in list(fe.fe.delivered)]


def test_outage_and_429_then_everything_once_in_order(tmp_path):
    fe = FrontEndThread(tmp_path, free_addr(), free_addr(), rate_limit_per_min=600).start()
    fake = fe.fake
    try:
        assert _enqueue(fe, *[("fill", f"a{i}", f"alert a{i}") for i in range(3)]) == [1, 1, 1]
        fake.wait(lambda: len(_delivered(fe)) == 3, "the first alerts")
        assert _enqueue(fe, ("fill", "a1", "alert a1 again")) == [0]  # dedup by key
        # 429 with retry_after: the alert waits that long, the one behind it waits too
        fake.fail_429["sendMessage"] = [1]
        t0 = time.monotonic()
        _enqueue(fe, ("fill", "b0", "alert b0"), ("fill", "b1", "alert b1"))
        fake.wait(lambda: len(_delivered(fe)) == 5, "the alerts after a 429")
        assert time.monotonic() - t0 >= 0.9
        # Telegram unreachable (connection refused) for OUTAGE_S: alerts queue up
        fake.down()
        _enqueue(fe, *[("trade", f"c{i}", f"alert c{i}") for i in range(5)])
        time.sleep(OUTAGE_S)
        assert len(_delivered(fe)) == 5
        fake.up()
        fake.wait(lambda: len(_delivered(fe)) == 10, "delivery after the outage", 15)
        time.sleep(0.3)
        keys = [f"a{i}" for i in range(3)] + ["b0", "b1"] + [f"c{i}" for i in range(5)]
        assert _delivered(fe) == keys
        texts = [t for t in fake.texts(CHAT) if t.startswith("alert ")]
        assert texts == [f"alert {k}" for k in keys]  # each once, in order
        # the 429 really happened and was retried (two sendMessage calls for b0)
        b0 = [p for m, p in fake.calls if m == "sendMessage" and p.get("text") == "alert b0"]
        assert len(b0) == 2
    finally:
        fe.stop()
    rows = Outbox(tmp_path / "outbox.sqlite").rows()
    assert [r["key"] for r in rows] == keys and all(r["sent"] for r in rows)
    assert max(r["attempts"] for r in rows if r["key"] == "c0") >= 1


def test_rate_limit_and_mute(tmp_path):
    fe = FrontEndThread(tmp_path, free_addr(), free_addr(), rate_limit_per_min=2,
                        mute=("command",)).start()
    try:
        assert _enqueue(fe, ("command", "m0", "muted")) == [0]
        _enqueue(fe, *[("fill", f"r{i}", f"rate {i}") for i in range(3)])
        fe.fake.wait(lambda: len(_delivered(fe)) == 2, "the first two")
        time.sleep(1.0)
        assert _delivered(fe) == ["r0", "r1"]  # the third waits for the minute to roll

        async def pending() -> int:
            return fe.fe.outbox.pending()
        assert fe.call(pending) == 1
    finally:
        fe.stop()
    assert "muted" not in fe.fake.texts()


def test_summary_text(tmp_path):
    fe = FrontEndThread(tmp_path, free_addr(), free_addr(), rate_limit_per_min=600).start()
    try:
        st = fe.fe.state

        async def go() -> None:
            st.symbol = "BTC-USDT"
            st.trades.extend([
                {"account": "a", "exit_ts_ns": 1_700_000_000_000_000_000, "pnl": 10.0},
                {"account": "b", "exit_ts_ns": 1_700_050_000_000_000_000, "pnl": -4.0}])
            from datetime import UTC, datetime
            fe.fe.send_summary(datetime(2023, 11, 15, 21, 0, tzinfo=UTC))
            await asyncio.sleep(0)
        fe.call(go)
        (text,) = fe.fake.wait(lambda: [t for t in fe.fake.texts() if "Daily summary" in t],
                               "the summary")
        # 2023-11-15: the first trade (Nov 14 22:13 UTC) is the day before
        assert "trades closed: 1, PnL -4.00" in text and "b: -4.00" in text
    finally:
        fe.stop()


def test_queued_alerts_survive_a_restart_of_the_bot(tmp_path):
    fe = FrontEndThread(tmp_path, free_addr(), free_addr(), rate_limit_per_min=600).start()
    fe.fake.wait(lambda: "getUpdates" in fe.fake.methods(), "the bot polling")
    fe.fake.down()  # Telegram unreachable: nothing goes out, then the bot is stopped
    _enqueue(fe, *[("trade", f"k{i}", f"kept {i}") for i in range(3)])
    time.sleep(0.5)
    assert _delivered(fe) == []
    fe.stop()
    again = FrontEndThread(tmp_path, free_addr(), free_addr(), rate_limit_per_min=600).start()
    try:
        again.fake.wait(lambda: len(_delivered(again)) == 3, "the kept alerts")
        assert _delivered(again) == ["k0", "k1", "k2"]
        assert again.fake.texts(CHAT) == ["kept 0", "kept 1", "kept 2"]
        assert _enqueue(again, ("trade", "k1", "kept 1")) == [0]  # still deduplicated
    finally:
        again.stop()


def test_photos_in_their_own_lane_after_the_texts_before_them(tmp_path):
    """A chart (photo) never holds up the text alerts queued after it, and never goes before
    a text queued before it (its signal's text)."""
    ob = Outbox(tmp_path / "o.sqlite")
    ob.put("chart-A", CHAT, "signal", "chart A", b"png-a")
    ob.put("fill-1", CHAT, "fill", "fill 1")
    ob.put("chart-B", CHAT, "signal", "chart B", b"png-b")
    ob.put("fill-2", CHAT, "fill", "fill 2")
    a = ob.head(photos=True)  # queued before every text: it may go at once
    assert a.key == "chart-A"
    ob.sent(a.id)
    assert ob.head(photos=True) is None  # chart B waits for fill 1, queued before it
    texts = []
    while (item := ob.head()) is not None:
        texts.append(item.key)
        ob.sent(item.id)
    assert texts == ["fill-1", "fill-2"]  # the texts never waited for a photo
    assert ob.head(photos=True).key == "chart-B"
    ob.close()
