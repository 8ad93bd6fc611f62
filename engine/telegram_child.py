"""The Telegram front end as a child process of a run (config ``telegram.enabled``).

``tradebot run CONFIG`` starts ``tradebot telegram CONFIG --pub ADDR --commands ADDR`` once the
ZeroMQ bridge is bound (its real addresses, so a ``tcp://127.0.0.1:0`` port works), and stops it
with the run (SIGINT: the bot stops polling; alerts still queued stay in its outbox and go out the
next time it starts). A process of its own, so Telegram never slows the engine, and a crash of
the bot never stops the engine: ``BotProcess`` starts it again after a pause that doubles (1 s up
to 60 s) and gives up after ``max_restarts`` crashes in a row. A bot that refuses to start (exit 2:
no ``TELEGRAM_ALLOWED_CHAT_IDS``, a bad config) is not restarted: its ``error: ...`` line is on
stderr and the run goes on without it.

The engine imports no adapter (DESIGN.md): the child is started by its command line only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

REFUSED = 2  # the CLI's exit status for bad input (engine.errors): not worth a restart


class BotProcess:
    """Start, watch and stop ``tradebot telegram`` for one run.

    Args:
        config: the run's config file (the child reads its ``telegram:`` section).
        pub, commands: the bridge's bound addresses.
        argv: the command to run instead (tests); ``None`` = ``python -m engine.cli telegram``.
    """

    def __init__(self, config: Path, pub: str, commands: str, *,
                 argv: Sequence[str] | None = None, max_restarts: int = 5,
                 first_pause_s: float = 1.0, max_pause_s: float = 60.0) -> None:
        self.argv = list(argv) if argv is not None else [
            sys.executable, "-m", "engine.cli", "telegram", str(config), "--pub", pub,
            "--commands", commands]
        self.max_restarts = max_restarts
        self.first_pause_s = first_pause_s
        self.max_pause_s = max_pause_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: list[int] = []  # exit statuses of the children that ended on their own
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="telegram-child", daemon=True)

    def start(self) -> BotProcess:
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            # a session of its own: a terminal's Ctrl-C reaches the run only, which then stops
            # the bot (not seen as a crash to restart)
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
            self.starts += 1
        print(f"telegram front end started (pid {self.proc.pid})", file=sys.stderr, flush=True)

    def _watch(self) -> None:
        pause = self.first_pause_s
        crashes = 0
        while not self._stop.is_set():
            proc = self.proc
            assert proc is not None
            started = time.monotonic()
            rc = proc.wait()
            if self._stop.is_set():
                return
            self.exits.append(rc)
            if rc == REFUSED:
                logger.error("the telegram front end refused to start (exit 2, its error is "
                             "above); the run goes on without it")
                return
            if time.monotonic() - started > 10 * self.max_pause_s:
                crashes, pause = 0, self.first_pause_s  # it ran a good while: a fresh count
            crashes += 1
            if crashes > self.max_restarts:
                logger.error("the telegram front end stopped %d times in a row (last exit %s); "
                             "the run goes on without it", crashes, rc)
                return
            print(f"telegram front end stopped (exit {rc}); starting it again in {pause:.0f} s "
                  "(the run goes on)", file=sys.stderr, flush=True)
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, self.max_pause_s)
            self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGINT, then SIGTERM, then SIGKILL) and the watcher."""
        with self._lock:
            self._stop.set()
            proc = self.proc
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0)):
                proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:  # the bot and its helpers (its chart process): its session is theirs
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)
