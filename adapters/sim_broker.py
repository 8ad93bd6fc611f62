"""Simulated broker: fills one account's orders against bars under ``engine.fills``' policy.

Used in backtest and paper mode; implements ``engine.ports.Broker``. The bus routes it the
``SubmitOrder`` / ``CancelOrder`` / ``ModifyOrder`` commands of its account only (subscriptions
keyed by account, ``engine.bootstrap.attach_broker``). On each ``BarClosed`` (first in priority,
before any decision on that bar) it fills the orders that were working before the bar against the
bar's range, publishing ``OrderFilled`` / ``OrderCanceled``.

Every event it publishes is final: whether a bar's fills are ``ambiguous`` (they depended on the
assumed order of the bar's two extremes) is decided before the first of them is published, so the
journal, the bus and the account's trades agree.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import msgspec

from engine.bus import unheard_types
from engine.events import (
    BarClosed,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    SubmitOrder,
)
from engine.fills import (
    FIRST,
    OPEN,
    SECOND,
    Costs,
    IntrabarPolicy,
    MarketFill,
    bar_path,
    crossing,
    size_for_equity_frac,
)
from engine.portfolio import Account
from engine.ports import WorkingOrder

_NEVER_UP = math.inf  # band edges when no order works on that side
_NEVER_DOWN = -math.inf
_LOOK = -math.inf  # ``_up`` while the book changed: the next bar takes the slow path


class _Working:
    """A working order (engine-internal, mutable)."""

    __slots__ = ("active_from", "equity_frac", "is_buy", "order_id", "price", "qty",
                 "reduce_only", "stop_loss", "tag", "take_profit", "tp_frac", "tp_tag", "type",
                 "upward")

    def __init__(self, order_id: str, is_buy: bool, type: str, qty: float, equity_frac: float,
                 price: float, reduce_only: bool, stop_loss: float, take_profit: float, tag: str,
                 active_from: int = OPEN, tp_frac: float = math.nan, tp_tag: str = "") -> None:
        self.order_id = order_id
        self.is_buy = is_buy
        self.type = type
        self.qty = qty
        self.equity_frac = equity_frac
        self.price = price
        self.reduce_only = reduce_only
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.tp_frac = tp_frac  # the take-profit's size as a fraction of the filled size
        self.tp_tag = tp_tag
        self.tag = tag
        self.active_from = active_from  # path point from which it works in the current bar
        # buy stops and sell limits execute when the price rises to them
        self.upward = is_buy == (type == "stop")


class SimBroker:
    """Fills the orders of one account (``engine.ports.Broker``); the composition root wires it
    with ``engine.bootstrap.attach_broker``."""

    def __init__(
        self,
        account: Account,
        publish: Callable[[Event], None],
        costs: Costs,
        policy: IntrabarPolicy = IntrabarPolicy.STOP_FIRST,
        market_fill: MarketFill = MarketFill.NEXT_OPEN,
    ) -> None:
        self.account = account
        self.name = account.name
        self._publish = publish
        self._unheard = unheard_types(publish)  # OrderCanceled nobody hears is not built
        self.costs = costs
        self.policy = policy
        self.market_fill = market_fill
        self._market: list[_Working] = []
        self._resting: list[_Working] = []
        self._bar: BarClosed | None = None
        # the band outside which a bar touches some resting order: the lowest trigger of the
        # orders that execute upward, the highest of those that execute downward. While the
        # book has changed (``_dirty``: a new order, market orders waiting) ``_up`` is ``_LOOK``,
        # so ``on_bar_closed`` costs one comparison on the bars that need nothing.
        self._up = _NEVER_UP
        self._down = _NEVER_DOWN
        self._dirty = False  # _market or _resting changed since the band was computed

    # -- commands ------------------------------------------------------------------------------
    def on_submit_order(self, cmd: SubmitOrder) -> None:
        w = _Working(
            cmd.order_id, cmd.side == "buy", cmd.type, cmd.qty, cmd.equity_frac, cmd.price,
            cmd.reduce_only, cmd.stop_loss, cmd.take_profit, cmd.tag, OPEN,
            cmd.take_profit_frac, cmd.take_profit_tag,
        )
        if cmd.type == "market":
            if self.market_fill is MarketFill.CLOSE and self._bar is not None:
                bar = self._bar
                at = len(self._resting)
                f = self._fill(w, self.costs.slipped(bar.close, w.is_buy), bar, taker=True)
                if self.account.qty == 0.0:
                    self._cancel_orphans()
                if f is not None:  # children start working from the next bar
                    self._activate_children(w, 4, f.qty, at)
            else:
                self._market.append(w)
                self._dirty, self._up = True, _LOOK
        else:
            self._resting.append(w)
            self._dirty, self._up = True, _LOOK

    def on_cancel_order(self, cmd: CancelOrder) -> None:
        for book in (self._market, self._resting):
            for w in book:
                if w.order_id == cmd.order_id:
                    book.remove(w)
                    self._dirty, self._up = True, _LOOK
                    self._canceled(w, cmd.reason or "canceled")
                    return
        # A missing order is a state to report, not a crash (it may have just filled).
        self._publish_cancel(cmd.order_id, "not working (already filled or canceled)")

    def on_modify_order(self, cmd: ModifyOrder) -> None:
        for w in self._resting:
            if w.order_id == cmd.order_id:
                w.price = cmd.price
                self._dirty, self._up = True, _LOOK
                if cmd.tag:
                    w.tag = cmd.tag
                return
        self._publish_cancel(cmd.order_id, "modify: not working")

    def working_orders(self) -> list[WorkingOrder]:
        """Every working order, market orders waiting for the next open first."""
        return [
            WorkingOrder(w.order_id, "buy" if w.is_buy else "sell", w.qty, w.price, w.tag)
            for w in (*self._market, *self._resting)
        ]

    # -- the bar -------------------------------------------------------------------------------
    def on_bar_closed(self, bar: BarClosed) -> None:
        self._bar = bar
        # Fast path: most bars touch no working order's price and find no market order waiting
        # (a changed book sets ``_up`` to ``_LOOK``, which every bar reaches).
        if bar.high >= self._up or bar.low <= self._down:
            self._on_bar(bar)

    def _on_bar(self, bar: BarClosed) -> None:
        if self._market:
            acct = self.account
            slip = self.costs.slippage != 0.0
            for w in self._market:
                at = len(self._resting)
                f = self._fill(w, self.costs.slipped(bar.open, w.is_buy) if slip else bar.open,
                               bar, taker=True)
                if acct.qty == 0.0:
                    self._cancel_orphans()
                if f is not None:
                    self._activate_children(w, OPEN, f.qty, at)
            self._market.clear()
        if self._dirty:
            self._band()
        if self._resting and (bar.high >= self._up or bar.low <= self._down):
            self._process_resting(bar)

    def _band(self) -> None:
        up, down = _NEVER_UP, _NEVER_DOWN
        for w in self._resting:
            p = w.price
            if w.upward:
                if p < up:
                    up = p
            elif p > down:
                down = p
        self._up, self._down = up, down
        self._dirty = False

    def _process_resting(self, bar: BarClosed) -> None:
        self._dirty, self._up = True, _LOOK
        brackets = False
        for w in self._resting:  # everything resting before this bar works from its open
            w.active_from = OPEN
            if not w.reduce_only and (math.isfinite(w.stop_loss) or math.isfinite(w.take_profit)):
                brackets = True
        path = bar_path(bar.open, bar.high, bar.low, bar.close, self.policy,
                        self.account.side_sign)
        # Orders executing at both extremes of one bar depend on the policy's assumed order:
        # every fill of that bar is flagged ambiguous. Decided before anything is published.
        ambiguous = (brackets or len(self._resting) > 1) and self._ambiguous(bar, path, brackets)
        self._walk(bar, path, ambiguous)

    def _ambiguous(self, bar: BarClosed, path: tuple[float, float, float, float],
                   brackets: bool) -> bool:
        """Whether orders of this bar execute at both extremes of its path.

        Without brackets to activate in the bar the book only shrinks, so the points are those of
        the orders resting now; otherwise the bar is walked once on a copy with nothing published.
        """
        if not brackets:
            seen = set()
            for w in self._resting:
                hit = crossing(w.is_buy, w.type == "stop", w.price, path, OPEN)
                if hit is not None:
                    seen.add(hit[0])
            return FIRST in seen and SECOND in seen
        saved_acct = {k: copy.copy(getattr(self.account, k)) for k in Account.__slots__
                      if k != "_unheard"}  # the bus's live set, not state to restore
        saved_book = [copy.copy(w) for w in self._resting]
        publish = self._publish
        acct = self.account

        def quietly(ev: Event) -> None:  # book fills, publish nothing
            if type(ev) is OrderFilled:
                acct.book(ev)

        self._publish = quietly
        try:
            return self._walk(bar, path, False)
        finally:
            self._publish = publish
            self._resting = saved_book
            self._dirty, self._up = True, _LOOK
            for k, v in saved_acct.items():
                setattr(acct, k, v)

    def _walk(self, bar: BarClosed, path: tuple[float, float, float, float],
              ambiguous: bool) -> bool:
        """Fill the resting orders the bar reaches, in path order; return whether orders
        executed at both extremes."""
        acct = self.account
        slip = self.costs.slippage != 0.0
        seen: set[int] = set()
        while self._resting:
            best: tuple[int, int, float, bool] | None = None
            for k, w in enumerate(self._resting):
                hit = crossing(w.is_buy, w.type == "stop", w.price, path, w.active_from)
                if hit is not None:
                    seen.add(hit[0])
                    if best is None or hit[0] < best[0]:
                        best = (hit[0], k, hit[1], hit[2])
            if best is None:
                break
            point, k, price, is_gap = best
            w = self._resting.pop(k)
            if w.reduce_only:
                q = acct.qty
                if not ((q > 0 and not w.is_buy) or (q < 0 and w.is_buy)):  # nothing to reduce
                    self._canceled(w, "reduce-only order with no position to reduce")
                    continue
            is_stop = w.type == "stop"
            px = self.costs.slipped(price, w.is_buy) if is_stop and slip else price
            at = len(self._resting)
            f = self._fill(w, px, bar, taker=is_stop, gap=is_gap and point == OPEN,
                           ambiguous=ambiguous)
            if f is not None:
                self._activate_children(w, point, f.qty, at)
            if acct.qty == 0.0:
                self._cancel_orphans()
        return FIRST in seen and SECOND in seen

    def close_at_end(self, bar: BarClosed, tag: str) -> None:
        """Close the position at ``bar.close`` (end of data) and cancel every working order."""
        acct = self.account
        for w in self._market:
            self._canceled(w, tag)
        self._market.clear()
        if acct.qty != 0.0:
            w = _Working(f"{self.name}-{tag.lower()}", acct.qty < 0, "market", abs(acct.qty),
                         0.0, math.nan, True, math.nan, math.nan, tag)
            self._fill(w, self.costs.slipped(bar.close, w.is_buy), bar, taker=True)
        for w in self._resting:
            self._canceled(w, tag)
        self._resting.clear()
        self._dirty, self._up = True, _LOOK

    # -- helpers -------------------------------------------------------------------------------
    def _fill(
        self, w: _Working, price: float, bar: BarClosed, *, taker: bool, gap: bool = False,
        ambiguous: bool = False,
    ) -> OrderFilled | None:
        acct = self.account
        fee_rate = self.costs.taker_fee if taker else self.costs.maker_fee
        qty = w.qty
        if w.equity_frac > 0.0:
            qty = size_for_equity_frac(acct.cash + acct.qty * price, w.equity_frac, price,
                                       fee_rate)
        if w.reduce_only:
            q = acct.qty
            if not ((q > 0.0 and not w.is_buy) or (q < 0.0 and w.is_buy)):
                self._canceled(w, "reduce-only order with no position to reduce")
                return None
            if q < 0.0:
                q = -q
            if q < qty:
                qty = q
        if not qty > 0.0 or not math.isfinite(qty):
            self._canceled(w, f"size resolved to {qty} (equity {acct.equity_at(price):.2f})")
            return None
        fill = OrderFilled(
            ts_event_ns=bar.ts_event_ns,
            ts_init_ns=bar.ts_init_ns,
            account=self.name,
            order_id=w.order_id,
            side="buy" if w.is_buy else "sell",
            qty=qty,
            price=price,
            fee=qty * price * fee_rate,
            liquidity="taker" if taker else "maker",
            seq=bar.seq,
            tag=w.tag,
        )
        if gap or ambiguous:  # rare: not passed above (a default passed by keyword costs)
            fill = msgspec.structs.replace(fill, gap=gap, ambiguous=ambiguous)
        self._publish(fill)
        return fill

    def _activate_children(self, parent: _Working, point: int, filled: float, at: int) -> None:
        """Start the attached stop-loss / take-profit of a filled entry (one cancels the other:
        both are reduce-only, so the position closing cancels the other).

        They work from the fill (path point ``point``) and go in the book at ``at``, where it
        stood before the fill was published: ahead of anything the fill's handlers placed (an
        exit runner's further partials), as if placed the moment the entry filled. The stop
        covers the whole position; the target ``parent.tp_frac`` of the ``filled`` size (NaN:
        the whole position)."""
        if parent.reduce_only:
            return
        isfinite = math.isfinite
        kids = []
        if isfinite(parent.stop_loss):
            kids.append(_Working(
                f"{parent.order_id}-stop_loss", not parent.is_buy, "stop", math.inf, 0.0,
                parent.stop_loss, True, math.nan, math.nan, "STOP_LOSS", point))
        if isfinite(parent.take_profit):
            qty = parent.tp_frac * filled if isfinite(parent.tp_frac) else math.inf
            kids.append(_Working(
                f"{parent.order_id}-take_profit", not parent.is_buy, "limit", qty, 0.0,
                parent.take_profit, True, math.nan, math.nan, parent.tp_tag or "TAKE_PROFIT",
                point))
        if kids:
            at = min(at, len(self._resting))
            self._resting[at:at] = kids
            self._dirty, self._up = True, _LOOK

    def _cancel_orphans(self) -> None:
        """Reduce-only orders die with the position they protected."""
        keep = []
        for w in self._resting:
            if w.reduce_only:
                self._publish_cancel(w.order_id, "position closed")
            else:
                keep.append(w)
        self._resting = keep
        self._dirty, self._up = True, _LOOK

    def _canceled(self, w: _Working, reason: str) -> None:
        self._publish_cancel(w.order_id, reason)

    def _publish_cancel(self, order_id: str, reason: str) -> None:
        if OrderCanceled in self._unheard:  # no handler and no sink: nothing to tell
            return
        bar = self._bar
        ts = bar.ts_event_ns if bar is not None else 0
        self._publish(
            OrderCanceled(
                ts_event_ns=ts, ts_init_ns=ts, account=self.name, order_id=order_id, reason=reason
            )
        )

