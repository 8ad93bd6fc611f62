"""The front end's questions (``setup``, ``snapshot``, ``ping``) go over one DEALER socket kept
open (``adapters/telegram/bot.py`` ``_Asker``): each reply reaches the question with its id, a
question nobody answers times out without wedging the next, and a late reply (the engine came up
after the timeout) is dropped. Against the real bridge of a real engine."""

from __future__ import annotations

import asyncio

from adapters.telegram.bot import QUESTIONS, _Asker
from tests.telegram.harness import EngineRun, free_addr


def test_questions_share_one_socket_and_a_late_reply_is_dropped(real_bars):
    pub, cmd = free_addr(), free_addr()

    async def main() -> None:
        asker = _Asker(cmd, None, timeout_s=0.5)
        try:
            # nothing bound yet: a timeout reply (not an exception), and the next one too
            for _ in range(2):
                rep = await asker.ask("ping")
                assert rep["ok"] is False and rep["timeout"] is True
                assert "no reply to 'ping'" in rep["error"]
            assert not asker.waiting
            # the engine comes up on that address: the queued questions reach it and their
            # late replies find nobody waiting; new questions get their own answers
            eng = EngineRun(real_bars, 300, "paper", pub, cmd, speed=0.0)
            try:
                reps = await asyncio.gather(asker.ask("ping"), asker.ask("snapshot", bars=5),
                                            asker.ask("ping"))
                assert [r["ok"] for r in reps] == [True, True, True]
                assert reps[0]["result"]["run"] == eng.bridge.run_id
                assert reps[0]["id"] != reps[2]["id"]  # each its own reply
                assert "snapshot" in reps[1] and reps[1]["snapshot"]["run"] == eng.bridge.run_id
                assert not asker.waiting
                sock = asker.sock
                await asker.ask("ping")
                assert asker.sock is sock  # one socket for every question
            finally:
                eng.bridge.close()  # the engine never ran: its bridge alone answers
        finally:
            asker.close()
            assert asker.sock is None

    asyncio.run(main())
    # commands (which change something) never go over the kept socket
    assert set(QUESTIONS) == {"ping", "snapshot", "setup"}
