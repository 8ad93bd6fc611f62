"""Alert-first entries (config ``execution.confirm: telegram``): an entry waits for a person's tap.

``ConfirmGate`` wraps one account's broker (``engine.ports.Broker``), like ``engine.risk``'s
``RiskGate`` (the composition root puts it outside the risk gate, so a released entry is still
checked against the limits when it goes). One ``ConfirmBook`` per run holds the entries waiting:

- An entry order (not reduce-only) submitted while a ``SignalRaised`` is being handled is held
  under that signal's alarm id instead of reaching the broker. The book knows the signal because
  it subscribes to ``SignalRaised`` just before the strategies and just after them (the bus is
  synchronous: the strategies' orders arrive in between).
- ``take(alarm_id)`` sends the held entries of that alarm to their brokers;
  ``skip(alarm_id)`` drops them. Both come from the command channel (the ZeroMQ bridge's ``take``
  / ``skip`` ops, sent by the Telegram front end's "Take it" / "Skip" buttons), so the bridge
  journals them (``CommandApplied``, with the chat in its ``reason``).
- An entry not taken within ``execution.confirm_timeout_s`` (wall time: a person taps in wall
  time, whatever the bars' pace) is dropped at the next bar or clock timer.

A dropped entry is published as ``OrderCanceled`` with a reason starting ``confirm:`` (journaled,
alerted), which frees the strategy for the next signal. Entries that are not taken on a signal
(an operator's ``buy``/``sell`` through the bridge, already confirmed by its own tap) and every
exit go straight through. Backtests refuse the mode (nobody can tap): ``engine.config``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.bus import PRIORITY_SIGNALS, PRIORITY_STRATEGY, Bus
from engine.events import (
    BarClosed,
    CancelOrder,
    Event,
    OrderCanceled,
    SignalRaised,
    SubmitOrder,
    TimerFired,
)
from engine.ports import Broker, BrokerGate

logger = logging.getLogger(__name__)

KEEP_DONE = 1_000  # decided alarms remembered, to answer a late or second tap


@dataclass
class Held:
    gate: ConfirmGate
    cmd: SubmitOrder
    deadline: float  # time.monotonic()


Reply = tuple[bool, str | None, Any]  # (ok, error, result) as the bridge answers a command


class ConfirmBook:
    """The entries waiting for a tap, by alarm id, for every gated account of a run."""

    def __init__(self, timeout_s: float, bus: Bus, publish: Callable[[Event], None], *,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._publish = publish
        self._now = now
        self.held: dict[str, list[Held]] = {}
        self.done: dict[str, str] = {}  # alarm id -> "taken" | "skipped" | "expired"
        self.taken = self.skipped = self.expired = 0
        self._signal: SignalRaised | None = None
        self._ts = 0  # the last bar's close (stamps the OrderCanceled of a drop)
        bus.subscribe(SignalRaised, self._signal_in, priority=PRIORITY_STRATEGY - 1,
                      name="confirm")
        bus.subscribe(SignalRaised, self._signal_out, priority=PRIORITY_STRATEGY + 1,
                      name="confirm")
        bus.subscribe(BarClosed, self._on_bar, priority=PRIORITY_SIGNALS - 1, name="confirm")
        bus.subscribe(TimerFired, self._on_timer, priority=PRIORITY_SIGNALS - 1, name="confirm")

    # -- the bus -------------------------------------------------------------------------------
    def _signal_in(self, sig: SignalRaised) -> None:
        self._signal = sig

    def _signal_out(self, sig: SignalRaised) -> None:
        self._signal = None

    def _on_bar(self, bar: BarClosed) -> None:
        self._ts = bar.ts_event_ns
        if self.held:
            self.expire()

    def _on_timer(self, ev: TimerFired) -> None:
        if self.held:
            self.expire()

    # -- holding -------------------------------------------------------------------------------
    def holds(self, gate: ConfirmGate, cmd: SubmitOrder) -> bool:
        """Hold ``cmd`` if it is an entry taken on the signal being handled."""
        sig = self._signal
        if sig is None or cmd.reduce_only:
            return False
        self.held.setdefault(sig.alarm_id, []).append(
            Held(gate, cmd, self._now() + self.timeout_s))
        logger.info("%s: entry %s on alarm %s waits for a tap (up to %g s)", gate.name,
                    cmd.order_id, sig.alarm_id, self.timeout_s)
        return True

    def waiting(self) -> dict[str, list[str]]:
        """Alarm id -> the accounts whose entry waits on it."""
        return {a: [h.gate.name for h in hs] for a, hs in self.held.items()}

    def expire(self) -> None:
        now = self._now()
        for alarm, hs in list(self.held.items()):
            if hs and min(h.deadline for h in hs) <= now:
                del self.held[alarm]
                self._drop(alarm, hs, f"alarm {alarm} not taken within {self.timeout_s:g} s "
                           "(execution.confirm_timeout_s)", "expired")

    # -- commands (engine thread: the bridge applies them there) ------------------------------
    def take(self, alarm_id: str) -> Reply:
        self.expire()
        hs = self.held.pop(alarm_id, None)
        if not hs:
            return False, self._nothing("take", alarm_id), None
        self._remember(alarm_id, "taken")
        self.taken += 1
        sent = []
        for h in hs:
            logger.info("%s: entry %s on alarm %s taken", h.gate.name, h.cmd.order_id, alarm_id)
            h.gate.inner.on_submit_order(h.cmd)
            sent.append(h.gate.name)
        return True, None, {"alarm_id": alarm_id, "entered": sent,
                            "orders": [h.cmd.order_id for h in hs]}

    def skip(self, alarm_id: str, why: str | None = None) -> Reply:
        self.expire()
        hs = self.held.pop(alarm_id, None)
        if not hs:
            return False, self._nothing("skip", alarm_id), None
        self._drop(alarm_id, hs, f"alarm {alarm_id} skipped" + (f" by {why}" if why else ""),
                   "skipped")
        return True, None, {"alarm_id": alarm_id, "dropped": [h.gate.name for h in hs]}

    def _nothing(self, op: str, alarm_id: str) -> str:
        state = self.done.get(alarm_id)
        if state is not None:
            return f"{op} refused: alarm {alarm_id} was already {state}"
        return (f"{op} refused: no entry waits on alarm {alarm_id} (no strategy took that "
                "signal: entries paused, a position open, or a side it does not trade)")

    def _drop(self, alarm: str, hs: list[Held], reason: str, state: str) -> None:
        self._remember(alarm, state)
        if state == "expired":
            self.expired += 1
        else:
            self.skipped += 1
        for h in hs:
            logger.info("%s: entry %s dropped: %s", h.gate.name, h.cmd.order_id, reason)
            self._publish(OrderCanceled(ts_event_ns=self._ts or h.cmd.ts_event_ns,
                                        ts_init_ns=time.time_ns(), account=h.gate.name,
                                        order_id=h.cmd.order_id, reason=f"confirm: {reason}"))

    def _remember(self, alarm: str, state: str) -> None:
        self.done[alarm] = state
        while len(self.done) > KEEP_DONE:
            del self.done[next(iter(self.done))]


class ConfirmGate(BrokerGate):
    """One account's broker behind the confirm book (``engine.ports.Broker`` itself)."""

    def __init__(self, inner: Broker, book: ConfirmBook) -> None:
        super().__init__(inner)
        self.book = book

    def on_submit_order(self, cmd: SubmitOrder) -> None:
        if not self.book.holds(self, cmd):
            self.inner.on_submit_order(cmd)

    def on_cancel_order(self, cmd: CancelOrder) -> None:
        for alarm, hs in list(self.book.held.items()):
            mine = [h for h in hs if h.gate is self and h.cmd.order_id == cmd.order_id]
            if mine:
                rest = [h for h in hs if h not in mine]
                if rest:
                    self.book.held[alarm] = rest
                else:
                    del self.book.held[alarm]
                self.book._drop(alarm, mine, f"alarm {alarm}: canceled before a tap "
                                f"({cmd.reason or 'canceled'})", "skipped")
                return
        self.inner.on_cancel_order(cmd)
