"""The one loop: drive a bar feed through the bus. Same code in backtest, paper and live.

The loop binds the ``BarClosed`` handlers once per chunk of bars and calls them in order for
every bar; the only difference between a replay and a live feed is how the bar gets into the
``BarStore`` (revealed from a preloaded history, or appended). Before each bar it moves the clock
to the bar's close time, which fires the timers due by then (``engine.clock``); a live feed may
yield ``None`` while it waits (an idle tick), on which the loop only fires due timers.

Tickers (``Bus.tick_every``: the ZeroMQ bridge's publishing rounds) run between chunks: a chunk
is at most the smallest ticker's ``every`` bars, so a ticker costs nothing per bar.

A handler that raises is known exactly: the loop's own variable holds the handler it was calling,
so two instances of one class are never confused. The bus's error policy then applies
(``Bus.recover``): backtest re-raises; paper/live disable that handler, publish ``HandlerFailed``,
deliver the bar to the handlers after it, and carry on with the next bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

from engine.bars import BarStore
from engine.bus import Bus
from engine.clock import Clock, SimClock
from engine.events import BarClosed

CHUNK = 8192


def run_loop(
    bars: Iterable[BarClosed | None],
    store: BarStore,
    bus: Bus,
    *,
    replay: bool,
    on_progress: Callable[[int], None] | None = None,
    clock: Clock | None = None,
) -> BarClosed | None:
    """Deliver every bar to the bus; return the last bar delivered (or ``None``).

    Args:
        clock: the engine's clock, advanced to each bar's close before its handlers run (timers
            due by then fire first). ``None``: a private simulated clock with no timers.
    """
    if clock is None:
        clock = SimClock()
        clock.bind(bus.publish)
    sim = clock if isinstance(clock, SimClock) else None
    last: BarClosed | None = None
    n = 0
    it = iter(bars)
    while True:
        handlers = bus.handlers(BarClosed)
        tickers = bus.tickers
        chunk = CHUNK
        for tk in tickers:
            if tk.every < chunk:
                chunk = tk.every
        done = 0
        exhausted = False
        h = None  # the handler being called; None outside the handler calls
        try:
            if replay and sim is not None:  # a backtest: the hot path, nothing else per bar
                done = -1
                bar = last
                # done: how many bars of the chunk were delivered before this one
                for done, bar in enumerate(islice(it, chunk)):
                    t = bar.ts_event_ns
                    if t < sim.due_ns:
                        sim.now = t  # no timer due yet
                    else:
                        sim.advance(t)
                    store.count = bar.seq + 1  # reveal: nothing after this bar is readable
                    for h in handlers:
                        h(bar)
                    h = None
                done += 1
                last = bar
                exhausted = done < chunk
            else:
                for bar in it:
                    if bar is None:  # a live feed waited without a bar: time passed
                        clock.fire_due()
                        continue
                    clock.advance(bar.ts_event_ns)
                    if replay:
                        store.count = bar.seq + 1
                    else:
                        store.append(bar.ts_event_ns - store.tf_ns, bar.open, bar.high, bar.low,
                                     bar.close, bar.volume)
                    last = bar
                    for h in handlers:
                        h(bar)
                    h = None
                    done += 1
                    if done == chunk:
                        break
                else:
                    exhausted = True
        except Exception as exc:
            if h is None:
                raise  # the feed, the store or the clock failed: not a handler's fault
            last = bar  # the bar its handler failed on
            index = next(i for i, x in enumerate(handlers) if x is h)
            # backtest ("raise") re-raises; live ("isolate") disables that handler, delivers the
            # bar to the handlers after it and carries on with the next bar
            bus.recover(handlers, index, last, exc)
            done += 1
        n += done
        if on_progress is not None and done:
            on_progress(n)
        if done:
            for tk in tickers:
                tk.fn()
        if exhausted:
            return last
