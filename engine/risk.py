"""Risk limits checked before every order, whatever the broker (config ``risk:``).

``RiskGate`` wraps one account's broker (``engine.ports.Broker``) between the commands and it:
the composition root puts one in front of every broker when the config has a ``risk`` section,
so the same limits hold in backtest, paper (simulated fills) and live (the Apex broker). One
``RiskBook`` per run holds what the limits need across accounts (open positions, orders sent in
the last minute, the UTC day's starting equity).

Entries (orders that are not reduce-only) are refused when:

- ``kill_switch`` is on;
- the UTC day's loss (all strategies, realized and open, marked at the last close) reached
  ``max_daily_loss``: no entries until the next UTC day;
- ``max_open_positions`` strategies are already in a position (and this one is flat);
- the position after the entry would be worth more than ``max_position_notional`` at the
  order's price (its limit/trigger, else the last close);
- ``max_orders_per_minute`` orders went out in the last 60 s (by the run's clock).

Exits, partials and stop moves are never refused (refusing a protective order is worse than the
limit it would break) but count towards the orders per minute. A refused order is published as
``OrderCanceled`` with the reason ``risk: ...`` (so the journal and the alerts have it) and logged
at WARNING: never dropped silently.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.events import (
    BarClosed,
    Event,
    ModifyOrder,
    OrderCanceled,
    SubmitOrder,
)
from engine.ports import Broker, BrokerGate

if TYPE_CHECKING:
    from engine.config import RiskConfig
    from engine.portfolio import Account

logger = logging.getLogger(__name__)

DAY_NS = 86_400 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000


class RiskBook:
    """The run-wide state the limits read: every gated account, the orders of the last minute,
    the UTC day and its starting equity."""

    def __init__(self, config: RiskConfig, now_ns: Callable[[], int]) -> None:
        self.config = config
        self.now_ns = now_ns
        self.accounts: dict[str, Account] = {}
        self.sent: deque[int] = deque()
        self.last_close = math.nan
        self.last_seq = -1
        self.day = -1
        self.day_start_equity = 0.0
        self.halted_day = -1
        self.refused = 0

    def on_bar(self, bar: BarClosed) -> None:
        if bar.seq == self.last_seq:
            return  # one gate per account: the first one updates the book
        self.last_seq = bar.seq
        self.last_close = bar.close
        day = bar.ts_event_ns // DAY_NS
        if day != self.day:  # the day's start: the equity at this first close of the day
            self.day = day
            self.day_start_equity = self.equity()

    def equity(self) -> float:
        px = self.last_close
        return sum(a.equity_at(px) if math.isfinite(px) else a.cash for a in self.accounts.values())

    def daily_loss(self) -> float:
        return self.day_start_equity - self.equity() if self.day >= 0 else 0.0

    def note_sent(self) -> None:
        self.sent.append(self.now_ns())

    def orders_last_minute(self) -> int:
        cutoff = self.now_ns() - MINUTE_NS
        while self.sent and self.sent[0] <= cutoff:
            self.sent.popleft()
        return len(self.sent)

    def notional_after(self, cmd: SubmitOrder, acct: Account) -> float:
        """What ``acct``'s position would be worth after ``cmd``, at the order's price (its
        limit or trigger, else the last close); 0 while no price is known."""
        px = cmd.price if math.isfinite(cmd.price) else self.last_close
        if not (math.isfinite(px) and px > 0):
            return 0.0
        qty = cmd.qty if cmd.qty > 0 and math.isfinite(cmd.qty) else (
            cmd.equity_frac * acct.equity_at(px) / px)
        return abs(acct.qty + (qty if cmd.side == "buy" else -qty)) * px

    def refusal(self, cmd: SubmitOrder, acct: Account) -> str | None:
        """Why the entry ``cmd`` of ``acct`` breaks a limit (None when it does not)."""
        c = self.config
        if c.kill_switch:
            return "kill switch on (risk.kill_switch): no new entries"
        if c.max_daily_loss is not None:
            if self.halted_day == self.day:
                return (f"daily loss limit {c.max_daily_loss:g} reached: no new entries until "
                        "the next UTC day")
            loss = self.daily_loss()
            if loss >= c.max_daily_loss:
                self.halted_day = self.day
                return (f"daily loss {loss:.2f} reached the limit {c.max_daily_loss:g} "
                        "(risk.max_daily_loss): no new entries until the next UTC day")
        if c.max_open_positions is not None and acct.qty == 0.0:
            n = sum(1 for a in self.accounts.values() if a.qty != 0.0)
            if n >= c.max_open_positions:
                return (f"{n} positions open, the limit is {c.max_open_positions} "
                        "(risk.max_open_positions)")
        if c.max_position_notional is not None:
            after = self.notional_after(cmd, acct)
            if after > c.max_position_notional:
                return (f"position worth {after:.2f} after this order, the limit is "
                        f"{c.max_position_notional:g} (risk.max_position_notional)")
        if c.max_orders_per_minute is not None:
            n = self.orders_last_minute()
            if n >= c.max_orders_per_minute:
                return (f"{n} orders in the last minute, the limit is {c.max_orders_per_minute} "
                        "(risk.max_orders_per_minute)")
        return None


class RiskGate(BrokerGate):
    """One account's broker behind the risk limits (``engine.ports.Broker`` itself)."""

    def __init__(self, inner: Broker, book: RiskBook, publish: Callable[[Event], None]) -> None:
        super().__init__(inner)
        self.book = book
        self._publish = publish
        self._ts = 0
        book.accounts[self.name] = inner.account

    def on_bar_closed(self, bar: BarClosed) -> None:
        self._ts = bar.ts_event_ns
        self.book.on_bar(bar)
        self.inner.on_bar_closed(bar)

    def on_submit_order(self, cmd: SubmitOrder) -> None:
        if not cmd.reduce_only:
            why = self.book.refusal(cmd, self.account)
            if why is not None:
                self.book.refused += 1
                logger.warning("%s: order %s refused: risk: %s", self.name, cmd.order_id, why)
                self._publish(OrderCanceled(ts_event_ns=self._ts or cmd.ts_event_ns,
                                            ts_init_ns=cmd.ts_init_ns, account=self.name,
                                            order_id=cmd.order_id, reason=f"risk: {why}"))
                return
        self.book.note_sent()
        self.inner.on_submit_order(cmd)

    def on_modify_order(self, cmd: ModifyOrder) -> None:
        self.book.note_sent()
        self.inner.on_modify_order(cmd)
