"""The ZeroMQ bridge: the engine's events on a PUB socket, snapshots and commands on a ROUTER.

Wire format and ops: ``engine/wire.py`` (wire v1). Loaded by the composition root through the
entry-point group ``tradebot.sinks`` (name ``zmq``) when ``publish.enabled`` is set (config,
``tradebot run --publish``, ``tradebot replay``). Docs: ``docs/ui.md`` ("The bridge").

Threads. The engine thread owns the PUB (an XPUB) socket: the bus calls the bridge last on
the events it needs (priority 1000); bars cost it nothing (the loop calls its ticker between
chunks of bars, ``Bus.tick_every``: every bar live or paced; flat out, chunks sized so that the
calls come ``TICK_S`` = 5 ms of the engine thread's CPU apart). Every event snapshots keep
(signals, orders, fills, commands, alerts) is appended to the *log*, one list in engine order,
trimmed in bulk to its last ``RECENT_EVENTS`` (a builtin append, no Python frame); signals,
commands and alerts also to their own bounded deques. Closed trades are read from the accounts
(``Account.trades``), so ``TradeClosed`` and the types nobody else hears stay unheard
(``Bus.unheard``: the engine does not build them). Every few bars the engine thread publishes
a *round*: bars read back from the ``BarStore``, each with its feature row (the
``FeatureStore`` at that seq), its events and every account's equity (from the accounts' fill
history, so a later bar never leaks in), plus a ``status`` heartbeat. Two ways, by mode:

- **queued** (live, paced, or ``max_cpu_share`` 1): a round every bar (flat out with no budget:
  every 20 ms of the engine thread's CPU); with a subscriber (XPUB's subscription frames tell;
  checked every round) every event type also goes to the publishing queue, and a round
  publishes every bar since the last one in order, placing queued events on their bars by time
  (``ts_event_ns`` at or before a bar's close: that bar; the rest: the round's last bar). The
  switch happens at a round; bars closed while nobody was subscribed are skipped as a block
  (``seq`` jumps: a new subscriber takes a snapshot anyway).
- **sampled** (a backtest or replay flat out under a budget): a round every 20 ms of the engine
  thread's CPU publishes the *latest* bars its budget pays for, skipping the ones before them as
  a block; their events are read back from the log and their trades from the accounts, so a
  subscriber adds nothing per event (nothing is queued; the routes do not change) - only the
  rounds' own budget. A bar is published with all of its events or not at all: a log trimmed
  under the round costs bars, not events.

A service thread owns the ROUTER: it answers ``ping`` and ``snapshot`` itself (from state the
rounds keep under a lock: the log, the deques of recent signals, commands and alerts; working
orders per account; trades from the accounts; reading bars, features and equity up to the last
published bar) and hands everything else to the engine thread through a deque; the engine
thread's replies come back over an inproc PUSH/PULL pair.

Never blocking the engine. The engine thread never waits on a subscriber: it sends with
``NOBLOCK`` to a socket with ``SNDHWM = publish.hwm``; a stalled subscriber's pipe fills and
ZeroMQ drops *its* messages (the others are not affected); it sees a gap in ``seq`` and asks for
a snapshot. With no subscriber at all (the XPUB's subscription frames tell) nothing is encoded.
Flat out, rounds spend at most ``publish.max_cpu_share`` of the CPU time the engine thread
used (CPU, not wall time: on a busy machine a wall-clock budget grew with every wait and took a
far larger share of the engine's own work). Sampled rounds pay for the whole round from a
credit that accrues by that share (capped at four rounds' worth): a round that overran leaves a
debt the next ones repay, and bars no round could pay for wait for one that can. Snapshots
stay within the same share (``_snapshots``); the bars not published are skipped as a block:
``seq`` jumps by one for each, so subscribers see a gap and take a snapshot, which is complete
because the state is kept for every event, published or not.

Order on the wire. Events of one bar go out as: ``bar``, ``features``, that bar's events in
engine order (fills of resting orders, signals, orders, trades), ``equity``. Events between bars
(commands, live fills, the run's end) go out in the next round, before the next bar.

Commands are applied on the engine thread at the end of a bar (every bar live or paced, at
every ticker call flat out: about 5 ms of the engine's CPU), while a paced replay waits for its
next bar, live between bars on a 0.25 s timer of the engine's clock, or when whoever drives the
engine calls
``drain_commands()`` or ``idle()``. Each is published as a ``CommandApplied`` event on the bus,
so the journal records it and every front end sees it (``command.<SYMBOL>``). In backtest mode (a
backtest or a replay: not live) trading ops (``close``, ``flatten``, ``buy``, ``sell``) are
refused with the reason; ``pause``/``resume`` (entries) are accepted in every mode.

Security. Loopback by default. Binding any other address requires CURVE (``publish.curve``: the
server's secret certificate and a folder of allowed client public certificates, as written by
``zmq.auth.create_certificates``); a peer without an allowed key never completes the handshake,
so it gets no answer and its commands never reach the engine.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zmq

from engine import events as _events
from engine import wire
from engine.bus import PRIORITY_SINK
from engine.errors import ConfigError
from engine.events import (
    BarClosed,
    CancelOrder,
    CommandApplied,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    SignalRaised,
    SubmitOrder,
    TradeClosed,
)
from engine.loop import CHUNK

log = logging.getLogger(__name__)

INTERVAL_S = 0.02  # publisher cycle
TICK_S = 0.005  # flat out: the ticker's calls this far apart in engine-thread CPU time
FLAT_OUT_EVERY = 256  # bars between the ticker's first calls flat out (then sized to TICK_S)
MAX_EVERY = CHUNK  # the loop's chunk: no fewer ticker calls than that
RECENT = 500  # signals, commands, alerts kept for snapshots (each)
RECENT_EVENTS = 1000  # the event log: signals, orders, fills, commands, alerts in engine order
# (at least; trimmed back to it once it holds twice as many)
BAR_COST_S = 50e-6  # a published bar's first estimated cost (then measured)
SNAPSHOT_WAIT_S = 1.0  # longest wait for the snapshot budget (clients time out after 2 s)
NOT_PUBLISHED = frozenset({"TimerFired"})  # internal clock ticks stay off the wire
LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def is_local(addr: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    if addr.startswith(("ipc://", "inproc://")):
        return True
    if not addr.startswith("tcp://"):
        return False
    host = addr[len("tcp://"):].rsplit(":", 1)[0]
    return host.startswith(LOOPBACK)


class Settings(msgspec.Struct, kw_only=True):
    """What the bridge needs from ``publish:`` (``engine.config.PublishConfig``)."""

    pub: str = wire.DEFAULT_PUB
    commands: str = wire.DEFAULT_COMMANDS
    hwm: int = 10_000
    snapshot_bars: int = 2_000
    heartbeat_s: float = 1.0
    speed: float = 0.0
    max_cpu_share: float = 0.02  # engine.config.PublishConfig's default
    server_secret_file: str | None = None
    clients_dir: str | None = None

    @classmethod
    def from_config(cls, pc: Any) -> Settings:
        curve = getattr(pc, "curve", None)
        return cls(
            pub=pc.pub, commands=pc.commands, hwm=pc.hwm, snapshot_bars=pc.snapshot_bars,
            heartbeat_s=pc.heartbeat_s, speed=pc.speed, max_cpu_share=pc.max_cpu_share,
            server_secret_file=str(curve.server_secret_file) if curve else None,
            clients_dir=str(curve.clients_dir) if curve else None,
        )


class ZmqBridge:
    """Event sink + publisher thread + snapshot/command service for one engine.

    Args:
        engine: the ``engine.bootstrap.Engine`` to publish (config, store, features, bus,
            accounts, strategies, handlers).
        settings: overrides ``engine.config.publish``.
    """

    def __init__(self, engine: Any, settings: Settings | None = None, *,
                 context: zmq.Context | None = None) -> None:
        cfg = engine.config
        self.s = settings or Settings.from_config(cfg.publish)
        self.engine = engine
        self.mode: str = cfg.mode
        self.store = engine.store
        self.symbol: str = engine.store.symbol
        self.timeframe: str = engine.store.timeframe
        self.run_id = f"{cfg.name}-{os.getpid()}-{time.time_ns() // 1_000_000:x}"
        self.paused = False
        self.finished = False
        self.alive = True
        # events waiting for the next publishing round (engine thread only)
        self._q: deque[Any] = deque()
        # service thread -> engine thread: (identity, id, op, args)
        self._cmds: deque[tuple[bytes, str, str, dict[str, Any]]] = deque()
        self._wake = threading.Event()
        # pacing and publishing rounds (engine thread)
        self._period = 1.0 / self.s.speed if self.s.speed > 0 else 0.0
        self._next_t = 0.0
        live_pace = bool(self._period) or not engine.replay
        every = 1 if live_pace else FLAT_OUT_EVERY  # bars between looks at clock and commands
        self._interval = 0.0 if live_pace else INTERVAL_S
        self._adaptive = not live_pace  # flat out: ticker calls TICK_S of CPU apart (_tick)
        self._tick_t = math.inf  # engine-thread CPU time and bar count at the last tick
        self._tick_n = 0
        # sampled rounds (flat out under a budget, _sampled_round): CPU-time credit and the
        # measured cost of one published bar
        self._credit = 0.0
        self._bar_cost = BAR_COST_S
        # the engine thread's CPU time at the end of the last round (time.thread_time: a busy
        # machine's waits do not count, so the budget is a share of the engine's own work);
        # inf: not read on the engine thread yet
        self._last_round = math.inf
        self._subscribed: set[bytes] = set()  # topic prefixes with a subscriber (XPUB)
        # publisher state: written by the engine thread under _lock, read by snapshots
        self._lock = threading.Lock()
        self.seq = 0
        self.sent = 0
        self.skipped = 0
        self.dropped = 0
        self.bar_seq = -1
        self.bar_ts = 0  # close time (ns) of bar_seq
        # the events snapshots keep, in engine order (one builtin append each; trimmed in bulk,
        # _trim_log: a deque dropping one old event per append cost the engine ~2 % more, its
        # memory cold when reused); the rare kinds also in their own deques, so a flood of
        # orders never pushes them out
        self.log: list[Event] = []
        self._log_base = 0  # events trimmed off the log's front so far
        self._log_keep = RECENT_EVENTS
        self._mark = 0  # the log's end at the last round (counted from the first event kept)
        self.signals: deque[SignalRaised] = deque(maxlen=RECENT)
        self.commands: deque[CommandApplied] = deque(maxlen=RECENT)
        self.alerts: deque[Event] = deque(maxlen=RECENT)
        self._last_beat = 0.0
        self._topics = {k: wire.topic(k, self.symbol) for k in wire.KINDS}
        self._feature_names: list[str] | None = None
        self._kept = self._make_keepers()  # the types snapshots keep -> their deques' appends
        self._keepers = dict(self._kept)  # + the types learned not kept (_keep)
        self._trades_done: dict[str, int] = {}  # closed trades per account at the last round
        self._count_trades()
        self._stop = threading.Event()
        # snapshot requests waiting for the snapshot budget (service thread only; see _serve)
        self._snap_wait: list[tuple[bytes, str, int | None]] = []
        self._snap_at = 0.0  # monotonic time the next snapshot may be computed
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._auth = None
        self._bind()
        # typed subscriptions at the sinks' priority, for nobody subscribed until a round sees
        # a subscriber; bars: the ticker, between chunks of ``every`` bars
        self._watched: bool | None = None  # what the subscriptions are for (see _route)
        self._routed: tuple[bool, bool] | None = None  # (sampling, watched) routed for
        self._name = "zmq-bridge"  # the subscriptions' name on the bus
        self._route(False)
        self._ticker = engine.bus.tick_every(self._tick, every)
        clock = getattr(engine, "clock", None)
        if not engine.replay and hasattr(clock, "set_timer"):
            # live: apply commands while the feed waits between bars (engine.clock timers)
            try:
                clock.set_timer("zmq-bridge-commands", interval_ns=250_000_000)
            except Exception:  # pragma: no cover - a clock without wall timers
                log.debug("no wall-clock timer for the bridge; commands wait for the next bar")
        self._thread = threading.Thread(target=self._serve, name="zmq-bridge", daemon=True)
        self._thread.start()

    # -- sockets ---------------------------------------------------------------------------------
    def _bind(self) -> None:
        s = self.s
        curve = s.server_secret_file is not None
        for what, addr in (("publish.pub", s.pub), ("publish.commands", s.commands)):
            if not is_local(addr) and not curve:
                raise ConfigError(
                    f"{what} binds {addr}, which is not loopback: set publish.curve "
                    "(server_secret_file and clients_dir, made by zmq.auth.create_certificates; "
                    "docs/ui.md) or bind tcp://127.0.0.1"
                )
        if curve:
            self._start_curve()
        self.pub = self._socket(zmq.XPUB)  # a PUB that also tells who subscribes
        self.pub.sndhwm = s.hwm
        # replies from the engine thread to the service thread (which owns the ROUTER)
        inproc = f"inproc://zmq-bridge-replies-{id(self):x}"
        self._reply_pull = self._ctx.socket(zmq.PULL)
        self._reply_pull.linger = 0
        self._reply_pull.bind(inproc)
        self._reply_push = self._ctx.socket(zmq.PUSH)
        self._reply_push.linger = 0
        self._reply_push.connect(inproc)
        self.router = self._socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        try:
            self.pub_addr = _bind(self.pub, s.pub, "publish.pub")
            self.commands_addr = _bind(self.router, s.commands, "publish.commands")
        except ConfigError:
            self._close_sockets()
            raise

    def _start_curve(self) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        s = self.s
        secret = Path(s.server_secret_file or "")
        clients = Path(s.clients_dir or "")
        if not secret.is_file():
            raise ConfigError(f"publish.curve.server_secret_file {secret} does not exist "
                              "(zmq.auth.create_certificates writes NAME.key_secret)")
        if not clients.is_dir():
            raise ConfigError(f"publish.curve.clients_dir {clients} is not a folder of client "
                              "public certificates (NAME.key files)")
        pub_key, sec_key = zmq.auth.load_certificate(secret)
        if sec_key is None:
            raise ConfigError(f"publish.curve.server_secret_file {secret} holds no secret key")
        self._curve = (pub_key, sec_key)
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))

    def _socket(self, kind: int) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.linger = 0
        if self._auth is not None:
            sock.curve_publickey, sock.curve_secretkey = self._curve
            sock.curve_server = True
        return sock

    def _close_sockets(self) -> None:
        for sock in (getattr(self, "pub", None), getattr(self, "router", None),
                     getattr(self, "_reply_pull", None), getattr(self, "_reply_push", None)):
            if sock is not None:
                sock.close(0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_ctx:
            self._ctx.term()

    # -- engine thread ---------------------------------------------------------------------------
    @property
    def _sampling(self) -> bool:
        """Flat out under a budget: a round publishes the latest bars that fit, their events read
        back from the log (``_sampled_round``); otherwise every bar since the last round, its
        events from the publishing queue (``_queued_round``)."""
        return self._interval > 0 and self.s.max_cpu_share < 1.0

    def _route(self, watched: bool) -> None:
        """Subscribe to what the bridge needs (see the module doc): sampling, or queueing with
        (``watched``) or without a subscriber. Engine thread, between events."""
        bus = self.engine.bus
        sampling = self._sampling
        watched = watched and not sampling  # sampling routes the same either way
        if self._routed is not None:
            bus.unsubscribe(self._name)
        kw: dict[str, Any] = {"priority": PRIORITY_SINK, "name": "zmq-bridge", "owner": self}
        queue = (self._q.append,)
        for cls in wire.EVENT_TYPES.values():
            if cls is BarClosed:
                continue
            # builtins only (no Python frame per event): the snapshot state's deques, then the
            # publishing queue, which a round places on the bars by time. Sampling: the log is
            # what rounds publish and closed trades are the accounts', so only the types
            # neither holds are queued (none in a backtest)
            if cls is _TIMER:
                handlers: tuple[Any, ...] = (self._on_timer,)
            elif sampling:
                kept = self._kept.get(cls, ())
                handlers = kept or (() if cls is TradeClosed else queue)
            else:
                handlers = self._kept.get(cls, ()) + (queue if watched else ())
            for handler in handlers:
                self._name = kw["name"] = bus.subscribe(cls, handler, **kw)
        self._watched = watched
        self._routed = (sampling, watched)

    def _tick(self) -> None:
        """Every ``every`` bars (the bus's ticker, engine thread, after the bar's handlers; the
        bars themselves are read back from the store when published): apply waiting commands
        and, when due, publish a round; pace a replay."""
        if self._cmds:
            self.drain_commands()
        self._trim_log()
        now = time.thread_time()
        if self._adaptive:  # flat out: the next call TICK_S of this thread's CPU from now
            n = self.store.count
            if now > self._tick_t and n > self._tick_n:
                per_bar = (now - self._tick_t) / (n - self._tick_n)
                self._ticker.every = max(16, min(MAX_EVERY, int(TICK_S / per_bar)))
            self._tick_t, self._tick_n = now, n
        dt = now - self._last_round
        if dt < 0:  # the first tick on this thread (its CPU clock is its own)
            self._last_round, dt = now, 0.0
        if dt >= self._interval:
            # at most max_cpu_share of the CPU time the engine thread used since the last round
            share = self.s.max_cpu_share
            self._round(dt * share if self._interval and share < 1.0 else math.inf)
            self._last_round = time.thread_time()
        if self._period:
            self._pace()

    def _on_timer(self, event: Event) -> None:
        """The bridge's timer (live, between bars): commands are applied, and events and the
        heartbeat go out now."""
        if self._cmds:
            self.drain_commands()
        self._trim_log()
        self._round(math.inf)

    def __call__(self, event: Event) -> None:
        """An event handed to the bridge by hand (the bus calls the handlers ``_route`` chose)."""
        if type(event) is _TIMER:
            self._on_timer(event)
            return
        kept = self._keep(event)
        if self._watched or (self._sampling and not kept and type(event) is not TradeClosed):
            self._q.append(event)

    @property
    def _every(self) -> int:
        """Bars between the bridge's looks at the clock and the commands (its ticker's)."""
        return self._ticker.every

    @_every.setter
    def _every(self, bars: int) -> None:
        self._ticker.every = bars
        self._adaptive = False  # chosen: kept as it is

    def set_speed(self, bars_per_s: float) -> None:
        """Change a replay's pace (0 = as fast as possible, publishing under the budget again);
        any thread may call it."""
        self._period = 1.0 / bars_per_s if bars_per_s > 0 else 0.0
        live_pace = bool(self._period) or not self.engine.replay
        self._ticker.every = 1 if live_pace else FLAT_OUT_EVERY
        self._interval = 0.0 if live_pace else INTERVAL_S
        self._adaptive, self._tick_t = not live_pace, math.inf
        self.s.speed = float(bars_per_s)
        self._wake.set()  # a paced wait re-reads the pace

    def idle(self) -> None:
        """Publish what is waiting and the heartbeat; apply commands (engine thread, e.g. a
        finished replay held open for the UI)."""
        if self._cmds:
            self.drain_commands()
        self._round(math.inf, beat=True)

    def _pace(self) -> None:
        now = time.monotonic()
        if self._next_t == 0.0:
            self._next_t = now
        target = self._next_t + self._period
        while now < target and self._period:
            self._wake.wait(target - now)
            self._wake.clear()
            if self._cmds:
                self.drain_commands()
            now = time.monotonic()
        self._next_t = target if now - target < 1.0 else now  # no burst after a long stall

    def drain_commands(self) -> None:
        """Apply the waiting commands (engine thread only: a timer or the loop may call it)."""
        while self._cmds:
            ident, rid, op, args = self._cmds.popleft()
            try:
                ok, error, result = self._apply(op, args)
            except Exception as exc:  # a command must never kill the engine
                log.exception("command %s failed", op)
                ok, error, result = False, f"{type(exc).__name__}: {exc}", None
            last = self.engine.store.count - 1
            if op == "setup":  # a question, not a command: not journaled
                rep = wire.reply(rid, ok, error, result, bar_seq=last, paused=self.paused)
                self._reply_push.send_multipart((ident, b"", wire.encode(rep)))
                continue
            ts = self._last_ts()
            self.engine.bus.publish(CommandApplied(
                ts_event_ns=ts, ts_init_ns=time.time_ns(), request_id=rid, op=op,
                args=_plain(args), ok=ok, error=error or "", source=ident.hex(),
            ))
            self._round(math.inf, beat=True)  # the command event and status go out first
            rep = wire.reply(rid, ok, error, result, bar_seq=last, paused=self.paused)
            self._reply_push.send_multipart((ident, b"", wire.encode(rep)))

    def _last_ts(self) -> int:
        """The last closed bar's close time (ns); 0 before the first."""
        return max(self._close_ts(self.store.count - 1), 0)

    def _apply(self, op: str, args: dict[str, Any]) -> tuple[bool, str | None, Any]:
        if op == "setup":
            return True, None, self._setup(args.get("alarm_id"), args.get("signal"))
        if op in ("pause", "resume"):
            self.paused = op == "pause"
            changed = []
            for name, strat in self.engine.strategies.items():
                if hasattr(strat, "entries_paused"):
                    strat.entries_paused = self.paused
                    changed.append(name)
            return True, None, {"paused": self.paused, "strategies": changed}
        if op in wire.CONFIRM_OPS:  # alert-first: the engine's held entries (engine/confirm.py)
            book = getattr(self.engine, "confirm", None)
            if book is None:
                return False, (f"{op} refused: this engine holds no entries for a tap "
                               "(execution.confirm is none); use buy or sell"), None
            alarm = args["alarm_id"]
            return book.take(alarm) if op == "take" else book.skip(alarm, args.get("reason"))
        if self.mode == "backtest":
            return False, _BACKTEST_REFUSAL.format(op=op), None
        if op == "flatten":
            closed = [n for n in self.engine.strategies if self._close(n, "MANUAL_FLATTEN")]
            return True, None, {"closed": closed}
        name = args["strategy"]
        if name not in self.engine.strategies:
            return False, (f"unknown strategy {name!r}; strategies: "
                           f"{sorted(self.engine.strategies)}"), None
        if op == "close":
            if not self._close(name, "MANUAL_CLOSE"):
                return False, f"strategy {name!r} has no open position", None
            return True, None, {"closed": [name]}
        return self._manual_entry(op, name, args)

    def _close(self, name: str, tag: str) -> bool:
        acct = self.engine.accounts.get(name)
        if acct is None or acct.qty == 0.0:
            return False
        last = self.engine.store.count - 1
        ts = self._last_ts()
        self.engine.bus.publish(SubmitOrder(
            ts_event_ns=ts, ts_init_ns=time.time_ns(), account=name,
            order_id=f"{name}-cmd-{time.monotonic_ns():x}", side="sell" if acct.qty > 0 else "buy",
            type="market", seq=last, qty=math.inf, reduce_only=True, tag=tag,
        ))
        return True

    def _manual_entry(self, op: str, name: str,
                      args: dict[str, Any]) -> tuple[bool, str | None, Any]:
        strat = self.engine.strategies[name]
        side = "long" if op == "buy" else "short"
        if not hasattr(strat, "on_signal_raised"):
            return False, (f"strategy {name!r} is an entry rule that trades by itself; manual "
                           "entries need an exit-plugin strategy"), None
        last = self.engine.store.count - 1
        if last < 0:
            return False, "no bar has closed yet", None
        sig = self._manual_signal(op, side, args, last)
        if isinstance(sig, str):
            return False, sig, None
        acct = self.engine.accounts[name]
        if acct.qty != 0.0 or getattr(strat, "_pending", None) is not None:
            return False, f"strategy {name!r} already has a position or an entry working", None
        paused = getattr(strat, "entries_paused", False)
        try:
            strat.entries_paused = False  # an explicit operator entry goes through a pause
            strat.on_signal_raised(sig)
        finally:
            strat.entries_paused = paused
        if getattr(strat, "_pending", None) is None and acct.qty == 0.0:
            if side not in getattr(strat, "sides", (side,)):
                return False, f"strategy {name!r} does not trade {side} entries", None
            return False, (f"strategy {name!r}: the {side} entry was refused (see the order "
                           "events: OrderCanceled says why)"), None
        return True, None, {"strategy": name, "side": side, "alarm_id": sig.alarm_id,
                            "entry": sig.entry_price, "stop": sig.stop_price,
                            "targets": list(sig.targets)}

    def _manual_signal(self, op: str, side: str, args: dict[str, Any],
                       last: int) -> SignalRaised | str:
        """The setup a manual entry trades: the alarm's (moved to this bar), or one made of
        ``stop`` [+ ``price``, ``target``]; or why not."""
        sig: SignalRaised | None = args.get("signal")
        if sig is not None:
            if sig.side != side:
                return (f"alarm {sig.alarm_id} is a {sig.side} signal; "
                        f"use {'buy' if sig.side == 'long' else 'sell'}")
            return msgspec.structs.replace(sig, seq=last, ts_event_ns=self._last_ts())
        if args.get("stop") is None:
            return f"{op} needs an alarm_id or a stop price"
        close = float(self.engine.store.raw_column("close")[last])
        entry = float(args.get("price") or close)
        stop = float(args["stop"])
        if (side == "long") != (stop < entry):
            return f"stop {stop} is on the wrong side of entry {entry} for a {side}"
        target = args.get("target")
        return SignalRaised(
            ts_event_ns=self._last_ts(), ts_init_ns=time.time_ns(), symbol=self.symbol,
            timeframe=self.timeframe, seq=last, alarm_id=f"manual-{time.time_ns():x}",
            rule="manual", side=side, entry_price=entry, stop_price=stop,  # type: ignore[arg-type]
            atr=abs(entry - stop), targets=(float(target),) if target is not None else (),
        )

    def _setup(self, alarm_id: str | None, sig: SignalRaised | None) -> dict[str, Any]:
        """Trade setups of every strategy for an alarm (or the current bar) + the profile."""
        eng = self.engine
        last = eng.store.count - 1
        seq = sig.seq if sig is not None else last
        out: dict[str, Any] = {"alarm_id": alarm_id, "bar_seq": seq, "strategies": {},
                               "profile": None}
        if seq < 0:
            return out
        out["profile"] = self._profile(seq)
        if sig is None:
            return out
        from engine.exits import TradeSetup

        setup = TradeSetup.from_signal(sig)
        for name, strat in eng.strategies.items():
            plugin, ctx = getattr(strat, "plugin", None), getattr(strat, "ctx", None)
            if plugin is None or ctx is None:
                continue
            plan = plugin.plan(setup, ctx)
            targets = [t.limit_price for t in plan.partials if math.isfinite(t.limit_price)]
            risk = abs(sig.entry_price - plan.stop_price)
            out["strategies"][name] = {
                "side": sig.side, "entry": sig.entry_price, "stop": plan.stop_price,
                "targets": targets,
                "rr": [abs(t - sig.entry_price) / risk if risk > 0 else None for t in targets],
                "max_hold_bars": plan.max_hold_bars,
            }
        return out

    def _profile(self, seq: int) -> dict[str, Any] | None:
        """The volume profile bar ``seq``'s columns summarise, with its GMM curve and LVNs."""
        vp = next((h for h in self.engine.handlers.values() if hasattr(h, "profile_at")), None)
        if vp is None:
            return None
        start, stop = vp.window_at(seq)
        if stop <= start:  # asked before the window has a bar (a front end's early "setup")
            return None
        p = vp.profile_at(seq)
        prof: dict[str, Any] = {
            "prices": p.prices.tolist(), "volumes": p.volumes.tolist(), "poc": p.poc,
            "vah": p.vah, "val": p.val, "hvn": list(p.hvns), "lvn": [], "gmm": None}
        try:
            prof["lvn"] = list(p.lvns())
            prof["gmm"] = {"x": p.prices.tolist(), "density": p.curve().tolist()}
        except Exception as exc:  # a thin window has no mixture
            log.debug("no GMM for the setup at %s: %s", seq, exc)
        return prof

    def run_finished(self, last: BarClosed | None) -> None:
        """The engine finished its run (``Engine.run`` calls it): publish everything left and
        a status saying so."""
        self.drain_commands()
        self.finished = True
        self._round(math.inf, beat=True)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the service thread and close the sockets (the engine's thread, after the run)."""
        if self._stop.is_set():
            return
        self.alive = False
        self._stop.set()
        self._thread.join(timeout)
        self._close_sockets()

    # -- publishing rounds (engine thread) -----------------------------------------------------
    def _round(self, budget_s: float, beat: bool = False) -> None:
        """Publish the bars closed since the last round with their events (engine thread,
        between bars). Bars beyond ``budget_s``, or that nobody subscribes to, are skipped."""
        with self._lock:
            sampling = self._sampling
            limited = budget_s != math.inf
            paid = sampling and limited  # the budget accrues; the whole round is paid from it
            if paid:
                t0 = time.thread_time()
                self._credit = min(self._credit + budget_s, 4 * budget_s)
            if self._routed is None or self._routed[0] != sampling:  # set_speed changed it
                self._route(False)
            self._subscriptions()
            upto = self.store.count - 1
            s = self.bar_seq + 1
            watched = bool(self._subscribed)
            pending = False
            if sampling:
                if watched:
                    s = self._sampled_round(s, upto, limited)
                    pending = s <= upto  # none paid for: they wait for a round that can pay
                    if pending:
                        upto = s - 1
            else:
                s = self._queued_round(s, upto, watched, budget_s)
            if s <= upto:  # skipped: a gap the subscribers see; they take a snapshot
                n = upto - s + 1
                self.seq += n
                self.skipped += n
                self._set_bar(upto)
            if not pending:  # (pending: what a snapshot shows stays at the last bar published)
                self._q.clear()  # the skipped bars' events (kept on arrival)
                self._mark = self._log_base + len(self.log)
                self._count_trades()  # the trades a snapshot shows: those up to this round's
            if not watched and self._watched:  # the last subscriber left
                self._route(False)
            now = time.monotonic()
            if beat or now - self._last_beat >= self.s.heartbeat_s:
                self._publish("status", "status", int(time.time() * 1000), self.status())
                self._last_beat = now
            if paid:
                self._credit -= time.thread_time() - t0

    def _queued_round(self, s: int, upto: int, watched: bool, budget_s: float) -> int:
        """Bars ``s..upto`` in order with the queued events, while ``budget_s`` lasts; returns
        the first bar not published."""
        q = self._q
        if watched and not self._watched:
            # the first subscriber: what happened so far went to the state, not the queue,
            # so the bars up to now are skipped (a gap; a new subscriber takes a snapshot)
            if s <= upto:
                self.seq += upto - s + 1
                self.skipped += upto - s + 1
                self._set_bar(upto)
                s = upto + 1
            self._route(True)
        if not watched:
            return s
        # every queued event is kept already (snapshot state, on arrival); the queue only says
        # what to publish, placed on its bar by time: an event at or before a bar's close goes
        # out with that bar (after its features, before its equity), the rest with the round's
        # last bar
        if s > upto:  # no new bar: between bars (commands, live fills) go out now
            while q:
                self._event(q.popleft())
        else:  # those up to the last published bar's close go before the next bar
            last_ts = self.bar_ts
            while q and q[0].ts_event_ns <= last_ts:
                self._event(q.popleft())
        t0 = time.thread_time()
        limited = budget_s != math.inf
        while s <= upto:
            if limited and time.thread_time() - t0 > budget_s:
                break  # out of budget: the rest is skipped
            self._bar(s)
            if s == upto:
                while q:
                    self._event(q.popleft())
            else:
                ts = self.bar_ts
                while q and q[0].ts_event_ns <= ts:
                    self._event(q.popleft())
            self._publish("equity", "equity", self.bar_ts // 1_000_000,
                          {"bar_seq": s, "equity": self._equity_at(s)})
            s += 1
        return s

    def _sampled_round(self, s: int, upto: int, limited: bool) -> int:
        """Flat out under a budget: the *latest* bars the credit pays for (one at least when
        unlimited: a command's or the run's last round), the bars before them skipped as a
        gap; their events read back from the log (the engine order), their closed trades from
        the accounts. Nothing is queued per event for it: a subscriber costs the engine no more
        per event than nobody. Returns the first bar not published (``s`` when none could be
        paid for: the bars wait, a later round skips the older ones)."""
        q = self._q
        if s > upto:  # no new bar: what came since the last round (commands) goes out now
            for ev in self._since(-1)[0]:
                self._event(ev)
            while q:
                self._event(q.popleft())
            return s
        window = self._window(s, upto, limited)
        if window is None:
            return s  # nothing fits
        w, evs = window
        if w > s:  # the bars before the window: a gap
            n = w - s
            self.seq += n
            self.skipped += n
            self._set_bar(w - 1)
            start = self.bar_ts
            evs = [e for e in evs if e.ts_event_ns > start]
        if q:  # types neither the log nor the accounts hold (none in a backtest)
            evs = sorted(evs + list(q), key=_event_time)
        trades = self._trades_after(self.bar_ts)
        i = j = 0
        last_ts = self.bar_ts  # since the last published bar, before the next one
        while i < len(evs) and evs[i].ts_event_ns <= last_ts:
            self._event(evs[i])
            i += 1
        t0 = time.thread_time()
        for b in range(w, upto + 1):
            self._bar(b)
            ts = self.bar_ts if b < upto else math.inf  # the rest with the last bar
            while i < len(evs) and evs[i].ts_event_ns <= ts:
                self._event(evs[i])
                i += 1
            while j < len(trades) and trades[j].ts_event_ns <= ts:
                self._event(trades[j])
                j += 1
            self._publish("equity", "equity", self.bar_ts // 1_000_000,
                          {"bar_seq": b, "equity": self._equity_at(b)})
        self._bar_cost += 0.25 * ((time.thread_time() - t0) / (upto - w + 1) - self._bar_cost)
        return upto + 1

    def _window(self, s: int, upto: int, limited: bool) -> tuple[int, list[Event]] | None:
        """The first bar a sampled round publishes (the credit pays for the bars from it to
        ``upto``, all of whose events the log holds) and the log's events since the last round
        from the bar before it on; None: not one bar."""
        k = int(self._credit / self._bar_cost) if self._credit > 0 else 0
        if not limited:
            k = max(k, 1)
        w = max(s, upto - k + 1)
        if w > upto:
            return None
        close = self._close_ts
        evs, lost = self._since(close(w - 1) if w > s else -1)
        if lost:  # the log was trimmed since the last round: only bars it holds all of
            oldest = self.log[0].ts_event_ns
            while w <= upto and close(w) <= oldest:
                w += 1
        return (w, evs) if w <= upto else None

    def _since(self, after_ts: int) -> tuple[list[Event], bool]:
        """The log's events since the last round, in engine order, from the first stamped after
        ``after_ts``, and whether some may be gone (trimmed: those older than its oldest).
        Sampling only: a flat-out replay stamps events with bar times, so the log's stamps never
        decrease."""
        log = self.log
        i = self._mark - self._log_base
        lost = i < 0
        i = bisect.bisect_right(log, after_ts, max(i, 0), key=_event_time)
        return log[i:], lost

    def _trim_log(self) -> None:
        """Drop the log's older half once it holds twice ``RECENT_EVENTS`` (engine thread)."""
        log = self.log
        if len(log) > 2 * self._log_keep:
            n = len(log) - self._log_keep
            del log[:n]
            self._log_base += n

    def _trades_after(self, ts: int) -> list[TradeClosed]:
        """The trades the accounts closed after ``ts`` (an exit stamped later), by exit time."""
        out: list[TradeClosed] = []
        for acct in self.engine.accounts.values():
            trades = acct.trades
            i = len(trades)
            while i and trades[i - 1].ts_event_ns > ts:
                i -= 1
            out += trades[i:]
        if len(self.engine.accounts) > 1:
            out.sort(key=_exit_time)
        return out

    def _close_ts(self, seq: int) -> int:
        """Bar ``seq``'s close time (ns); -1 before the first bar."""
        if seq < 0:
            return -1
        return int(self.store.raw_column("ts_open_ns")[seq]) + self.store.tf_ns

    def _event(self, ev: Event) -> None:
        """Publish a queued event (kept for snapshots when it arrived)."""
        name = type(ev).__name__
        if name not in NOT_PUBLISHED:  # (timers are not queued: belt and braces)
            ts = ev.ts_event_ns or self.bar_ts
            self._publish(wire.kind_of(name), name, ts // 1_000_000, ev)

    def _subscriptions(self) -> None:
        """Read XPUB's (un)subscribe frames: with no subscriber nothing is encoded."""
        pub = self.pub
        while pub.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # (no zmq.Again raised every round)
            try:
                frame = self.pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self._subscribed.add(frame[1:])
            elif frame[:1] == b"\x00":
                self._subscribed.discard(frame[1:])

    def _set_bar(self, seq: int) -> None:
        self.bar_seq = seq
        self.bar_ts = self._close_ts(seq)

    def _bar(self, seq: int) -> None:
        """Publish bar ``seq`` (read back from the store) and its feature row."""
        st = self.store
        self._set_bar(seq)
        ts = self.bar_ts
        bar = BarClosed(
            ts_event_ns=ts, ts_init_ns=ts, symbol=self.symbol, timeframe=self.timeframe,
            seq=seq, open=float(st.raw_column("open")[seq]), high=float(st.raw_column("high")[seq]),
            low=float(st.raw_column("low")[seq]), close=float(st.raw_column("close")[seq]),
            volume=float(st.raw_column("volume")[seq]))
        self._publish("bar", "BarClosed", ts // 1_000_000, bar)
        self._publish("features", "features", ts // 1_000_000, self._features_row(seq))

    def _publish(self, kind: str, type_: str, ts_ms: int, data: Any) -> None:
        self.seq += 1
        payload = wire.encode_payload(self.seq, self.run_id, type_, ts_ms, data)
        # the two frames through pyzmq's compiled send: its Python wrapper (send_multipart,
        # Socket.send, the flags' enum arithmetic) cost ~6x the send itself. A PUB socket
        # drops a message whole at the HWM, at its first frame; the rest of it is accepted
        try:
            _send(self.pub, self._topics[kind], _MORE)
        except zmq.Again:
            self.dropped += 1
            return
        _send(self.pub, payload, _NOBLOCK)
        self.sent += 1

    # -- state (publisher thread) ---------------------------------------------------------------
    def _keep(self, ev: Event) -> bool:
        """Snapshot state: the recent events of each kind (closed trades: the accounts').
        Returns whether ``ev``'s type is kept."""
        keepers = self._keepers.get(type(ev))
        if keepers is None:
            kind = wire.kind_of(type(ev).__name__)
            log = self.log.append
            keepers = {"order": (log,), "fill": (log,), "signal": (self.signals.append, log),
                       "command": (self.commands.append, log),
                       "alert": (self.alerts.append, log)}.get(kind, ())
            self._keepers[type(ev)] = keepers
        for keep in keepers:
            keep(ev)
        return bool(keepers)

    def _make_keepers(self) -> dict[type, tuple[Callable[[Any], None], ...]]:
        # builtin appends: the log (engine order) for every kept type, and the rare kinds'
        # own deques; working orders come from the brokers and closed trades from the
        # accounts when a snapshot is asked
        log = self.log.append
        keepers: dict[type, tuple[Callable[[Any], None], ...]] = {
            SignalRaised: (self.signals.append, log), CommandApplied: (self.commands.append, log),
            OrderFilled: (log,), SubmitOrder: (log,), ModifyOrder: (log,), CancelOrder: (log,),
            OrderCanceled: (log,),
        }
        for name, cls in wire.EVENT_TYPES.items():  # any other order or alert type
            kind = wire.kind_of(name)
            if cls not in keepers and kind in ("order", "alert"):
                keepers[cls] = (log,) if kind == "order" else (self.alerts.append, log)
        return keepers

    def _logged(self, kind: str) -> list[Event]:
        """The log's events of one kind (``order``, ``fill``), oldest first (any thread)."""
        return [e for e in list(self.log) if wire.kind_of(type(e).__name__) == kind]

    @property
    def orders(self) -> list[Event]:
        """The recent order events (the log's), oldest first."""
        return self._logged("order")

    @property
    def fills(self) -> list[OrderFilled]:
        """The recent fills (the log's), oldest first."""
        return self._logged("fill")  # type: ignore[return-value]

    def _count_trades(self) -> None:
        self._trades_done = {name: len(a.trades) for name, a in self.engine.accounts.items()}

    def _trades(self) -> list[TradeClosed]:
        """The last ``RECENT`` trades the accounts had closed at the last round, in time order
        (under ``_lock``, any thread: a list's slice is taken whole)."""
        out: list[TradeClosed] = []
        done = self._trades_done
        for name, acct in list(self.engine.accounts.items()):
            n = done.get(name, 0)
            out += acct.trades[max(0, n - RECENT):n]
        out.sort(key=_exit_time)
        return out[-RECENT:]

    def _features_row(self, seq: int) -> dict[str, Any]:
        fs = self.engine.features
        names = self._feature_names
        if names is None:
            names = self._feature_names = fs.names()
        values = {}
        for n in names:
            col = fs.backing(n)
            values[n] = float(col[seq]) if seq < col.shape[0] else math.nan
        return {"bar_seq": seq, "values": values}

    def _features_rows(self, a: int, b: int) -> list[dict[str, Any]]:
        fs = self.engine.features
        cols = {}
        for n in fs.names():
            col = fs.backing(n)[a:b + 1]
            cols[n] = col.tolist() + [math.nan] * (b + 1 - a - col.shape[0])
        return [{"bar_seq": a + i, "values": {n: c[i] for n, c in cols.items()}}
                for i in range(b + 1 - a)]

    def _equity_at(self, seq: int) -> dict[str, float]:
        close = float(self.store.raw_column("close")[seq])
        out = {}
        for name, a in self.engine.accounts.items():
            n = len(a.fill_qty)  # appended last: its length bounds the three lists
            i = bisect.bisect_right(a.fill_seqs, seq, 0, n) - 1
            if i < 0:
                out[name] = a.initial_cash
            else:
                out[name] = a.fill_cash[i] + a.fill_qty[i] * close
        return out

    def _bars(self, a: int, b: int) -> list[dict[str, Any]]:
        st = self.store
        t = st.raw_column("ts_open_ns")[a:b + 1].tolist()
        o, h, lo, c, v = (st.raw_column(k)[a:b + 1].tolist()
                          for k in ("open", "high", "low", "close", "volume"))
        tf = st.tf_ns
        return [{"ts_event_ns": t[i] + tf, "ts_init_ns": t[i] + tf, "symbol": self.symbol,
                 "timeframe": self.timeframe, "seq": a + i, "open": o[i], "high": h[i],
                 "low": lo[i], "close": c[i], "volume": v[i]} for i in range(b + 1 - a)]

    def status(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "symbol": self.symbol, "timeframe": self.timeframe,
            "run": self.run_id, "bar_seq": self.bar_seq,
            "last_bar_ts": self.bar_ts // 1_000_000,
            "paused": self.paused, "alive": self.alive and not self.finished,
            "finished": self.finished, "speed": self.s.speed, "sent": self.sent,
            "skipped": self.skipped, "dropped": self.dropped, "accepts": self.accepts(),
        }

    def accepts(self) -> list[str]:
        ops = ["ping", "snapshot", "setup"]
        if not self.finished:
            ops += ["pause", "resume"]
            if self.mode != "backtest":
                ops += sorted(wire.TRADING_OPS)
            if getattr(self.engine, "confirm", None) is not None:
                ops += sorted(wire.CONFIRM_OPS)  # alert-first: entries wait for take / skip
        return ops

    def snapshot(self, bars: int | None = None) -> tuple[int, dict[str, Any]]:
        """``(seq, snapshot)``: the state after message ``seq`` (any thread)."""
        n = min(int(bars or self.s.snapshot_bars), self.s.snapshot_bars)
        with self._lock:  # the engine thread holds it while it publishes a round
            seq, b, status = self.seq, self.bar_seq, self.status()
            signals, orders, fills, trades = (list(self.signals), self.orders, self.fills,
                                              self._trades())
            commands, alerts = list(self.commands), list(self.alerts)
        a = max(0, b - n + 1)
        have = b >= 0
        first_ts = self._bars(a, a)[0]["ts_event_ns"] if have else 0
        equity = []
        if have:
            for s in range(a, b + 1):
                equity.append({"bar_seq": s, "equity": self._equity_at(s)})
        positions = self._positions()

        def recent(xs: list[Any]) -> list[Any]:
            return [x for x in xs if x.ts_event_ns == 0 or x.ts_event_ns >= first_ts]

        return seq, {
            "run": self.run_id, "mode": self.mode, "symbol": self.symbol,
            "timeframe": self.timeframe,
            "bars": self._bars(a, b) if have else [],
            "features": self._features_rows(a, b) if have else [],
            "signals": recent(signals), "orders": recent(orders),
            "fills": recent(fills), "trades": recent(trades),
            "commands": commands, "alerts": alerts,
            "equity": equity, "status": status, "positions": positions, "setups": {},
        }

    def _positions(self) -> dict[str, Any]:
        """Open positions with their plan: the working exit orders the strategy's broker holds
        (tagged ``*STOP*``: the stop; the others: targets)."""
        positions = {}
        for name, acct in self.engine.accounts.items():
            qty, entry = acct.qty, acct.avg_price
            if qty == 0.0:
                continue
            broker = self.engine.brokers.get(name)
            lister = getattr(broker, "working_orders", None)
            work = [{"order_id": o[0], "side": o[1], "qty": o[2], "price": o[3], "tag": o[4]}
                    for o in _read_while_running(lister)]
            exits = [o for o in work if math.isfinite(o["price"])
                     and (o["side"] == "sell") == (qty > 0)]
            stops = sorted(o["price"] for o in exits if "STOP" in o["tag"].upper())
            targets = sorted(o["price"] for o in exits if "STOP" not in o["tag"].upper())
            setup = getattr(self.engine.strategies.get(name), "_setup", None)
            positions[name] = {
                "side": "long" if qty > 0 else "short", "qty": abs(qty),
                "entry_price": entry, "entry_seq": acct.entry_seq,
                "stop": (stops[-1] if qty > 0 else stops[0]) if stops else math.nan,
                "targets": targets, "alarm_id": getattr(setup, "alarm_id", ""), "orders": work,
            }
        return positions

    # -- the service thread: requests and replies ---------------------------------------------
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._reply_pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                wait = 250
                if self._snap_wait:
                    wait = max(0, min(wait, int((self._snap_at - time.monotonic()) * 1000) + 1))
                ready = dict(poller.poll(wait))
                if self.router in ready:
                    self._requests()
                if self._snap_wait and time.monotonic() >= self._snap_at:
                    self._snapshots()
                if self._reply_pull in ready:
                    while True:
                        try:
                            frames = self._reply_pull.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._send_frames(frames)
        except Exception:  # pragma: no cover - logged; the engine must not die of it
            log.exception("zmq bridge service thread failed")

    def _requests(self) -> None:
        while True:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            ident, body = frames[0], frames[-1]
            rid = "?"
            try:
                req = wire.decode(body)
                rid = req.get("id") if isinstance(req.get("id"), str) else "?"
                rid, op, args = wire.validate_request(req)
                self._request(ident, rid, op, args)
            except wire.WireError as exc:
                self._send_reply(ident, wire.reply(rid, False, str(exc)))

    def _request(self, ident: bytes, rid: str, op: str, args: dict[str, Any]) -> None:
        if op == "ping":
            self._send_reply(ident, wire.reply(rid, True, None, {
                "pong": True, "run": self.run_id, "mode": self.mode, "seq": self.seq,
                "finished": self.finished}))
            return
        if op == "snapshot":
            n = args.get("bars")
            if n is not None and (not isinstance(n, int) or n < 1):
                self._send_reply(ident, wire.reply(rid, False, f"bars must be an int >= 1, "
                                                   f"got {n!r}"))
                return
            self._snap_wait.append((ident, rid, n))
            if time.monotonic() >= self._snap_at:
                self._snapshots()
            return
        alarm = args.get("alarm_id")
        if alarm:
            sig = next((s for s in reversed(self.signals) if s.alarm_id == alarm), None)
            if sig is None:
                self._send_reply(ident, wire.reply(
                    rid, False, f"alarm {alarm!r} is not among the last {len(self.signals)} "
                    "signals"))
                return
            args = {**args, "signal": sig}
        if self.finished:
            if op == "setup":  # the engine is idle: compute here
                self._send_reply(ident, wire.reply(rid, *self._apply(op, args)))
                return
            self._send_reply(ident, wire.reply(rid, False, f"{op} refused: the run has "
                                               "finished; no engine to apply it"))
            return
        self._cmds.append((ident, rid, op, args))
        self._wake.set()

    def _snapshots(self) -> None:
        """Answer the waiting snapshot requests (one snapshot per size asked). A snapshot holds
        the interpreter lock for milliseconds (~10 ms for 2,000 bars), and a subscriber that
        resyncs on every gap would ask for one after every round of a flat-out backtest: so
        while the engine runs flat out, snapshots too stay within ``max_cpu_share`` of the time
        (after one that took t of this thread's CPU, the next waits t * (1/share - 1), at most
        ``SNAPSHOT_WAIT_S``); requests that come in meanwhile wait and share the next one."""
        t0 = time.thread_time()  # this thread's CPU: the interpreter lock it took from the engine
        made: dict[int | None, tuple[int, dict[str, Any]]] = {}
        waiting, self._snap_wait = self._snap_wait, []
        for ident, rid, n in waiting:
            if n not in made:
                made[n] = self.snapshot(n)
            seq, snap = made[n]
            self._send_reply(ident, wire.reply(rid, True, None, None, seq=seq, snapshot=snap))
        took = time.thread_time() - t0
        share = self.s.max_cpu_share
        flat_out = self._interval > 0 and not self.finished
        pause = 0.0
        if flat_out and share < 1:
            pause = min(took * (1 / share - 1), SNAPSHOT_WAIT_S) if share > 0 else SNAPSHOT_WAIT_S
        self._snap_at = time.monotonic() + pause

    def _send_reply(self, ident: bytes, rep: dict[str, Any]) -> None:
        self._send_frames((ident, b"", wire.encode(rep)))

    def _send_frames(self, frames: Any) -> None:
        try:
            self.router.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away
            log.debug("reply not sent: %s", exc)


_send = zmq.backend.Socket.send  # the compiled send, without the sugar layer's wrapper
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_TIMER = getattr(_events, "TimerFired", None)  # engine.clock's timer event
_BACKTEST_REFUSAL = (
    "{op} refused: this engine runs in backtest mode (a backtest or a replay is not live, so it "
    "takes no trading commands); pause and resume work, trading needs mode paper or live"
)


def _read_while_running(lister: Callable[[], list[Any]] | None) -> list[Any]:
    """A broker's working orders read from the service thread while the engine thread may be
    changing them: a container changed during the copy is read again."""
    if lister is None:
        return []
    for _ in range(5):
        try:
            return list(lister())
        except RuntimeError:  # "changed size during iteration"
            time.sleep(0.001)
    return []


def _exit_time(t: TradeClosed) -> int:
    return t.ts_event_ns


_event_time = _exit_time  # any event's stamp


def _plain(args: dict[str, Any]) -> dict[str, Any]:
    """Command arguments for the journal (an attached signal becomes its alarm id)."""
    out = {}
    for k, v in args.items():
        if k == "signal":
            continue
        out[k] = v if isinstance(v, str | int | float | bool) or v is None else str(v)
    return out


def _bind(sock: zmq.Socket, addr: str, what: str) -> str:
    """Bind; ``tcp://HOST:0`` picks a free port. Returns the address bound."""
    try:
        if addr.startswith("tcp://") and addr.endswith(":0"):
            port = sock.bind_to_random_port(addr[:-2])
            return f"{addr[:-2]}:{port}"
        sock.bind(addr)
        return addr
    except zmq.ZMQError as exc:
        raise ConfigError(f"{what}: cannot bind {addr}: {exc} (another engine or UI on that "
                          "port? pick another address)") from None


Sink = Callable[[Event], None]
