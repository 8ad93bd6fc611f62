"""The Telegram front end: a python-telegram-bot Application (long polling), a ZeroMQ subscriber
that keeps ``EngineState`` and turns events into alerts, and the outbox deliverer.

``FrontEnd(cfg, secrets, pub, commands)`` holds it all; ``await fe.run(stop)`` runs until the
``stop`` event is set (``tradebot telegram`` sets it on Ctrl-C). Everything runs on one asyncio
loop; charts are drawn in a process of their own, off the alert path.

Subscriber (WIRE.md): SUB to the topics alerts need only (``TOPICS``: no bars, features or
equity, so a flat-out engine's per-bar messages cost this process nothing: the publisher
filters them for tcp), then a ``snapshot`` over the command channel, drop messages with ``seq``
<= the snapshot's. ``seq`` counts every topic, so gaps are expected; what was lost is told by
the ``status`` heartbeat instead: when its ``skipped`` (bars the publisher skipped under its
budget) or ``dropped`` count rose, take a new snapshot and alert what it holds that was not
alerted yet. A new run id (the engine restarted) is a new baseline: its history is not alerted.

A signal's alert is its text (with the setups) at once; its chart follows as a second message
when drawn. While a backtest runs flat out, the questions this process asks the engine (setups,
chart bars) are limited to ``FLAT_OUT_ASKS_PER_S``, so alerts never take more than a sliver of
the engine's time; paper and live runs are not limited.

Trading commands (``/close``, ``/flatten``, ``/buy``, ``/sell``) ask for a one-tap confirmation
that expires after ``telegram.confirm_timeout_s``; the request carries
``reason="telegram chat <id>"``, which the bridge journals with the command (``CommandApplied``).
Alert-first (``execution.confirm: telegram``): a signal's "Take it" / "Skip" send ``take`` /
``skip`` for its alarm; the engine holds the entry until then (``engine/confirm.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import multiprocessing
import os
import secrets as _secrets
import time
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    TypeHandler,
)

from adapters import zmq_client
from adapters.telegram import alerts
from adapters.telegram.outbox import Outbox
from adapters.telegram.security import ALLOW_ENV, Secrets
from adapters.telegram.state import EngineState, fmt_price
from engine import wire

log = logging.getLogger(__name__)

REFUSAL = "⛔ This bot is private: this chat is not authorised."
HELP = """Commands
/status - mode, symbol, last bar, engine alive, lag
/balance - equity per strategy
/positions - open positions with stops and targets
/trades [n] - last n closed trades (default 5)
/alarms [n] - last n signals (default 5)
/pnl [today|week] - realised PnL (engine time)
/pause, /resume - stop / restart new entries
/close <strategy> - close a strategy's position (confirm)
/flatten - close every position (confirm)
/buy [alarm_id] [strategy=NAME] - enter long from an alarm, the latest long alarm by default,
  or explicit: /buy stop=PRICE [target=PRICE] [price=PRICE] (confirm)
/sell ... - the same, short"""
TRADING = ("close", "flatten", "buy", "sell")
RESYNC_MIN_S = 1.0  # least time between two snapshots
# the topics alerts and commands need: no bar, features or equity (one of each per bar)
TOPICS = ("signal", "order", "fill", "trade", "alert", "command", "status")
QUESTIONS = ("ping", "snapshot", "setup")  # ops that change nothing: asked on a kept socket
FLAT_OUT_ASKS_PER_S = 2.0  # setups and chart bars asked of a backtest running flat out
FLAT_OUT_CHART_SHARE = 0.2  # of the time spent drawing charts meanwhile
# TRADEBOT_TG_TRACE=FILE: one JSON line [time, stage, key] per step of every alert (the bench's
# breakdown: sub, ask, answer, queued, pick, sent), with GC pauses over 2 ms; with
# TRADEBOT_TG_TRACE_LAG=1 also the event loop's stalls over 10 ms (and the CPU time they used)
_TRACE_PATH = os.environ.get("TRADEBOT_TG_TRACE")
_trace_file: Any = None


def _trace(stage: str, key: str) -> None:
    global _trace_file
    if _trace_file is None:
        _trace_file = Path(_TRACE_PATH).open("a", buffering=1)
        gc_t0 = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                gc_t0[0] = time.perf_counter()
            elif time.perf_counter() - gc_t0[0] > 0.002:
                _trace("gc", f"gen{info['generation']} {time.perf_counter() - gc_t0[0]:.4f}")
        gc.callbacks.append(on_gc)
    _trace_file.write(json.dumps([time.time(), stage, key]) + "\n")


async def _trace_lag() -> None:
    """The loop's stalls over 10 ms (something synchronous ran)."""
    while True:
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.sleep(0.005)
        late = time.perf_counter() - t0 - 0.005
        if late > 0.01:
            _trace("lag", f"{late:.4f} cpu {time.process_time() - c0:.4f}")


