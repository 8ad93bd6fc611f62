"""Telegram against a live run: ``mode: live`` (configs/live.yaml: the Apex feed and broker, the
real apexomni client) on a local venue in lockstep, the bridge on from the config, the front end
with the real python-telegram-bot client against the loopback fake Bot API.

- Alert-first (``execution.confirm: telegram``): an entry taken on a signal waits for the
  alert's tap. "Skip" and the timeout drop it (nothing reaches the venue); "Take it" sends it
  (the venue's book holds the entry, then its stop). Each is answered in the chat and journaled.
- ``/buy`` with a stop and a confirm tap: the venue's book holds the entry and its stop, and the
  journal records the command with the chat id.

What the venue holds is read from its own records (``LocalVenue.book``), not the engine's.
"""

from __future__ import annotations

import json
import time

import pytest

from adapters.apex.venue import TEST_CREDENTIALS, LocalVenue
from engine.events import CommandApplied, OrderCanceled
from engine.journal import read_events
from tests.telegram.harness import CHAT, FrontEndThread, LiveRun, free_addr


@pytest.fixture
def apex_env(monkeypatch: pytest.MonkeyPatch) -> None:
    c = TEST_CREDENTIALS  # the venue checks what the broker signs with
    for k, v in (("APEX_API_KEY", c.key), ("APEX_API_SECRET", c.secret),
                 ("APEX_API_PASSPHRASE", c.passphrase), ("APEX_ZK_SEEDS", c.zk_seeds)):
        monkeypatch.setenv(k, v)


