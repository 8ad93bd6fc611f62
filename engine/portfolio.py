"""One account's cash, position, closed trades and bar-level equity.

Cash accounting: a buy pays ``qty * price + fee``, a sell receives ``qty * price - fee``; equity is
``cash + position_qty * mark``. No leverage is modelled: sizing as a fraction of equity keeps
notional below equity. Partial exits each produce one ``TradeClosed`` carrying their share of the
entry fee, so trades.csv shows every slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.events import BarClosed, Event, OrderFilled, TradeClosed


class Account:
    """State of one strategy's account, updated by fills and marked on every bar close."""

    __slots__ = (
        "_entry_fees",
        "_publish",
        "ambiguous_open",
        "avg_price",
        "cash",
        "entry_seq",
        "entry_ts_ns",
        "equity",
        "exposed_bars",
        "fees_paid",
        "initial_cash",
        "last_close",
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
        self.equity: list[float] = []  # one mark per bar seq, at the bar's close
        self.exposed_bars = 0
        self.last_close = math.nan
        self._publish = publish

    # -- views ---------------------------------------------------------------------------------
    def equity_at(self, price: float) -> float:
        return self.cash + self.qty * price

    @property
    def side_sign(self) -> int:
        return 1 if self.qty > 0 else (-1 if self.qty < 0 else 0)

    # -- handlers ------------------------------------------------------------------------------
    def on_bar_closed(self, bar: BarClosed) -> None:
        """Mark to market at the close (priority PORTFOLIO, after the decisions)."""
        q = self.qty
        self.equity.append(self.cash + q * bar.close)
        if q != 0.0:
            self.exposed_bars += 1

    def on_order_filled(self, fill: OrderFilled) -> None:
        if fill.account != self.name:
            return
        signed = fill.qty if fill.side == "buy" else -fill.qty
        if fill.side == "buy":
            self.cash -= fill.qty * fill.price + fill.fee
        else:
            self.cash += fill.qty * fill.price - fill.fee
        self.fees_paid += fill.fee
        q = self.qty
        if q == 0.0 or (q > 0) == (signed > 0):
            self._add(signed, fill, fill.fee)
            return
        closing = min(abs(signed), abs(q))
        exit_fee = fill.fee * closing / fill.qty
        self._reduce(closing, fill, exit_fee)
        rest = abs(signed) - closing
        if rest > 1e-12:  # the fill reversed the position
            self._add(math.copysign(rest, signed), fill, fill.fee - exit_fee)

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

    def _reduce(self, closing: float, fill: OrderFilled, exit_fee: float) -> None:
        q = self.qty
        sign = 1.0 if q > 0 else -1.0
        share = self._entry_fees * closing / abs(q)
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
            ambiguous=fill.ambiguous or self.ambiguous_open,
        )
        new_q = q - sign * closing
        self.qty = 0.0 if abs(new_q) <= 1e-12 * max(1.0, abs(q)) else new_q
        if self.qty == 0.0:
            self.avg_price = math.nan
            self._entry_fees = 0.0
            self.ambiguous_open = False
        self.trades.append(trade)
        self._publish(trade)
