"""The one loop: drive a bar feed through the bus. Same code in backtest, paper and live.

The loop binds the ``BarClosed`` handlers once and calls them in order for every bar; the only
difference between a replay and a live feed is how the bar gets into the ``BarStore`` (revealed
from a preloaded history, or appended).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.bars import BarStore
from engine.bus import Bus
from engine.events import BarClosed

CHUNK = 8192


def run_loop(
    bars: Iterable[BarClosed],
    store: BarStore,
    bus: Bus,
    *,
    replay: bool,
    on_progress: Callable[[int], None] | None = None,
) -> BarClosed | None:
    """Deliver every bar to the bus; return the last bar delivered (or ``None``)."""
    handlers = bus.handlers(BarClosed)
    last: BarClosed | None = None
    n = 0
    it = iter(bars)
    while True:
        done = 0
        exhausted = False
        try:
            for bar in it:
                if replay:
                    store.count = bar.seq + 1  # reveal: nothing after this bar is readable
                else:
                    store.append(
                        bar.ts_event_ns - store.tf_ns, bar.open, bar.high, bar.low, bar.close,
                        bar.volume,
                    )
                last = bar
                for h in handlers:
                    h(bar)
                done += 1
                if done == CHUNK:
                    break
            else:
                exhausted = True
        except Exception as exc:
            if last is None:
                raise
            # Raises in backtest; live ("isolate") disables the handler and carries on with
            # the next bar (the failing bar is not re-delivered to the others).
            bus.handler_failed(BarClosed, _failed_index(handlers, exc), last, exc)
            handlers = bus.handlers(BarClosed)
        n += done
        if on_progress is not None and done:
            on_progress(n)
        if exhausted:
            return last


def _failed_index(handlers: tuple[Callable[..., None], ...], exc: BaseException) -> int:
    """Which handler raised, found from the traceback (keeps the hot loop free of bookkeeping)."""
    tb = exc.__traceback__
    codes = [getattr(getattr(h, "__func__", h), "__code__", None) for h in handlers]
    while tb is not None:
        code = tb.tb_frame.f_code
        if code in codes:
            return codes.index(code)
        tb = tb.tb_next
    return 0