@pytest.fixture
def venue(real_bars, apex_env):
    bars = real_bars.slice(30_000, 31_500)
    # 250 closed candles of history: the volume profile has its window from the first live bar
    with LocalVenue(bars, speed=0, start=int(bars.ts_open_ns[250]) // 1_000_000) as v:
        yield v


def _wait(pred, what: str, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"{what}: not seen in {timeout} s")


def _entries(venue) -> list:
    """The venue's entry orders (market, not reduce-only), from its own book."""
    return [o for o in list(venue.book.orders.values())
            if o.type == "MARKET" and not o.reduce_only]


def _alert(fake, alarm: str) -> dict:
    """The signal alert of ``alarm`` (its text message with the Take it / Skip buttons)."""
    def find():
        return next((p for m, p in list(fake.sent) if m == "sendMessage"
                     and f"alarm: {alarm} " in p["text"] and "take:" in
                     p.get("reply_markup", "")), None)
    return fake.wait(find, f"the alert of {alarm}", 20)


def _tap(fake, p: dict, verb: str) -> None:
    token = json.loads(p["reply_markup"])["inline_keyboard"][0][0 if verb == "take" else 1]
    fake.push_tap(token["callback_data"], p["_message_id"])


def _reply(fake, start: str, n: int) -> str:
    return fake.wait(lambda: next((t for t in fake.texts(CHAT)[n:] if t.startswith(start)),
                                  None), f"a reply {start!r}", 20)


def test_alert_first_skip_timeout_take(venue, tmp_path):
    pub, cmd = free_addr(), free_addr()
    run = LiveRun(venue, tmp_path, pub, cmd, **{"execution.confirm": "telegram",
                                                "execution.confirm_timeout_s": 1.5})
    book = run.engine.confirm
    fe = FrontEndThread(tmp_path, pub, cmd, rate_limit_per_min=600, mute=("fill",)).start()
    fake = fe.fake
    try:
        fe.synced(30)
        run.start()

        def held(skip: set[str]) -> str | None:
            return next((a for a in list(book.held) if a not in skip), None)

        # 1. Skip: the held entry is dropped, nothing reaches the venue
        a1 = _wait(lambda: held(set()), "a first held entry", 90)
        before = len(_entries(venue))
        n = len(fake.texts(CHAT))
        _tap(fake, _alert(fake, a1), "skip")
        assert _reply(fake, "✖️ Skipped", n) == f"✖️ Skipped {a1}: the entry is dropped"
        assert book.done[a1] == "skipped" and a1 not in book.held
        # 2. The timeout: no tap; dropped after confirm_timeout_s, said in the chat
        a2 = _wait(lambda: held({a1}), "a second held entry")
        _wait(lambda: book.done.get(a2) == "expired", "the timeout", 10)
        note = _reply(fake, "✖️ Not entered", n)
        assert note.startswith(f"✖️ Not entered trailing_stop: alarm {a2} not taken within "
                               "1.5 s")
        k = len(fake.texts(CHAT))
        _tap(fake, _alert(fake, a2), "take")  # too late: the bot knows, nothing is sent
        assert _reply(fake, "⌛", k) == "⌛ This alert's buttons expired; use /buy or /sell."
        assert len(_entries(venue)) == before  # neither went to the venue
        # 3. Take it: the held entry goes to the venue, then its stop
        a3 = _wait(lambda: held({a1, a2}), "a third held entry")
        k = len(fake.texts(CHAT))
        _tap(fake, _alert(fake, a3), "take")
        assert _reply(fake, "✅ Taken", k).startswith(f"✅ Taken: {a3}")
        (entry,) = _wait(lambda: _entries(venue)[before:], "the entry on the venue")
        assert entry.status == "FILLED" or _wait(lambda: entry.status == "FILLED", "its fill")
        stop = _wait(lambda: [o for o in list(venue.book.orders.values())
                              if o.type == "STOP_MARKET" and o.reduce_only
                              and o.created_ms >= entry.created_ms], "its stop on the venue")
        assert stop[0].side != entry.side
        br = run.bridge
        ops = [(c.op, c.args.get("alarm_id"), c.ok) for c in br.commands]
        assert ops == [("skip", a1, True), ("take", a3, True)]
    finally:
        fe.stop()
        run.close()
    # journaled: both commands with the chat, the two drops with their reasons
    events = list(read_events(run.journal))
    cmds = [e for e in events if isinstance(e, CommandApplied)]
    assert [c.op for c in cmds] == ["skip", "take"]
    assert all(c.args["reason"] == f"telegram chat {CHAT} (alert button)" for c in cmds)
    drops = [e.reason for e in events if isinstance(e, OrderCanceled)
             and e.reason.startswith("confirm:")]
    assert drops == [f"confirm: alarm {a1} skipped by telegram chat {CHAT} (alert button)",
                     f"confirm: alarm {a2} not taken within 1.5 s "
                     "(execution.confirm_timeout_s)"]


def test_buy_reaches_the_venue_with_its_stop(venue, tmp_path):
    pub, cmd = free_addr(), free_addr()
    run = LiveRun(venue, tmp_path, pub, cmd, poll_s=0.05)
    fe = FrontEndThread(tmp_path, pub, cmd, confirm_timeout_s=30, rate_limit_per_min=600,
                        mute=("fill", "signal")).start()
    fake = fe.fake
    try:
        fe.synced(30)
        run.start()
        assert fe.ask("/pause", timeout=30) == "⏸ entries paused"  # no signal entry races ours
        _wait(lambda: run.engine.store.count > 3, "live bars")
        close = float(run.engine.store.raw_column("close")[run.engine.store.count - 1])
        stop = round(close * 0.98, 1)
        assert fe.ask(f"/buy stop={stop}", timeout=30).startswith(
            f"Confirm: buy trailing_stop: market stop {stop}")
        p = [p for m, p in fake.sent if p.get("text", "").startswith("Confirm: buy")][0]
        fake.push_tap(json.loads(p["reply_markup"])["inline_keyboard"][0][0]["callback_data"],
                      p["_message_id"])
        done = fake.wait(lambda: [q for m, q in fake.sent if m == "editMessageText"
                                  and "buy trailing_stop" in q["text"]], "the confirmed buy",
                         30)
        assert done[0]["text"].startswith("✅ Done: buy trailing_stop"), done[0]["text"]
        # the venue's own book: the market entry, filled, then its reduce-only stop at our price
        (entry,) = _wait(lambda: _entries(venue), "the entry on the venue")
        assert entry.side == "BUY"
        stops = _wait(lambda: [o for o in list(venue.book.orders.values())
                               if o.type == "STOP_MARKET" and o.reduce_only], "the stop")
        assert stops[0].side == "SELL" and abs(stops[0].trigger - stop) <= 0.1 + 1e-9
        assert stops[0].status not in ("CANCELED", "FILLED")
        _wait(lambda: entry.status == "FILLED", "the entry's fill")
    finally:
        fe.stop()
        run.close()
    cmds = [e for e in read_events(run.journal) if isinstance(e, CommandApplied)]
    assert [(c.op, c.ok) for c in cmds] == [("pause", True), ("buy", True)]
    assert all(c.args["reason"] == f"telegram chat {CHAT}" for c in cmds)
    assert cmds[1].args["stop"] == stop and cmds[1].args["strategy"] == "trailing_stop"