class _Asker:
    """Questions for the engine (``QUESTIONS``) on one DEALER kept open, replies matched by id.

    A fresh socket per request (``zmq_client.arequest``) pays a TCP connect and a ZMTP handshake
    each time: 5 to 20 ms of every signal alert's path (its ``setup``) on a busy machine. A
    question is safe to send again and to answer late (a late reply finds nobody waiting and is
    dropped), so it may wait in the socket's queue while the engine restarts. Commands may not: a
    command that timed out must never reach a restarted engine later, so they keep a fresh
    socket each."""

    def __init__(self, addr: str, curve: zmq_client.CurveKeys | None, timeout_s: float) -> None:
        self.addr, self.curve, self.timeout_s = addr, curve, timeout_s
        self.sock: zmq.asyncio.Socket | None = None
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        if self.sock is None:
            self.sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
            self.sock.linger = 0
            if self.curve is not None:
                self.curve.apply(self.sock)
            self.sock.connect(self.addr)
            self._reader = asyncio.create_task(self._read())
        req = wire.request(op, **args)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[req["id"]] = fut
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.sock.send_multipart([b"", wire.encode(req)])
                return await fut
        except TimeoutError:
            return {"id": req["id"], "ok": False, "timeout": True, "result": None,
                    "error": f"timeout: no reply to {op!r} from {self.addr} within "
                             f"{self.timeout_s:g} s (is the engine running with publish "
                             "enabled, and are the CURVE keys right?)"}
        finally:
            self.waiting.pop(req["id"], None)

    async def _read(self) -> None:
        assert self.sock is not None
        while True:
            frames = await self.sock.recv_multipart()
            try:
                rep = wire.decode(frames[-1])
            except wire.WireError as exc:
                log.warning("dropped a reply that is not wire v1: %s", exc)
                continue
            fut = self.waiting.get(rep.get("id"))  # none: a late reply to a timed-out question
            if fut is not None and not fut.done():
                fut.set_result(rep)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None


@dataclass
class Pending:
    op: str
    args: dict[str, Any]
    chat_id: int
    text: str
    expires: float
    message_id: int | None = None


@dataclass
class _Rate:
    sent: deque[float] = field(default_factory=deque)


def _retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra = exc.retry_after
    return ra.total_seconds() if isinstance(ra, timedelta) else float(ra)


