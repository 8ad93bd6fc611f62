"""60 s of Telegram outage while a paper run keeps raising alerts, then recovery: every alert is
delivered once, in the order it was queued, and the bot answers commands again.

This test waits the 60 s in real time (about 75 s in all): the deliverer's retry path is the
same as in production (connection refused, backoff, retry), only its backoff cap is 0.5 s here
(``FrontEndThread``) instead of 30 s, so recovery shows within a second."""

from __future__ import annotations

import time
from collections import Counter

from adapters.telegram.outbox import Outbox
from tests.telegram.harness import CHAT, EngineRun, FrontEndThread, closed_trades, free_addr

OUTAGE_S = 60.0


def test_a_60_s_outage_then_every_alert_once_in_order(real_bars, tmp_path):
    pub, cmd = free_addr(), free_addr()
    # 1,500 real bars at 20 bars/s: the run raises signals, fills and trades all through the
    # outage
    eng = EngineRun(real_bars, 1500, "paper", pub, cmd, speed=20.0)
    fe = FrontEndThread(tmp_path, pub, cmd, rate_limit_per_min=600).start()
    fake = fe.fake

    async def _pending() -> int:  # alerts queued, not yet sent (the bot's own loop)
        return fe.fe.outbox.pending()
    try:
        fe.synced()
        eng.start()
        fake.wait(lambda: fe.fe.delivered, "a first alert", 30)
        fake.down()
        time.sleep(0.5)  # a send in flight when it went down is answered or fails by now
        t0 = time.monotonic()
        queued0 = fe.call(_pending)
        before = len(fe.fe.delivered)
        time.sleep(OUTAGE_S)
        during = fe.call(_pending)
        assert len(fe.fe.delivered) == before  # nothing went out while Telegram was down
        assert during >= queued0 + 10, "alerts kept coming during the outage"
        fake.up()
        assert time.monotonic() - t0 >= OUTAGE_S
        assert fe.ask("/status", timeout=30).startswith("mode: paper")  # polling is back
        eng.thread.join(60)
        eng.idle(0.5)
        fake.wait(lambda: fe.call(_pending) == 0, "every queued alert delivered", 60)
    finally:
        fe.stop()
        eng.close()
    rows = Outbox(tmp_path / "outbox.sqlite").rows()
    keys = [r["key"] for r in rows]
    assert all(r["sent"] and not r["failed"] for r in rows)
    # in queue order; charts (photos) after the texts waiting with them, in their own order
    texts = [r["key"] for r in rows if not r["key"].startswith("chart-")]
    charts = [r["key"] for r in rows if r["key"].startswith("chart-")]
    got = [k for _, k in fe.fe.delivered]
    assert [k for k in got if not k.startswith("chart-")] == texts
    assert [k for k in got if k.startswith("chart-")] == charts
    assert all(got.index(f"signal-{c[len('chart-'):]}") < got.index(c) for c in charts)
    assert max(r["attempts"] for r in rows) >= 1  # some waited out the outage
    # each alert once at the fake (a signal's text and its chart are two keys)
    sent = Counter(p.get("text") or p.get("caption") for m, p in fake.sent
                   if m in ("sendMessage", "sendPhoto") and int(p["chat_id"]) == CHAT
                   and not p.get("reply_parameters"))
    assert sent and max(sent.values()) == 1
    assert sum(sent.values()) == len(rows)
    br = eng.bridge
    assert len([k for k in keys if k.startswith("signal-")]) == len(br.signals)
    assert len([k for k in keys if k.startswith("trade-")]) == len(closed_trades(eng.engine))
