"""One account's cash, position, closed trades and bar-level equity.

Fills reach the account through the bus, routed to it alone (``on_order_filled`` subscribed with
``account=name``); it books each one and publishes a ``TradeClosed`` for every closing slice.

Equity per bar is derived, not marked on every bar: ``equity[i] = cash_i + qty_i * close[i]``
where ``cash_i`` and ``qty_i`` are the account's state after bar i. Cash and position only change
on fills, so the account records its state at each fill and ``equity_curve(close)`` evaluates
every bar's mark in one vectorised pass after the run. ``equity_at(price)`` gives the mark at any
moment.

Cash accounting: a buy pays ``qty * price + fee``, a sell receives ``qty * price - fee``; equity is
``cash + position_qty * mark``. No leverage is modelled: sizing as a fraction of equity keeps
notional below equity. Partial exits each produce one ``TradeClosed`` carrying their share of the
entry fee, so trades.csv shows every slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec
import numpy as np

from engine.bus import unheard_types
from engine.events import Event, OrderFilled, TradeClosed


class Account:
    """State of one strategy's account, updated by its fills."""

    __slots__ = (
        "_entry_fees",
        "_publish",
        "_unheard",
        "ambiguous_open",
        "avg_price",
        "cash",
        "entry_seq",
        "entry_ts_ns",
        "fees_paid",
        "fill_cash",
        "fill_qty",
        "fill_seqs",
        "initial_cash",
        "name",
        "qty",
        "symbol",
        "trades",
    )

    def __init__(
        self, name: str, symbol: str, initial_cash: float, publish: Callable[[Event], None]
    ) -> None:
        self.name = name
        self.symbol = symbol
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.qty = 0.0  # signed: > 0 long, < 0 short
        self.avg_price = math.nan
        self.entry_seq = -1
        self.entry_ts_ns = 0
        self.ambiguous_open = False
        self._entry_fees = 0.0
        self.fees_paid = 0.0
        self.trades: list[TradeClosed] = []
        # state after each fill: (bar seq, cash, qty); the last entry per seq is the end-of-bar
        # state used for marking.
        self.fill_seqs: list[int] = []
        self.fill_cash: list[float] = []
        self.fill_qty: list[float] = []
        self._publish = publish
        self._unheard = unheard_types(publish)

    # -- views ---------------------------------------------------------------------------------
    def equity_at(self, price: float) -> float:
        return self.cash + self.qty * price

    @property
    def side_sign(self) -> int:
        return 1 if self.qty > 0 else (-1 if self.qty < 0 else 0)

    def equity_curve(self, close: np.ndarray) -> np.ndarray:
        """Equity marked at every bar close, for bars ``0 .. len(close) - 1``."""
        n = close.shape[0]
        cash, qty = self.state_per_bar(n)
        return cash + qty * close

    def state_per_bar(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(cash, qty) after each of bars ``0 .. n - 1``."""
        cash = np.full(n, self.initial_cash)
        qty = np.zeros(n)
        if self.fill_seqs:
            seqs = np.asarray(self.fill_seqs)
            # for each bar, the last fill at or before it
            pos = np.searchsorted(seqs, np.arange(n), side="right") - 1
            has = pos >= 0
            cash[has] = np.asarray(self.fill_cash)[pos[has]]
            qty[has] = np.asarray(self.fill_qty)[pos[has]]
        return cash, qty

    # -- handlers ------------------------------------------------------------------------------
    def on_order_filled(self, fill: OrderFilled) -> None:
        """Book ``fill`` (one of this account's: the bus routes by account) and publish the
        ``TradeClosed`` of the slice it closed, if any."""
        trade = self.book(fill)
        if trade is not None and TradeClosed not in self._unheard:
            self._publish(trade)

    def book(self, fill: OrderFilled) -> TradeClosed | None:
        """Apply ``fill`` to cash and position; return the trade it closed (not published)."""
        fee = fill.fee
        if fill.side == "buy":
            signed = fill.qty
            self.cash -= signed * fill.price + fee
        else:
            signed = -fill.qty
            self.cash += fill.qty * fill.price - fee
        self.fees_paid += fee
        q = self.qty
        trade = None
        if q == 0.0:  # opening from flat (the common case; _add's first branch)
            self.avg_price = fill.price
            self.entry_seq = fill.seq
            self.entry_ts_ns = fill.ts_event_ns
            self.ambiguous_open = fill.ambiguous
            self.qty = q + signed
            self._entry_fees += fee
        elif (q > 0) == (signed > 0):
            self._add(signed, fill, fee)
        else:  # (abs/min/max spelled out below: builtin calls cost more than the arithmetic)
            size = fill.qty  # == abs(signed)
            aq = q if q > 0 else -q
            closing = aq if aq < size else size  # min(size, aq)
            exit_fee = fill.fee * closing / fill.qty
            trade = self._reduce(closing, fill, exit_fee)
            rest = size - closing
            if rest > 1e-12:  # the fill reversed the position
                self._add(math.copysign(rest, signed), fill, fill.fee - exit_fee)
        if fill.ambiguous and self.qty != 0.0:
            self.ambiguous_open = True  # what is left was shaped by an assumed intrabar order
        self.fill_seqs.append(fill.seq)
        self.fill_cash.append(self.cash)
        self.fill_qty.append(self.qty)
        return trade

    def _add(self, signed: float, fill: OrderFilled, fee: float) -> None:
        q = self.qty
        if q == 0.0:
            self.avg_price = fill.price
            self.entry_seq = fill.seq
            self.entry_ts_ns = fill.ts_event_ns
            self.ambiguous_open = fill.ambiguous
        else:
            self.avg_price = (self.avg_price * abs(q) + fill.price * abs(signed)) / (
                abs(q) + abs(signed)
            )
        self.qty = q + signed
        self._entry_fees += fee

    def _reduce(self, closing: float, fill: OrderFilled, exit_fee: float) -> TradeClosed:
        q = self.qty
        sign = 1.0 if q > 0 else -1.0
        aq = q * sign  # abs(q)
        share = self._entry_fees * closing / aq
        self._entry_fees -= share
        gross = closing * (fill.price - self.avg_price) * sign
        fees = share + exit_fee
        trade = TradeClosed(
            ts_event_ns=fill.ts_event_ns,
            ts_init_ns=fill.ts_init_ns,
            account=self.name,
            symbol=self.symbol,
            side="long" if sign > 0 else "short",
            entry_seq=self.entry_seq,
            entry_ts_ns=self.entry_ts_ns,
            entry_price=self.avg_price,
            exit_seq=fill.seq,
            exit_ts_ns=fill.ts_event_ns,
            exit_price=fill.price,
            qty=closing,
            pnl=gross - fees,
            fees=fees,
            exit_reason=fill.tag,
        )
        if fill.ambiguous or self.ambiguous_open:
            # set after: msgspec builds a struct with 16 keywords ~4x slower than with 15
            trade = msgspec.structs.replace(trade, ambiguous=True)
        new_q = q - sign * closing
        left = new_q if new_q >= 0.0 else -new_q
        self.qty = 0.0 if left <= 1e-12 * (aq if aq > 1.0 else 1.0) else new_q
        if self.qty == 0.0:
            self.avg_price = math.nan
            self._entry_fees = 0.0
            self.ambiguous_open = False
        self.trades.append(trade)
        return trade