class FrontEnd:
    def __init__(self, cfg: Any, secrets: Secrets, pub: str = wire.DEFAULT_PUB,
                 commands: str = wire.DEFAULT_COMMANDS, *, base_url: str | None = None,
                 base_file_url: str | None = None, curve: zmq_client.CurveKeys | None = None,
                 poll_timeout: int = 10, backoff_max_s: float = 30.0) -> None:
        self.cfg = cfg
        self.allowed = secrets.allowed
        bad = sorted({c for ids in cfg.routes.values() for c in ids} - set(self.allowed))
        unknown = sorted(set(cfg.routes) - set(alerts.KINDS))
        if unknown or bad:
            from engine.errors import ConfigError

            raise ConfigError(
                f"telegram.routes: {'unknown alert kinds ' + str(unknown) if unknown else ''}"
                f"{' chat ids not in ' + ALLOW_ENV + ': ' + str(bad) if bad else ''}; kinds "
                f"are {list(alerts.KINDS)}, chats must be allowed")
        self.pub, self.commands, self.curve = pub, commands, curve
        self.poll_timeout = poll_timeout
        self.backoff_max_s = backoff_max_s
        self.state = EngineState(bars=max(300, cfg.chart_bars * 2))
        self.outbox = Outbox(cfg.outbox)
        self.pending: dict[str, Pending] = {}
        self.takes: dict[str, tuple[str, str, float]] = {}  # alert button -> op, alarm, expiry
        self.refused: set[int] = set()
        self.seen: set[str] = set()
        self.synced = asyncio.Event()
        self.warmed = False  # the first chart drawn (matplotlib loaded)
        self._wakes = (asyncio.Event(), asyncio.Event())  # the text lane, the photo lane
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._charts: asyncio.Queue[tuple[dict[str, Any], dict[str, Any] | None]] = \
            asyncio.Queue()
        self._next_ask = 0.0  # flat-out pacing of setups and chart bars (time.monotonic)
        self._lost = 0  # the publisher's skipped + dropped count at the last look
        self._pool: ProcessPoolExecutor | None = None  # the chart process (see _draw)
        self._rate: dict[int, _Rate] = {}
        self._asker = _Asker(commands, curve, cfg.request_timeout_s)
        self.delivered: list[tuple[float, str]] = []  # (time, key): latency and order checks
        # connections for the two delivery lanes and the handlers' replies (PTB's default is 1:
        # a chart's upload would hold every text alert and reply behind it)
        b = Application.builder().token(secrets.token).connection_pool_size(8)
        if base_url:
            b = b.base_url(base_url)
        if base_file_url:
            b = b.base_file_url(base_file_url)
        self.app = b.build()
        self._handlers()

    # -- the command channel ---------------------------------------------------------------
    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        if op in QUESTIONS:
            return await self._asker.ask(op, **args)
        return await zmq_client.arequest(self.commands, op, timeout_s=self.cfg.request_timeout_s,
                                         curve=self.curve, **args)

    # -- running ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        async with self.app:
            await self.app.start()
            await self.app.updater.start_polling(poll_interval=0.0, timeout=self.poll_timeout)
            _settle_heap()
            tasks = [asyncio.create_task(c) for c in (
                self._subscribe(), self._build_alerts(), self._draw_charts(), self._deliver(),
                self._deliver(photos=True), self._daily())]
            if _TRACE_PATH and os.environ.get("TRADEBOT_TG_TRACE_LAG"):
                tasks.append(asyncio.create_task(_trace_lag()))
            for t in tasks:
                t.add_done_callback(_died)
            try:
                await stop.wait()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.app.updater.stop()
                await self.app.stop()
                self.outbox.close()
                self._asker.close()
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)

    # -- subscriber ------------------------------------------------------------------------
    async def _subscribe(self) -> None:
        ctx = zmq.asyncio.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = 100_000
        if self.curve is not None:
            self.curve.apply(sub)
        for t in TOPICS:
            sub.subscribe(f"{t}.".encode())
        sub.connect(self.pub)
        need, first = True, True
        last_snap = -math.inf
        run, last = None, 0
        try:
            while True:
                if need:
                    # at most one snapshot a second: a flat-out backtest skips bars on every
                    # round, and a snapshot holds the bridge's lock (the engine's publisher waits)
                    wait = last_snap + RESYNC_MIN_S - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    last_snap = time.monotonic()
                    rep = await self.request("snapshot", bars=self.state.bars.maxlen)
                    if not rep.get("ok"):
                        log.info("no snapshot yet (%s); retrying", rep.get("error"))
                        await asyncio.sleep(0.5)
                        continue
                    snap = rep["snapshot"]
                    baseline = first or snap["run"] != self.state.run
                    self._absorb(snap, baseline)
                    run, last = snap["run"], rep["seq"]
                    self._lost = _lost(snap.get("status") or {})
                    need, first = False, False
                    self.synced.set()
                if not await sub.poll(1000):
                    continue
                topic, payload = (await sub.recv_multipart())[:2]
                try:
                    msg = wire.decode(payload)
                except wire.WireError as exc:
                    log.warning("dropped a message that is not wire v1: %s", exc)
                    continue
                if msg["run"] != run:
                    log.info("a new run %s in the event stream: taking a snapshot", msg["run"])
                    self.state.resyncs += 1
                    need = True
                    continue
                if msg["seq"] <= last:
                    continue  # already in the snapshot
                last = msg["seq"]  # gaps are the topics not subscribed to
                kind = topic.split(b".", 1)[0].decode()
                self.state.apply(kind, msg)
                if kind == "status":
                    lost = _lost(msg["data"])
                    if lost > self._lost:  # bars skipped or messages dropped: events missed
                        log.info("the publisher skipped or dropped messages (%d): taking a "
                                 "snapshot", lost - self._lost)
                        self.state.resyncs += 1
                        need = True
                elif kind in ("signal", "fill", "order", "trade", "alert", "command"):
                    if _TRACE_PATH:
                        _trace("sub", self._key(kind, msg))
                    self._queue.put_nowait((kind, msg))
        finally:
            sub.close(0)

    def _absorb(self, snap: dict[str, Any], baseline: bool) -> None:
        """Apply a snapshot; outside a baseline, alert what it holds that was not alerted."""
        self.state.apply_snapshot(snap)
        run = snap["run"]
        items = ([("signal", "SignalRaised", d) for d in snap.get("signals") or []]
                 + [("fill", "OrderFilled", d) for d in snap.get("fills") or []]
                 + [("trade", "TradeClosed", d) for d in snap.get("trades") or []])
        for kind, type_, d in items:
            msg = {"run": run, "seq": 0, "type": type_, "data": d}
            key = self._key(kind, msg)
            if baseline:
                self.seen.add(key)
            elif key not in self.seen:
                self._queue.put_nowait((kind, msg))

    @staticmethod
    def _key(kind: str, msg: dict[str, Any]) -> str:
        if kind == "signal":
            return f"signal-{msg['data']['alarm_id']}"
        a = alerts.event_alert(kind, msg)
        return a[1] if a else ""

    # -- alerts ----------------------------------------------------------------------------
    async def _build_alerts(self) -> None:
        while True:
            kind, msg = await self._queue.get()
            try:
                await self._alert(kind, msg)
            except Exception:
                log.exception("could not build the %s alert", kind)

    async def _ask(self, op: str, **args: Any) -> dict[str, Any]:
        """A question for the engine (setup, chart bars): paced while a backtest runs flat out
        (nobody trades on it, and every answer is the engine's time), not otherwise."""
        if self._flat_out():
            now = time.monotonic()
            wait = self._next_ask - now
            self._next_ask = max(now, self._next_ask) + 1.0 / FLAT_OUT_ASKS_PER_S
            if wait > 0:
                await asyncio.sleep(wait)
        return await self.request(op, **args)

    def _flat_out(self) -> bool:
        """A backtest running as fast as it can (nobody trades on it)."""
        st = self.state.status
        return st.get("mode") == "backtest" and not st.get("speed") and not st.get("finished")

    async def _alert(self, kind: str, msg: dict[str, Any]) -> None:
        if kind == "signal":
            sig = msg["data"]
            key = f"signal-{sig['alarm_id']}"
            if key in self.seen or "signal" in self.cfg.mute:
                return
            self.seen.add(key)
            if _TRACE_PATH:
                _trace("ask", key)
            rep = await self._ask("setup", alarm_id=sig["alarm_id"])
            if _TRACE_PATH:
                _trace("answer", key)
            setup = rep.get("result") if rep.get("ok") else None
            if setup is None:
                log.warning("no trade setup for alarm %s (%s): alert without it",
                            sig["alarm_id"], rep.get("error"))
            text = alerts.signal_text(sig, setup, self.state.symbol, self.state.timeframe)
            self.enqueue("signal", key, text, None, self._buttons(sig))
            self._charts.put_nowait((sig, setup))  # the chart follows when drawn
            return
        if kind == "order" and msg.get("type") == "OrderCanceled":
            self._held_dropped(msg["data"])
        a = alerts.event_alert(kind, msg)
        if a is None or a[1] in self.seen:
            return
        self.seen.add(a[1])
        self.enqueue(*a)

    def _buttons(self, sig: dict[str, Any]) -> list[list[tuple[str, str]]] | None:
        """"Take it" / "Skip" while the engine can take it: ``take``/``skip`` of a held entry
        (alert-first), else a one-tap ``buy``/``sell``; none in a backtest or a finished run."""
        accepts = self.state.status.get("accepts") or ()
        op = "buy" if sig["side"] == "long" else "sell"
        if "take" in accepts:
            op = "take"
        elif op not in accepts:
            return None
        now = time.monotonic()
        for t in [t for t, v in self.takes.items() if v[2] < now]:
            del self.takes[t]  # expired buttons nobody tapped
        token = _secrets.token_hex(6)
        self.takes[token] = (op, sig["alarm_id"], now + self._take_timeout(op))
        return [[("✅ Take it", f"take:{token}"), ("✖️ Skip", f"skip:{token}")]]

    def _take_timeout(self, op: str) -> float:
        if op == "take":  # the engine's own hold decides; a late tap gets its answer
            return float(self.state.status.get("confirm_timeout_s") or 3600.0) + 60.0
        return self.cfg.confirm_timeout_s

    def _held_dropped(self, d: dict[str, Any]) -> None:
        """An entry the engine held for a tap was dropped (timeout): its buttons go too."""
        reason = d.get("reason") or ""
        if reason.startswith("confirm:"):
            for t, v in list(self.takes.items()):
                if v[0] == "take" and v[1] in reason:
                    del self.takes[t]

    async def _draw(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the chart process: matplotlib's drawing holds the GIL for tens of
        ms at a time, which in a thread of this process would stall the loop (and every alert
        behind it). A pool that broke (its process died) is replaced once."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=alerts.chart_worker_init, initargs=(os.getpid(),))
            try:
                return await loop.run_in_executor(self._pool, fn, *args)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if attempt == 2:
                    raise
                log.warning("the chart process died; starting another")
        return None

    async def _draw_charts(self) -> None:
        """Signal charts, one at a time in a process of their own, each sent as its own
        message after the signal's text (which never waits for it)."""
        # the first chart pays matplotlib's import and font set-up: pay it before any alert
        await self._draw(alerts.warm_up)
        self.warmed = True
        while True:
            sig, setup = await self._charts.get()
            try:
                bars = await self._chart_bars(sig)
                t0 = time.perf_counter()
                if _TRACE_PATH:
                    _trace("chart", sig["alarm_id"])
                png = await self._draw(alerts.chart_png, bars, sig, setup)
                took = time.perf_counter() - t0
                log.debug("alarm %s: chart %.3f s", sig["alarm_id"], took)
                self.enqueue("signal", f"chart-{sig['alarm_id']}",
                             alerts.chart_caption(sig), png)
                if self._flat_out():  # a core the engine may need: drawing 1/5 of the time
                    await asyncio.sleep(took * (1 / FLAT_OUT_CHART_SHARE - 1))
            except Exception:
                log.exception("could not draw the chart of %s", sig.get("alarm_id"))

    async def _chart_bars(self, sig: dict[str, Any]) -> list[dict[str, Any]]:
        """The candles up to the signal's bar: from the last snapshot when it holds them, else
        from a new one (bars are not subscribed to)."""
        n, seq = self.cfg.chart_bars, sig["seq"]
        bars = self.state.bars
        have = [b for b in bars if b["seq"] <= seq]
        if bars and bars[-1]["seq"] >= seq and (len(have) >= n or bars[0]["seq"] == 0):
            return have[-n:]
        ahead = max(0, int(self.state.status.get("bar_seq", seq)) - seq)
        rep = await self._ask("snapshot", bars=n + ahead + 8)
        if rep.get("ok"):
            got = rep["snapshot"]["bars"]
            bars.clear()
            bars.extend(got)  # the next signal's chart may find its bars here
            have = [b for b in got if b["seq"] <= seq]
        return have[-n:]

    def enqueue(self, kind: str, key: str, text: str, photo: bytes | None = None,
                buttons: list[list[tuple[str, str]]] | None = None) -> int:
        """Queue an alert for its chats (muted kinds are dropped); returns how many were new."""
        if kind in self.cfg.mute:
            return 0
        chats = self.cfg.routes.get(kind) or sorted(self.allowed)
        n = sum(self.outbox.put(key, c, kind, text, photo, buttons) for c in chats)
        if _TRACE_PATH:
            _trace("queued", key)
        for w in self._wakes:
            w.set()
        return n

    async def _daily(self) -> None:
        at = self.cfg.daily_summary
        if not at:
            return
        hh, mm = (int(x) for x in at.split(":"))
        while True:
            now = datetime.now(UTC)
            nxt = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
            if nxt <= now:
                nxt += timedelta(days=1)
            await asyncio.sleep((nxt - now).total_seconds())
            with contextlib.suppress(Exception):
                await self._refresh_equity()
            self.send_summary(nxt)

    def send_summary(self, when: datetime) -> None:
        day = int(datetime(when.year, when.month, when.day, tzinfo=UTC).timestamp() * 1000)
        self.enqueue("summary", f"summary-{when:%Y-%m-%d}",
                     alerts.summary_text(self.state, day))

    # -- deliverer -------------------------------------------------------------------------
    def _rate_wait(self, chat: int, now: float) -> float:
        r = self._rate.setdefault(chat, _Rate())
        while r.sent and r.sent[0] < now - 60:
            r.sent.popleft()
        if len(r.sent) < self.cfg.rate_limit_per_min:
            return 0.0
        return r.sent[0] + 60 - now

    async def _deliver(self, photos: bool = False) -> None:
        """One delivery lane: texts, or photos (charts). A photo's upload never holds up a
        text; a photo waits for the texts queued before it (its signal's text among them)."""
        bot = self.app.bot
        wake = self._wakes[photos]
        while True:
            item = self.outbox.head(photos)
            if item is None:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
                continue
            now = time.time()
            wait = max(item.next_try - now, self._rate_wait(item.chat_id, now))
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            if _TRACE_PATH:
                _trace("pick", item.key)
            try:
                markup = None
                if item.buttons:
                    markup = InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d)
                                                    for t, d in row] for row in item.buttons])
                if item.photo is not None:
                    await bot.send_photo(item.chat_id, photo=item.photo, caption=item.text[:1024],
                                         reply_markup=markup)
                else:
                    await bot.send_message(item.chat_id, item.text[:4096], reply_markup=markup)
            except RetryAfter as exc:
                secs = _retry_after_s(exc)
                log.warning("Telegram answered 429: alert %s waits %.1f s", item.key, secs)
                self.outbox.retry(item.id, time.time() + secs)
            except (BadRequest, Forbidden) as exc:
                log.error("Telegram refused alert %s for chat %s: %s; skipped", item.key,
                          item.chat_id, exc)
                self.outbox.give_up(item.id, str(exc))
            except NetworkError as exc:
                backoff = min(0.25 * 2 ** item.attempts, self.backoff_max_s)
                log.warning("Telegram unreachable (%s): alert %s retries in %.1f s",
                            type(exc).__name__, item.key, backoff)
                self.outbox.retry(item.id, time.time() + backoff)
            else:
                if _TRACE_PATH:
                    _trace("sent", item.key)
                self.outbox.sent(item.id)
                t = time.time()
                self._rate[item.chat_id].sent.append(t)
                self.delivered.append((t, item.key))

    # -- handlers --------------------------------------------------------------------------
    def _handlers(self) -> None:
        app = self.app
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        for name, fn in (("start", self._help), ("help", self._help), ("status", self._status),
                         ("balance", self._balance), ("positions", self._positions),
                         ("trades", self._trades), ("alarms", self._alarms), ("pnl", self._pnl),
                         ("pause", self._pause), ("resume", self._pause),
                         ("close", self._trade), ("flatten", self._trade),
                         ("buy", self._trade), ("sell", self._trade)):
            app.add_handler(CommandHandler(name, fn))
        app.add_handler(CallbackQueryHandler(self._confirm, pattern=r"^(ok|no):"))
        app.add_handler(CallbackQueryHandler(self._take, pattern=r"^(take|skip):"))

    async def _gate(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is not None and chat.id in self.allowed:
            return
        cid = chat.id if chat is not None else None
        first = cid not in self.refused
        log.warning("refused an update from chat %s (not in %s)%s", cid, ALLOW_ENV,
                    "" if first else "; already told")
        if first and cid is not None:
            self.refused.add(cid)
            if update.callback_query is not None:
                await update.callback_query.answer(REFUSAL)
            else:
                await ctx.bot.send_message(cid, REFUSAL)
        raise ApplicationHandlerStop

    async def _reply(self, update: Update, text: str, **kw: Any) -> Any:
        return await update.effective_message.reply_text(text, do_quote=True, **kw)

    async def _help(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        head = ("tradebot online. Alerts come here; trading commands ask you to confirm.\n\n"
                if update.effective_message.text.startswith("/start") else "")
        await self._reply(update, head + HELP)

    def status_text(self) -> str:
        s = self.state
        st = s.status
        if not self.synced.is_set():
            return "engine: not reached yet (is it running with publish enabled?)"
        age = time.monotonic() - s.status_at
        last = s.last_bar_ms()
        lag = time.time() - last / 1000 if last else None
        lines = [f"mode: {s.mode}   symbol: {s.symbol} {s.timeframe}",
                 f"engine: {'alive' if s.alive() else 'NOT alive'} (last message {age:.1f} s "
                 f"ago){', finished' if st.get('finished') else ''}",
                 f"last bar: #{st.get('bar_seq', -1)} closed {alerts._ts(last)}",
                 f"bar lag: {lag:,.0f} s" if lag is not None else "bar lag: -",
                 f"entries: {'paused' if st.get('paused') else 'on'}",
                 f"run: {s.run}   resyncs: {s.resyncs}   alerts queued: "
                 f"{self.outbox.pending()}"]
        return "\n".join(lines)

    async def _status(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, self.status_text())

    async def _refresh_equity(self) -> None:
        """Equity is not subscribed to (one message per bar): read it from a snapshot."""
        rep = await self.request("snapshot", bars=1)
        if rep.get("ok") and rep["snapshot"].get("equity"):
            self.state.equity = dict(rep["snapshot"]["equity"][-1]["equity"])
            if not self.state.initial:
                self.state.initial = dict(self.state.equity)

    async def _balance(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        await self._refresh_equity()
        eq = self.state.equity
        if not eq:
            await self._reply(update, "no equity yet (no bar has closed)")
            return
        lines = ["balance (equity per strategy):"]
        for name, v in eq.items():
            ini = self.state.initial.get(name)
            ch = f" ({(v / ini - 1) * 100:+.2f}%)" if ini else ""
            lines.append(f"  {name}: {v:,.2f}{ch}")
        lines.append(f"total: {sum(eq.values()):,.2f}")
        await self._reply(update, "\n".join(lines))

    async def _positions(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        rep = await self.request("snapshot", bars=1)
        if rep.get("ok"):
            pos = rep["snapshot"]["positions"]
            note = ""
        else:
            pos, note = self.state.positions, f"\n(engine not reached: {rep.get('error')})"
        if not pos:
            await self._reply(update, "no open positions" + note)
            return
        lines = ["open positions:"]
        for name, p in pos.items():
            tg = ", ".join(fmt_price(t) for t in p.get("targets") or []) or "-"
            lines.append(f"  {name}: {p['side']} {p['qty']:.6g} @ {fmt_price(p['entry_price'])}"
                         f" stop {fmt_price(p.get('stop'))} targets {tg}")
        await self._reply(update, "\n".join(lines) + note)

    @staticmethod
    def _n(ctx: ContextTypes.DEFAULT_TYPE, default: int = 5) -> int:
        try:
            return max(1, min(int(ctx.args[0]), 50)) if ctx.args else default
        except ValueError:
            return default

    async def _trades(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        ts = list(self.state.trades)[-self._n(ctx):]
        if not ts:
            await self._reply(update, "no closed trades yet")
            return
        lines = [f"last {len(ts)} trades:"]
        for t in ts:
            lines.append(f"  {alerts._ts(t['exit_ts_ns'] // 1_000_000)} {t['account']} "
                         f"{t['side']} {fmt_price(t['entry_price'])} -> "
                         f"{fmt_price(t['exit_price'])} {t['pnl']:+,.2f} ({t['exit_reason']})")
        await self._reply(update, "\n".join(lines))

    async def _alarms(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        ss = list(self.state.signals)[-self._n(ctx):]
        if not ss:
            await self._reply(update, "no alarms yet")
            return
        lines = [f"last {len(ss)} alarms:"]
        for s in ss:
            lines.append(f"  {s['alarm_id']} {s['side']} @ {fmt_price(s['entry_price'])} stop "
                         f"{fmt_price(s['stop_price'])} ({s['rule']}, "
                         f"{alerts._ts(s['ts_event_ns'] // 1_000_000)})")
        await self._reply(update, "\n".join(lines))

    async def _pnl(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        period = (ctx.args[0].lower() if ctx.args else "today")
        if period not in ("today", "week"):
            await self._reply(update, "usage: /pnl [today|week]")
            return
        last = self.state.last_bar_ms() or int(time.time() * 1000)
        day = datetime.fromtimestamp(last / 1000, UTC).replace(hour=0, minute=0, second=0,
                                                                microsecond=0)
        since = day - timedelta(days=6) if period == "week" else day
        total, n, per = self.state.pnl_since(int(since.timestamp() * 1000))
        lines = [f"PnL {period} (since {since:%Y-%m-%d} UTC, engine time): {total:+,.2f} "
                 f"over {n} trades"]
        lines += [f"  {k}: {v:+,.2f}" for k, v in sorted(per.items())]
        await self._reply(update, "\n".join(lines))

    async def _pause(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        op = update.effective_message.text.split()[0].lstrip("/").split("@")[0]
        rep = await self.request(op, reason=f"telegram chat {update.effective_chat.id}")
        log.info("chat %s: %s -> %s", update.effective_chat.id, op, rep.get("ok"))
        if rep.get("ok"):
            await self._reply(update, "⏸ entries paused" if op == "pause" else
                              "▶️ entries resumed")
        else:
            await self._reply(update, f"❌ {op} failed: {rep.get('error')}")

    # -- trading commands: confirm first ---------------------------------------------------
    def _strategy(self, given: str | None) -> str | None:
        return given or self.cfg.default_strategy or next(iter(self.state.strategies()), None)

    def parse_trade(self, op: str, args: list[str]) -> tuple[dict[str, Any], str] | str:
        """``(request args, description)`` of a trading command, or an error text."""
        if op == "flatten":
            return {}, "flatten: close every position"
        if op == "close":
            if not args:
                return f"usage: /close <strategy>; strategies: {self.state.strategies()}"
            return {"strategy": args[0]}, f"close {args[0]}'s position"
        kv = {k.lower(): v for k, _, v in (a.partition("=") for a in args if "=" in a)}
        bare = [a for a in args if "=" not in a]
        strategy = self._strategy(kv.pop("strategy", None))
        if strategy is None:
            return "no strategy known yet; give strategy=NAME"
        out: dict[str, Any] = {"strategy": strategy}
        side = "long" if op == "buy" else "short"
        try:
            for k in ("price", "stop", "target"):
                if k in kv:
                    out[k] = float(kv.pop(k))
        except ValueError as exc:
            return f"not a price: {exc}"
        if kv:
            return f"unknown argument(s) {sorted(kv)}; use alarm id, stop=, target=, price=, " \
                   "strategy="
        if "stop" in out:
            desc = (f"{op} {strategy}: {'market' if 'price' not in out else out['price']} "
                    f"stop {out['stop']} target {out.get('target', '-')}")
            return out, desc
        alarm = self.state.alarm(bare[0]) if bare else self.state.alarm(side=side)
        if alarm is None:
            what = f"alarm {bare[0]!r} is not among the recent alarms" if bare else \
                f"no {side} alarm yet"
            return f"{what}; give /{op} stop=PRICE [target=PRICE] or an alarm id from /alarms"
        out["alarm_id"] = alarm["alarm_id"]
        return out, (f"{op} {strategy} from alarm {alarm['alarm_id']} (entry "
                     f"{fmt_price(alarm['entry_price'])}, stop {fmt_price(alarm['stop_price'])})")

    async def _trade(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        op = update.effective_message.text.split()[0].lstrip("/").split("@")[0]
        if not self.state.equity:
            await self._refresh_equity()  # the strategies' names
        parsed = self.parse_trade(op, list(ctx.args or []))
        if isinstance(parsed, str):
            await self._reply(update, f"❌ {parsed}")
            return
        args, desc = parsed
        token = _secrets.token_hex(6)
        timeout = self.cfg.confirm_timeout_s
        p = Pending(op, args, update.effective_chat.id, desc, time.monotonic() + timeout)
        self.pending[token] = p
        kb = InlineKeyboardMarkup([[
            InlineKeyboardButton("✅ Confirm", callback_data=f"ok:{token}"),
            InlineKeyboardButton("✖️ Cancel", callback_data=f"no:{token}")]])
        m = await self._reply(update, f"Confirm: {desc}?\n(expires in {timeout:g} s)",
                              reply_markup=kb)
        p.message_id = getattr(m, "message_id", None)
        asyncio.get_running_loop().call_later(
            timeout, lambda: asyncio.ensure_future(self._expire(token)))

    async def _expire(self, token: str) -> None:
        p = self.pending.pop(token, None)
        if p is None or p.message_id is None:
            return
        with contextlib.suppress(Exception):
            await self.app.bot.edit_message_text(f"⌛ Expired, not sent: {p.text}", p.chat_id,
                                                 p.message_id)

    async def _confirm(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        q = update.callback_query
        verb, _, token = (q.data or "").partition(":")
        p = self.pending.get(token)
        if p is None or p.chat_id != update.effective_chat.id or time.monotonic() > p.expires:
            if p is not None and p.chat_id == update.effective_chat.id:
                del self.pending[token]
            await q.answer("expired")
            with contextlib.suppress(BadRequest):
                await q.edit_message_text("⌛ Expired, not sent." + (f" {p.text}" if p else ""))
            return
        del self.pending[token]
        if verb == "no":
            await q.answer("cancelled")
            await q.edit_message_text(f"✖️ Cancelled: {p.text}")
            return
        await q.answer("sending")
        rep = await self.request(p.op, **p.args, reason=f"telegram chat {p.chat_id}")
        log.info("chat %s: %s %s -> %s", p.chat_id, p.op, p.args, rep.get("ok"))
        if rep.get("ok"):
            await q.edit_message_text(f"✅ Done: {p.text}\n{_result(rep.get('result'))}")
        else:
            await q.edit_message_text(f"❌ Refused: {p.text}\n{rep.get('error')}")


    async def _take(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        """A tap on a signal alert's "Take it" / "Skip" (the tap is the confirmation)."""
        q = update.callback_query
        verb, _, token = (q.data or "").partition(":")
        chat = update.effective_chat.id
        got = self.takes.pop(token, None)
        with contextlib.suppress(BadRequest):
            await q.edit_message_reply_markup(None)  # one tap per alert
        if got is None or time.monotonic() > got[2]:
            await q.answer("expired")
            await q.message.reply_text("⌛ This alert's buttons expired; use /buy or /sell.")
            return
        op, alarm, _ = got
        reason = f"telegram chat {chat} (alert button)"
        if op == "take":  # alert-first: the engine holds the entry until take / skip
            await q.answer("sending")
            rep = await self.request(verb, alarm_id=alarm, reason=reason)
            log.info("chat %s: %s %s -> %s", chat, verb, alarm, rep.get("ok"))
            if not rep.get("ok"):
                await q.message.reply_text(f"❌ {verb} {alarm} refused: {rep.get('error')}")
            elif verb == "skip":
                await q.message.reply_text(f"✖️ Skipped {alarm}: the entry is dropped")
            else:
                await q.message.reply_text(f"✅ Taken: {alarm}\n{_result(rep.get('result'))}")
            return
        if verb == "skip":
            await q.answer("skipped")
            await q.message.reply_text(f"✖️ Skipped {alarm}")
            return
        await q.answer("sending")
        if not self.state.equity:
            await self._refresh_equity()  # the strategies' names
        strategy = self._strategy(None)
        if strategy is None:
            await q.message.reply_text("❌ no strategy known yet; use /buy strategy=NAME")
            return
        rep = await self.request(op, strategy=strategy, alarm_id=alarm, reason=reason)
        log.info("chat %s: %s %s from the alert -> %s", chat, op, alarm, rep.get("ok"))
        if rep.get("ok"):
            await q.message.reply_text(f"✅ Taken: {op} {strategy} from {alarm}\n"
                                       f"{_result(rep.get('result'))}")
        else:
            await q.message.reply_text(f"❌ Refused: {op} {strategy} from {alarm}\n"
                                       f"{rep.get('error')}")


_settled = False


def _settle_heap() -> None:
    """Once per process, when every module is loaded (telegram, httpx, zmq, the config's pydantic
    models: about 69,000 objects that live as long as the process): out of the collector's sight.
    A full collection walked them all, 80 to 175 ms with the event loop stopped in the middle of
    some alert's path; now it walks only the objects made since."""
    global _settled
    if not _settled:
        _settled = True
        gc.collect()
        gc.freeze()


def _lost(status: dict[str, Any]) -> int:
    """Messages the publisher did not send to everyone: bars skipped and messages dropped."""
    return int(status.get("skipped") or 0) + int(status.get("dropped") or 0)


def _died(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("front end task %s stopped", task.get_coro().__name__,
                  exc_info=task.exception())


def _result(res: Any) -> str:
    if not isinstance(res, dict):
        return ""
    return ", ".join(f"{k}: {fmt_price(v) if isinstance(v, float) else v}"
                     for k, v in res.items())
