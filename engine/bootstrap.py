"""Composition root: the one place that decides the mode and wires the engine together.

| mode     | clock  | bar feed             | broker          |
|----------|--------|----------------------|-----------------|
| backtest | sim    | ``csv`` (replay)     | ``sim``         |
| paper    | wall   | ``apex`` market data | ``sim``         |
| live     | wall   | ``apex`` market data | ``apex`` orders |

Feeds, brokers, feature handlers and strategies are found by name through entry points
(``engine.registry``), so ``engine/`` imports none of the layers above it, and paper/live slot in
by adding adapters, not by touching the loop. No handler or plugin is ever told the mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bars import BarStore
from engine.bus import (
    PRIORITY_BROKER,
    PRIORITY_FEATURES,
    PRIORITY_PORTFOLIO,
    PRIORITY_SIGNALS,
    PRIORITY_STRATEGY,
    Bus,
)
from engine.clock import Clock, SimClock, WallClock
from engine.config import FeatureConfig, RunConfig, StrategyConfig, validate_params
from engine.confirm import ConfirmBook, ConfirmGate
from engine.errors import ConfigError, PluginLoadError
from engine.events import (
    BarClosed,
    CancelOrder,
    EquityMarked,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    Reconciled,
    SignalRaised,
    SubmitOrder,
    TimerFired,
)
from engine.exits import ExitContext, ExitRunner, check_exit_contract
from engine.features import AnyFeature, FeatureStore, FeatureView
from engine.fills import Costs
from engine.journal import Journal
from engine.loop import run_loop
from engine.portfolio import Account
from engine.ports import BarFeed, Broker, BrokerFactory, FeatureHandler
from engine.registry import (
    BROKERS,
    ENTRY_RULES,
    EXIT_STRATEGIES,
    FEATURE_HANDLERS,
    FEEDS,
    SINKS,
    Registry,
)
from engine.risk import RiskBook, RiskGate
from engine.strategy import Strategy, StrategyContext

logger = logging.getLogger(__name__)

# after every strategy and account on the bar, before the sinks
PRIORITY_AFTER_BAR = PRIORITY_PORTFOLIO + 100

_MODES = {
    # mode: (clock, feed, broker, bus error policy)
    "backtest": ("sim", "csv", "sim", "raise"),
    "paper": ("wall", "apex", "sim", "isolate"),
    "live": ("wall", "apex", "apex", "isolate"),
}


@dataclass
class Registries:
    """The registries the composition root draws from (tests pass in-memory ones)."""

    feeds: Registry = field(default_factory=lambda: Registry.installed(FEEDS))
    brokers: Registry = field(default_factory=lambda: Registry.installed(BROKERS))
    features: Registry = field(default_factory=lambda: Registry.installed(FEATURE_HANDLERS))
    strategies: Registry = field(default_factory=lambda: Registry.installed(ENTRY_RULES))
    exits: Registry = field(default_factory=lambda: Registry.installed(EXIT_STRATEGIES))
    sinks: Registry = field(default_factory=lambda: Registry.installed(SINKS))


@dataclass
class Engine:
    config: RunConfig
    feed: BarFeed
    store: BarStore
    features: FeatureStore
    bus: Bus
    clock: Clock  # the one clock: simulated in a replay, wall time live (engine.clock)
    accounts: dict[str, Account]
    brokers: dict[str, Broker]
    strategies: dict[str, Strategy]
    handlers: dict[str, FeatureHandler]
    replay: bool
    finish: Callable[[BarClosed], None]
    sinks: list[Any] = field(default_factory=list)  # closed by close(): the ZeroMQ bridge
    confirm: ConfirmBook | None = None  # alert-first: entries held for a tap (engine/confirm.py)

    def run(self, on_progress: Callable[[int], None] | None = None) -> BarClosed | None:
        bind_clock = getattr(self.feed, "bind_clock", None)
        if bind_clock is not None:  # a live feed waits no longer than the next timer
            bind_clock(self.clock)
        last = run_loop(iter(self.feed), self.store, self.bus, replay=self.replay,
                        on_progress=on_progress, clock=self.clock)
        if last is not None:
            self.finish(last)
        for sink in self.sinks:  # e.g. the ZeroMQ bridge: publish the end, say it finished
            sink.run_finished(last)
        return last

    def close(self) -> None:
        """Release what the sinks hold (the ZeroMQ bridge's sockets and thread)."""
        for sink in self.sinks:
            sink.close()


def strategy_class(reg: Registries, kind: str, name: str) -> Any:
    """The class of a configured strategy: an exit plugin (traded on the shared signals) or an
    entry rule that trades by itself.

    Raises:
        PluginLoadError: ``kind`` is neither; the message suggests the closest names of both
            kinds and lists what is installed (or the plugin's real import error).
    """
    if kind in reg.exits.names() and kind in reg.strategies.names():
        raise PluginLoadError(
            f"strategies[{name}]: kind {kind!r} is installed twice, as the exit strategy "
            f"{reg.exits.origin(kind)} and as the entry rule {reg.strategies.origin(kind)}; "
            "uninstall one of them (pip uninstall DISTRIBUTION)"
        )
    if kind in reg.exits.names():
        return reg.exits.load(kind)
    if kind in reg.strategies.names():
        return reg.strategies.load(kind)
    from difflib import get_close_matches

    exits, rules = reg.exits.names(), reg.strategies.names()
    hint = get_close_matches(kind, exits + rules, n=3)
    raise PluginLoadError(
        f"strategies[{name}]: kind {kind!r} is not installed"
        + (f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else "")
        + f" Exit strategies: {exits}; entry rules: {rules}"
        " (`tradebot strategies list` shows them; a plugin added to setup.cfg needs"
        " `pip install -e .` again)"
    )


def collect_features(config: RunConfig, reg: Registries) -> list[FeatureConfig]:
    """Configured features plus those the signal rule and strategies require, by id.

    A requirement (``required_features(params)``, entry rules and exit plugins alike) is a
    ``FeatureConfig`` (exactly this id, kind and params) or an ``AnyFeature`` (some feature of a
    kind, whatever its params: added under its id with default params only if none is set up).
    """
    feats: dict[str, FeatureConfig] = {f.id: f for f in config.features}
    anys: list[tuple[str, AnyFeature]] = []
    wanted: list[tuple[str, Any, dict[str, Any], str]] = []
    if config.signals is not None:
        wanted.append(("signals", reg.strategies.load(config.signals.kind), config.signals.params,
                       ""))
    for s in config.strategies:
        cls = strategy_class(reg, s.kind, s.name)
        wanted.append((f"strategies[{s.name}]", cls, s.params,
                       s.kind if s.kind in reg.exits.names() else ""))
    for where, cls, raw, exit_kind in wanted:
        req = getattr(cls, "required_features", None)
        if req is None:
            continue
        if exit_kind:
            check_exit_contract(exit_kind, cls)  # an exit plugin: its API version first
        params = validate_params(cls.Params, raw, where)
        for f in req(params):
            if isinstance(f, AnyFeature):
                anys.append((where, f))
                continue
            have = feats.get(f.id)
            if have is None:
                feats[f.id] = f
            elif (have.kind, have.params) != (f.kind, f.params):
                raise ConfigError(
                    f"feature id {f.id!r} is configured as {have.kind} {have.params} but "
                    f"{where} needs {f.kind} {f.params}; rename the configured feature"
                )
    for where, a in anys:  # after the exact ones: any feature of the kind will do
        if any(f.kind == a.kind for f in feats.values()):
            continue
        taken = feats.get(a.id)
        if taken is not None:
            raise ConfigError(
                f"{where} needs a {a.kind} feature and would add it as {a.id!r}, but that id is "
                f"configured as {taken.kind}; add a {a.kind} feature under another id"
            )
        feats[a.id] = FeatureConfig(id=a.id, kind=a.kind)
    return list(feats.values())


def build_engine(
    config: RunConfig,
    registries: Registries | None = None,
    *,
    precompute: bool = True,
    feed: BarFeed | None = None,
    journal_path: Path | None = None,
) -> Engine:
    """Wire a runnable engine for ``config``.

    Args:
        precompute: let feature handlers fill whole columns up front when the feed is a replay
            (a backtest speed-up proven equal to the per-bar path by the prefix tests). False
            forces the per-bar path, as live trading runs it.
        feed: use this feed instead of the one the mode names (tests, benchmarks).
        journal_path: where paper/live runs journal (default ``output.dir/journal.sqlite``;
            ``tradebot run`` passes its staged output folder's); ``journal.path`` when
            ``journal.enabled``.
    """
    reg = registries or Registries()
    clock_kind, feed_kind, broker_kind, on_error = _MODES[config.mode]
    if feed is None:
        feed_cls = reg.feeds.load(feed_kind)
        feed = feed_cls.from_config(config.data)
    history = feed.history()
    replay = history is not None
    if history is not None:
        store = BarStore.preloaded(history)
        # simulated time starts at the first bar's open and moves to each bar's close
        clock: Clock = SimClock(int(history.ts_open_ns[0]) if len(history) else 0)
    else:
        from engine.timeframes import timeframe_ns

        store = BarStore(feed.symbol, feed.timeframe, timeframe_ns(feed.timeframe))
        clock = WallClock() if clock_kind == "wall" else SimClock()
    features = FeatureStore(store)
    bus = Bus(on_error=on_error)  # type: ignore[arg-type]
    publish = bus.publish
    clock.bind(publish)  # timers fire as TimerFired through the bus

    # Features first: computed once per bar and shared by every strategy.
    handlers: dict[str, FeatureHandler] = {}
    outputs: dict[str, tuple[str, ...]] = {}
    for f in collect_features(config, reg):
        factory = reg.features.load(f.kind)
        params = validate_params(factory.Params, f.params, f"features[{f.id}]")
        h = factory(f.id, params, store, features)
        handlers[f.id] = h
        outputs[f.id] = tuple(h.outputs)
        if replay and precompute:
            h.precompute()
        else:
            bus.subscribe(BarClosed, h.on_bar_closed, priority=PRIORITY_FEATURES,
                          name=f"feature:{f.id}")

    # paper/live: an earlier journal of this run (a restart after a crash or a stop) is
    # continued, its state rebuilt and reconciled before trading (engine.restore)
    resume = None if replay else _find_resume(config, journal_path)
    broker_cls: BrokerFactory = reg.brokers.load(broker_kind)
    broker_from_config = getattr(broker_cls, "from_config", None)
    if broker_from_config is not None:  # a venue broker (live: apex) needs its client first
        broker_cls = (broker_from_config(config, resume=True) if resume is not None
                      else broker_from_config(config))
    signal_rule = None
    if config.signals is not None:
        rule_cls = reg.strategies.load(config.signals.kind)
        rule_params = validate_params(rule_cls.Params, config.signals.params, "signals")
        sig_ctx = StrategyContext("signals", store.symbol, store, features.view(), None, publish,
                                  config.account.position_size_frac, outputs, handlers,
                                  clock=clock)
        signal_rule = rule_cls(sig_ctx, rule_params)
        bus.subscribe(BarClosed, signal_rule.on_bar_closed, priority=PRIORITY_SIGNALS,
                      name="signals")
    kit = _StrategyKit(config, reg, broker_cls, store, features.view(), handlers, outputs,
                       signal_rule, clock)  # strategies read through the view: bounded by the bar
    workers = _workers(config, replay, store.loaded)
    accounts: dict[str, Account] = {}
    brokers: dict[str, Broker] = {}
    strategies: dict[str, Strategy] = {}
    parallel: _Parallel | None = None
    if workers > 1:
        # the strategies run in worker processes after the shared pass (engine.parallel)
        parallel = _Parallel(kit, workers, bus)
    else:
        kit.wire(config.strategies, bus, accounts, brokers, strategies)
    journal = _open_journal(config, replay, feed, store, handlers, journal_path, resume)
    if journal is not None:
        bus.subscribe_all(journal, name="journal")
        if journal.durable:  # signals and commands on disk before a broker acts on them
            journal.subscribe_early(bus, PRIORITY_BROKER - 100)
    if not replay:  # paper/live: every account's equity at every bar close in the journal
        bus.subscribe(BarClosed, _EquityMarks(accounts, publish), priority=PRIORITY_AFTER_BAR + 1,
                      name="equity-marks")
    if resume is not None and journal is not None:
        _restore(resume, journal, accounts, brokers, strategies, handlers, publish)
        if kit.risk_book is not None:
            from engine.restore import restore_risk_day

            restore_risk_day(kit.risk_book, resume.events)

    def finish(last: BarClosed) -> None:
        if journal is not None:
            journal.flush()
        if parallel is not None:
            accounts.update(parallel.run(feed, store))
            return
        if config.execution.close_at_end:
            kit.close_at_end(brokers, last)
        if journal is not None:
            journal.flush()  # the END_OF_DATA closes too

    engine = Engine(config, feed, store, features, bus, clock, accounts, brokers, strategies,
                    handlers, replay, finish)
    engine.confirm = kit.confirm_book
    if config.publish.enabled:
        # the ZeroMQ bridge (adapters/zmq_bridge.py) by entry point: engine/ imports no adapter
        engine.sinks.append(reg.sinks.load("zmq")(engine))
    return engine


def _journal_path(config: RunConfig, journal_path: Path | None) -> Path:
    return config.journal.path if config.journal.enabled else (
        journal_path or config.output.dir / "journal.sqlite")


def run_id(config: RunConfig) -> str:
    """The run id the journal files events under (a restart continues the same one)."""
    return f"{config.name}-{config.config_hash()}"


@dataclass
class _Resume:
    source: Path  # the journal found
    path: Path  # where this run journals (the source itself, or a copy of it)
    events: list[Any]


def _find_resume(config: RunConfig, journal_path: Path | None) -> _Resume | None:
    """An earlier journal of this run id: at the journal's own path, or where ``tradebot run``
    left it for this output folder (the committed result, a killed run's staging folder, an
    interrupted run's kept folder: ``engine.journal.journal_candidates``). None: a fresh start."""
    from engine.journal import find_previous, journal_candidates, read_events

    path = _journal_path(config, journal_path)
    candidates = [path] if path.is_file() else []
    if not config.journal.enabled:
        candidates += [p for p in journal_candidates(Path(config.output.dir).absolute())
                       if p.absolute() != path.absolute()]
    rid = run_id(config)
    src = find_previous(candidates, rid)
    if src is None:
        return None
    events = list(read_events(src, rid))
    logger.warning("%s: continuing run %s from its journal %s (%d events): state rebuilt, then "
                   "reconciled before trading", config.name, rid, src, len(events))
    return _Resume(src, path, events)


def _open_journal(config: RunConfig, replay: bool, feed: BarFeed, store: BarStore,
                  handlers: dict[str, FeatureHandler], journal_path: Path | None,
                  resume: _Resume | None = None) -> Journal | None:
    """The run's journal: ``journal.path`` when ``journal.enabled``. A live feed (paper/live)
    always keeps one (every bar, signal, order, fill and trade; else at ``journal_path``, else
    ``output.dir/journal.sqlite``), durable (``engine.journal``), after its warm-up history is
    in the store: an unreachable venue stops the start before anything is written. The history
    bars are journaled first, with ``ts_init_ns=0``. A restart (``resume``) continues the
    earlier journal (copied here when it was elsewhere): the store gets its bars back and the
    feed resumes after them."""
    if resume is not None:
        from engine.journal import copy_journal
        from engine.restore import bars_of

        if resume.source.absolute() != resume.path.absolute():
            copy_journal(resume.source, resume.path)
        bars = bars_of(resume.events)
        for b in bars:
            store.append(b.ts_event_ns - store.tf_ns, b.open, b.high, b.low, b.close, b.volume)
        feed_resume = getattr(feed, "resume", None)
        if bars and callable(feed_resume):
            feed_resume(bars)
        else:
            _warm_up(config, feed, store, handlers)
        return Journal(resume.path, run_id(config), include_bars=True, durable=True)
    if not replay:
        _warm_up(config, feed, store, handlers)
    elif not config.journal.enabled:
        return None
    path = _journal_path(config, journal_path)
    journal = Journal(path, run_id(config),
                      include_bars=config.journal.include_bars or not replay, durable=not replay)
    # the history first (what a replay of this run needs), marked ts_init_ns=0: it reached no
    # handler and nothing traded on it
    t, o, h, lo, c, v = (store.column(k).tolist() for k in
                         ("ts_open_ns", "open", "high", "low", "close", "volume"))
    for i in range(len(t) if not replay else 0):
        journal(BarClosed(ts_event_ns=t[i] + store.tf_ns, ts_init_ns=0, symbol=store.symbol,
                          timeframe=store.timeframe, seq=i, open=o[i], high=h[i], low=lo[i],
                          close=c[i], volume=v[i]))
    journal.flush()  # on disk even if the run is stopped before its first bar
    return journal


class _EquityMarks:
    """Paper/live: publish each account's ``EquityMarked`` at every bar close (journaled: what
    ``tradebot status`` reads today's PnL from)."""

    def __init__(self, accounts: dict[str, Account], publish: Callable[[Any], None]) -> None:
        self.accounts = accounts
        self.publish = publish

    def __call__(self, bar: BarClosed) -> None:
        for name, a in self.accounts.items():
            self.publish(EquityMarked(ts_event_ns=bar.ts_event_ns, ts_init_ns=bar.ts_init_ns,
                                      account=name, seq=bar.seq, cash=a.cash, qty=a.qty,
                                      price=bar.close, equity=a.equity_at(bar.close)))


def _restore(resume: _Resume, journal: Journal, accounts: dict[str, Account],
             brokers: dict[str, Broker], strategies: dict[str, Strategy],
             handlers: dict[str, FeatureHandler], publish: Callable[[Any], None]) -> None:
    """Rebuild the state of a restarted run from its journal, then reconcile each broker with
    its venue (``engine.restore``; a venue broker's ``reconcile``), before the first bar."""
    from engine.restore import (
        REPORT,
        restore_account,
        restore_runner,
        working_commands,
        write_report,
    )

    events = resume.events
    last = next((e for e in reversed(events) if type(e) is BarClosed), None)
    if last is not None:  # the features up to the last bar (the exit plans read them)
        # over the last CATCH_UP_BARS bars at most, as a fresh start's warm-up would: a long
        # run's journal holds tens of thousands of bars that no decision reads again
        depth = max((int(getattr(h, "warmup_bars", 0) or 0) for h in handlers.values()),
                    default=0)
        first = max(0, last.seq - max(CATCH_UP_BARS, 3 * depth + WARMUP_MARGIN))
        for h in handlers.values():
            order = getattr(h, "_order", None)  # indicators.bar_order.BarOrder: the next bar
            if order is not None and getattr(order, "next", None) == 0:
                order.next = first
            h.on_bar_closed(last)
    for name, acct in accounts.items():
        restore_account(acct, events)
        strat = strategies.get(name)
        if isinstance(strat, ExitRunner):
            restore_runner(strat, events)
        elif strat is not None and isinstance(getattr(strat, "_n", None), int):
            from engine.restore import order_number

            strat._n = max([strat._n] + [order_number(e.order_id) for e in events  # type: ignore
                                         if type(e) is SubmitOrder and e.account == name])
    report_dir = resume.path.parent
    for name, gated in brokers.items():
        broker = gated
        while "inner" in getattr(broker, "__dict__", {}):  # the broker behind its gates
            broker = broker.__dict__["inner"]
        restore = getattr(broker, "restore", None)
        if callable(restore):  # a venue broker: its orders, then the venue is asked
            restore(events)
            broker.reconcile(str(resume.source), report_dir)  # type: ignore[attr-defined]
            continue
        # a simulated broker (paper): the orders still working are placed again
        inner = broker
        cmds = working_commands(name, events, accounts[name].qty)
        if last is not None and hasattr(inner, "_bar"):
            inner._bar = last
        for cmd in cmds:
            if type(cmd) is SubmitOrder:
                inner.on_submit_order(cmd)
            else:
                inner.on_modify_order(cmd)
        acct = accounts[name]
        rep = Reconciled(
            ts_event_ns=last.ts_event_ns if last is not None else 0, ts_init_ns=time.time_ns(),
            account=name, resumed_from=str(resume.source),
            found=(f"journal: position {acct.qty:+g}, cash {acct.cash:.2f}, "
                   f"{len(acct.trades)} closed trade(s)",),
            actions=(f"placed {sum(type(c) is SubmitOrder for c in cmds)} working order(s) "
                     "again on the simulated broker",))
        publish(rep)
        write_report(report_dir / REPORT, rep)
    journal.flush()


CATCH_UP_BARS = 2_000  # a restart's feature catch-up: at least this many journaled bars
WARMUP_MARGIN = 20  # bars of history beyond the handlers' longest warm-up (signal look-backs)


def _warm_up(config: RunConfig, feed: BarFeed, store: BarStore,
             handlers: dict[str, FeatureHandler]) -> None:
    """A live feed: put the closed candles the handlers need into the store as history before
    the first bar. Feature handlers catch up on them when the first live bar arrives; no signal
    or strategy sees them, so nothing trades on history."""
    fetch = getattr(feed, "fetch_warmup", None)
    if fetch is None:
        return
    n = config.data.warmup_bars
    if n is None:
        n = max((int(getattr(h, "warmup_bars", 0)) for h in handlers.values()), default=0)
        n = n + WARMUP_MARGIN if n else 0
    bars = fetch(n)
    if bars is None:
        return
    for i, t in enumerate(bars.ts_open_ns.tolist()):
        store.append(t, float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                     float(bars.close[i]), float(bars.volume[i]))
    logger.info("%s %s: %d bars of history from the venue before the first live bar",
                store.symbol, store.timeframe, len(bars))


MIN_BARS_FOR_WORKERS = 10_000  # below this a fork costs more than it saves (auto mode)


def _workers(config: RunConfig, replay: bool, bars: int = MIN_BARS_FOR_WORKERS) -> int:
    """Processes for the strategies: 1 unless it is a replay of ``bars`` bars with several
    strategies, no journal (it records one bus) and fork is available; ``execution.workers`` 0
    means one per core, at most one per strategy, and only from ``MIN_BARS_FOR_WORKERS`` bars
    (a short run does not pay for the fork)."""
    import multiprocessing
    import os

    n = len(config.strategies)
    asked = config.execution.workers
    if (not replay or n < 2 or asked == 1 or config.journal.enabled or config.publish.enabled
            or config.risk is not None  # the limits span accounts: one process
            or "fork" not in multiprocessing.get_all_start_methods()):
        return 1
    if asked == 0:
        if bars < MIN_BARS_FOR_WORKERS:
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        return max(1, min(cores, n))
    return min(asked, n)


@dataclass
class _StrategyKit:
    """Everything needed to wire strategies (broker, account, runner) onto a bus: used once in
    this process, or in each worker process for its share of the strategies."""

    config: RunConfig
    reg: Registries
    broker_cls: BrokerFactory
    store: BarStore
    features: FeatureView  # the read-only face: strategies cannot reach backing()
    handlers: dict[str, FeatureHandler]
    outputs: dict[str, tuple[str, ...]]
    signal_rule: Strategy | None
    clock: Clock
    risk_book: RiskBook | None = None  # shared by the strategies' risk gates (config risk:)
    confirm_book: ConfirmBook | None = None  # alert-first (execution.confirm): held entries

    def wire(self, which: Sequence[StrategyConfig], bus: Bus, accounts: dict[str, Account],
             brokers: dict[str, Broker], strategies: dict[str, Strategy],
             clock: Clock | None = None) -> None:
        """Build and subscribe each strategy's account, broker and strategy (or exit runner).

        Commands and fills are routed by account: each broker, account and runner subscribes
        with ``account=<strategy name>`` and so sees its own only."""
        config, reg = self.config, self.reg
        clock = clock or self.clock
        publish = bus.publish
        costs = Costs.from_bps(config.costs.taker_fee_bps, config.costs.maker_fee_bps,
                               config.costs.slippage_bps)
        for s in which:
            acct = Account(s.name, self.store.symbol, config.account.initial_cash, publish)
            broker = self.broker_cls(acct, publish, costs, config.execution.intrabar,
                                     config.execution.market_fill)
            bind_clock = getattr(broker, "bind_clock", None)
            if callable(bind_clock):  # a venue broker drains its websocket on clock timers
                bind_clock(clock)
                bus.subscribe(TimerFired, broker.on_timer_fired,  # type: ignore[attr-defined]
                              priority=PRIORITY_BROKER, name=f"broker:{s.name}")
            if config.risk is not None:  # the limits in front of every broker (engine/risk.py)
                if self.risk_book is None:
                    self.risk_book = RiskBook(config.risk, clock.now_ns)
                broker = RiskGate(broker, self.risk_book, publish)
            if config.execution.confirm != "none":  # alert-first: outside the limits
                if s.kind not in reg.exits.names():
                    raise ConfigError(
                        f"execution.confirm: {config.execution.confirm} holds the entries taken "
                        f"on the shared signals, but strategy {s.name!r} ({s.kind}) trades by "
                        "itself (no alarm to tap): use an exit strategy on the signals, or "
                        "execution.confirm: none")
                if self.confirm_book is None:
                    self.confirm_book = ConfirmBook(config.execution.confirm_timeout_s, bus,
                                                    publish)
                broker = ConfirmGate(broker, self.confirm_book)
            tag = f"{s.name}"
            attach_broker(bus, broker, name=f"broker:{tag}")
            bus.subscribe(OrderFilled, acct.on_order_filled, priority=PRIORITY_PORTFOLIO,
                          name=f"account:{tag}", account=s.name)
            if s.kind in reg.exits.names():
                strat = _exit_runner(s, reg, acct, self.store, self.features, self.handlers,
                                     self.signal_rule, publish, config.account.position_size_frac)
                bus.subscribe(SignalRaised, strat.on_signal_raised, priority=PRIORITY_STRATEGY,
                              name=f"strategy:{tag}")
                bus.subscribe(OrderFilled, strat.on_order_filled, priority=PRIORITY_PORTFOLIO + 1,
                              name=f"strategy:{tag}", account=s.name)
                bus.subscribe(OrderCanceled, strat.on_order_canceled,
                              priority=PRIORITY_PORTFOLIO + 1, name=f"strategy:{tag}",
                              account=s.name)
            else:
                cls = reg.strategies.load(s.kind)
                params = validate_params(cls.Params, s.params, f"strategies[{s.name}]")
                ctx = StrategyContext(s.name, self.store.symbol, self.store, self.features, acct,
                                      publish, config.account.position_size_frac, self.outputs,
                                      self.handlers, clock=clock)
                strat = cls(ctx, params)
                on_timer = getattr(strat, "on_timer", None)
                if callable(on_timer):  # a strategy using ctx.clock's timers
                    bus.subscribe(TimerFired, on_timer, priority=PRIORITY_STRATEGY,
                                  name=f"strategy:{tag}")
            bus.subscribe(BarClosed, strat.on_bar_closed, priority=PRIORITY_STRATEGY,
                          name=f"strategy:{tag}")
            accounts[s.name] = acct
            brokers[s.name] = broker
            strategies[s.name] = strat

    def close_at_end(self, brokers: dict[str, Broker], last: BarClosed) -> None:
        for b in brokers.values():
            b.close_at_end(last, "END_OF_DATA")


def attach_broker(bus: Bus, broker: Broker, *, name: str | None = None) -> None:
    """Subscribe ``broker`` (``engine.ports.Broker``): every bar first, and the commands of its
    account only (routed by ``broker.name``)."""
    name = name or f"broker:{broker.name}"
    bus.subscribe(BarClosed, broker.on_bar_closed, priority=PRIORITY_BROKER, name=name)
    for ev, fn in ((SubmitOrder, broker.on_submit_order),
                   (CancelOrder, broker.on_cancel_order),
                   (ModifyOrder, broker.on_modify_order)):
        bus.subscribe(ev, fn, priority=PRIORITY_BROKER, name=name, account=broker.name)
    after_bar = getattr(broker, "after_bar", None)
    if callable(after_bar):  # a venue broker books what this bar's orders did at once (live)
        bus.subscribe(BarClosed, after_bar, priority=PRIORITY_AFTER_BAR, name=name)


class _Parallel:
    """The strategies of a replay in worker processes (``engine.parallel``).

    The main process runs the shared part (feature handlers, the signal rule) and records every
    ``SignalRaised``; then each worker, forked with that state, replays the bars through its own
    bus carrying only its strategies' brokers, accounts and runners, re-publishing the recorded
    signals at the signal rule's priority, so every handler sees the same events in the same
    order as in one process.
    """

    def __init__(self, kit: _StrategyKit, workers: int, bus: Bus) -> None:
        self.kit = kit
        self.workers = workers
        self.signals: dict[int, list[SignalRaised]] = {}
        bus.subscribe(SignalRaised, self._record, priority=PRIORITY_STRATEGY, name="record-signals")
        # the strategies are validated (and their plugins imported) now, not in the workers
        kit.wire(kit.config.strategies, Bus(), {}, {}, {}, SimClock())

    def _record(self, sig: SignalRaised) -> None:
        self.signals.setdefault(sig.seq, []).append(sig)

    def run(self, feed: BarFeed, store: BarStore) -> dict[str, Account]:
        from engine.parallel import run_groups

        return run_groups(self.kit, self.workers, self.signals, feed, store)


def _exit_runner(
    s: Any, reg: Registries, acct: Account, store: BarStore, features: FeatureView,
    handlers: dict[str, Any], signal_rule: Any, publish: Callable[[Any], None], frac: float,
) -> ExitRunner:
    if signal_rule is None:
        raise ConfigError(
            f"strategy {s.name!r} is the exit plugin {s.kind!r}: it trades the shared entry "
            "signals, so the config needs a 'signals' section (see docs/config.md)"
        )
    cls = reg.exits.load(s.kind)
    check_exit_contract(s.kind, cls)
    params = validate_params(cls.Params, s.params, f"strategies[{s.name}]")
    for need in getattr(cls, "NEEDS_HANDLERS", ()):
        # fail before the run, not at the first bar that asks
        if not any(callable(getattr(h, need, None)) for h in handlers.values()):
            raise ConfigError(
                f"strategy {s.name!r} (exit plugin {s.kind!r}) reads a feature handler offering "
                f"{need}(), which the config does not set up; for the volume profile add "
                "features: [{id: vp, kind: volume_profile}] (configs/default.yaml has it)"
            )
    ctx = ExitContext(store, features, signal_rule.atr_column, handlers)
    sides = getattr(signal_rule, "sides", ("long", "short"))
    return ExitRunner(s.name, cls(params), acct, ctx, publish, frac, sides)
