"""Run a replay's strategies in worker processes after the shared pass.

Why processes: the strategies of one config share every feature and signal, but their own work
(broker, account, exit plugin on each bar) is pure Python, so threads would queue on the GIL. The
main process computes the shared part once; each worker is forked from it (so it starts with the
bars, the feature columns, the handlers and the recorded signals in memory, nothing copied or
pickled) and replays the bars for its share of the strategies. Only the finished accounts travel
back. Results are identical to a one-process run (``tests/engine/test_parallel.py``).

Used by ``engine.bootstrap`` when ``execution.workers`` allows it; needs the ``fork`` start
method (Linux, macOS with fork available); elsewhere runs stay in one process.
"""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

from engine.bars import BarStore
from engine.bus import PRIORITY_SIGNALS, Bus
from engine.clock import SimClock
from engine.errors import StrategyError
from engine.events import BarClosed, SignalRaised
from engine.loop import run_loop
from engine.portfolio import Account
from engine.ports import BarFeed, Broker


def split(names: list[str], workers: int) -> list[list[str]]:
    """Strategies dealt round-robin into ``workers`` groups (config order kept in each)."""
    groups: list[list[str]] = [[] for _ in range(min(workers, len(names)))]
    for i, n in enumerate(names):
        groups[i % len(groups)].append(n)
    return groups


def _replay_group(kit: Any, names: list[str], signals: dict[int, list[SignalRaised]],
                  feed: BarFeed, store: BarStore) -> dict[str, Account]:
    """One group's strategies over the whole feed, fed the recorded signals (in a worker)."""
    bus = Bus(on_error="raise")
    # this worker's own clock: the strategies' timers fire through this worker's bus
    clock = SimClock(int(store.raw_column("ts_open_ns")[0]) if store.loaded else 0)
    clock.bind(bus.publish)
    accounts: dict[str, Account] = {}
    brokers: dict[str, Broker] = {}
    which = [s for s in kit.config.strategies if s.name in names]
    kit.wire(which, bus, accounts, brokers, {}, clock)
    publish = bus.publish

    def replay_signals(bar: BarClosed) -> None:
        for sig in signals.get(bar.seq, ()):
            publish(sig)

    # the signal rule's place in the order: after brokers and features, before strategies
    bus.subscribe(BarClosed, replay_signals, priority=PRIORITY_SIGNALS, name="signals-replay")
    last = run_loop(iter(feed), store, bus, replay=True, clock=clock)
    if last is not None and kit.config.execution.close_at_end:
        kit.close_at_end(brokers, last)
    for a in accounts.values():
        a._publish = None  # a bound method of this worker's bus: not needed by the results
    return accounts


def _worker(conn: Any, kit: Any, names: list[str], signals: dict[int, list[SignalRaised]],
            feed: BarFeed, store: BarStore) -> None:
    try:
        conn.send(("ok", _replay_group(kit, names, signals, feed, store)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_groups(kit: Any, workers: int, signals: dict[int, list[SignalRaised]], feed: BarFeed,
               store: BarStore) -> dict[str, Account]:
    """Run every configured strategy in ``workers`` forked processes; accounts in config order.

    Raises:
        StrategyError: a worker failed; the message holds its traceback.
    """
    names = [s.name for s in kit.config.strategies]
    ctx = multiprocessing.get_context("fork")
    running = []
    for group in split(names, workers):
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(child, kit, group, signals, feed, store),
                        name=f"tradebot-strategies-{'-'.join(group)}"[:60], daemon=True)
        p.start()
        child.close()
        running.append((group, parent, p))
    found: dict[str, Account] = {}
    failure = None
    for group, conn, p in running:
        try:
            status, payload = conn.recv()
        except EOFError:
            status, payload = "error", f"the worker process exited with code {p.exitcode}"
        p.join()
        if status == "ok":
            found.update(payload)
        elif failure is None:
            failure = f"strategies {group} failed in their worker process:\n{payload}"
    if failure is not None:
        raise StrategyError(failure + "\n(set execution.workers: 1 to run them in one process)")
    store.count = store.loaded
    return {n: found[n] for n in names}
