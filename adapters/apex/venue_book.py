"""The local Apex venue's account: orders, matching against replayed candles, fills, position.

Matching uses the engine's own intrabar policy (``engine.fills``: ``bar_path``, ``crossing``,
``Costs``), with the same conventions as ``adapters.sim_broker.SimBroker`` so that a live run
against the venue can be diffed with a backtest:

- An order works from the first candle that opens at or after its (virtual) placing time. In
  lockstep the clock stands exactly on a candle boundary, so that is the candle now forming.
- ``MARKET``: fills at that candle's open (adverse slippage on top), as a taker; immediately when
  the candle has already opened (lockstep), else when the clock reaches its open.
- ``LIMIT``: resting; fills at its price when the path reaches it (no price improvement on a gap).
- ``STOP_MARKET`` / ``STOP_LIMIT``: trigger at ``triggerPrice`` and fill there (at the open when
  the candle gaps through it), slipped, taker.
- ``TAKE_PROFIT_MARKET`` / ``TAKE_PROFIT_LIMIT``: fill at ``triggerPrice`` like the engine's
  take-profit limit (maker fee, no improvement).
- Attached TP/SL (``isOpenTpslOrder``): become working reduce-only orders when the entry fills,
  from the path point where it filled. Reduce-only orders are canceled when the position is
  flat; a reduce-only fill is capped at the position size.
- Resting orders are matched when a candle closes, walking the modelled path
  ``open -> extreme -> extreme -> close`` (``stop_first`` by default).
- Partial fills (fault ``partial``, :attr:`VenueBook.partial_next`): the next resting order to
  execute fills only half its remaining size (rounded down to the step) there; it stays
  ``OPEN`` / ``UNTRIGGERED`` with ``cumSuccessFillSize`` set and works again from the next
  candle's open for the rest (a stop still beyond its trigger then fills at that open, as a gap).
- Fill records carry two fields the real API does not have (diagnostics for backtest-to-live
  diffs; do not rely on them against the exchange): ``gap`` (a stop or limit filled at the open
  because the candle opened through it) and ``ambiguous`` (orders at both extremes of one candle:
  the result depended on the assumed path order), as the engine's ``OrderFilled`` has them.

One-way (net) position per symbol, USDT wallet, cross margin with the symbol's
``initialMarginRate``; no funding, no liquidation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from engine.fills import FIRST, OPEN, SECOND, Costs, IntrabarPolicy, bar_path, crossing

FINAL = ("FILLED", "CANCELED")
WORKING = ("PENDING", "OPEN", "UNTRIGGERED")
ORDER_TYPES = ("MARKET", "LIMIT", "STOP_MARKET", "STOP_LIMIT", "TAKE_PROFIT_MARKET",
               "TAKE_PROFIT_LIMIT")


class ApexReject(Exception):
    """An error reply in Apex's shape: ``{"code", "msg", "key"}``."""

    def __init__(self, code: int, msg: str, key: str, status: int = 200) -> None:
        super().__init__(msg)
        self.code, self.msg, self.key, self.status = code, msg, key, status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg, "key": self.key}


def reject(msg: str, key: str, code: int = 3) -> ApexReject:
    return ApexReject(code, msg, key)


def fmt(x: float, decimals: int = 8) -> str:
    """A price or size as Apex writes it: a plain decimal string."""
    if not math.isfinite(x):
        return "0"
    s = f"{x:.{decimals}f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


@dataclass(slots=True)
class VenueOrder:
    id: str
    client_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str
    size: float
    price: float
    trigger: float
    reduce_only: bool
    created_ms: int
    active_candle: int  # first candle it works in
    active_point: int = OPEN  # path point from which it works in that candle
    status: str = "PENDING"
    is_position_tpsl: bool = False
    is_open_tpsl: bool = False
    parent_id: str = ""
    form: dict[str, str] = field(default_factory=dict)
    children: list[dict[str, Any]] = field(default_factory=list)  # attached TP/SL, not yet live
    filled_size: float = 0.0
    filled_value: float = 0.0
    filled_fee: float = 0.0
    cancel_reason: str = "UNKNOWN_ORDER_CANCEL_REASON"
    updated_ms: int = 0

    @property
    def is_buy(self) -> bool:
        return self.side == "BUY"

    @property
    def is_stop(self) -> bool:
        return self.type.startswith("STOP")

    @property
    def level(self) -> float:
        """The price at which a resting order executes (limit price or trigger)."""
        return self.price if self.type == "LIMIT" else self.trigger

    def to_apex(self, account_id: str, decimals: int) -> dict[str, Any]:
        f = self.form
        tp = next((c for c in self.children if c["kind"] == "tp"), None)
        sl = next((c for c in self.children if c["kind"] == "sl"), None)
        return {
            "id": self.id, "orderId": self.id, "clientId": self.client_id,
            "clientOrderId": self.client_id, "accountId": account_id, "symbol": self.symbol,
            "side": self.side, "type": self.type, "price": fmt(self.price, decimals),
            "size": fmt(self.size), "limitFee": f.get("limitFee", "0"),
            "triggerPrice": fmt(self.trigger, decimals) if math.isfinite(self.trigger) else "0",
            "triggerPriceType": f.get("triggerPriceType", ""),
            "timeInForce": f.get("timeInForce", "GOOD_TIL_CANCEL"),
            "reduceOnly": self.reduce_only, "isPositionTpsl": self.is_position_tpsl,
            "isOpenTpslOrder": self.is_open_tpsl,
            "isSetOpenTp": tp is not None, "isSetOpenSl": sl is not None,
            "createdAt": self.created_ms, "updatedTime": self.updated_ms or self.created_ms,
            "expiresAt": int(f.get("expiration", "0") or 0), "status": self.status,
            "cancelReason": self.cancel_reason,
            "cumSuccessFillSize": fmt(self.filled_size),
            "cumSuccessFillValue": fmt(self.filled_value, 8),
            "cumSuccessFillFee": fmt(self.filled_fee, 8),
            "openTpParam": _child_param(tp, decimals), "openSlParam": _child_param(sl, decimals),
            "parentOrderId": self.parent_id,
        }


def _child_param(c: dict[str, Any] | None, decimals: int) -> dict[str, Any]:
    if c is None:
        return {}
    return {"clientOrderId": c["client_id"], "side": c["side"], "size": fmt(c["size"]),
            "price": fmt(c["price"], decimals), "triggerPrice": fmt(c["trigger"], decimals)}


class VenueBook:
    """Orders, fills and the position of the venue's one account (one symbol replayed).

    The venue calls :meth:`on_open` / :meth:`on_close` for every replayed candle in order, and
    the order routes while holding the venue's lock.
    """

    def __init__(self, symbol: str, open_ms: np.ndarray, o: np.ndarray, h: np.ndarray,
                 lo: np.ndarray, c: np.ndarray, *, account_id: str, balance: float,
                 taker_fee: float, maker_fee: float, slippage: float, policy: IntrabarPolicy,
                 imr: float, price_decimals: int) -> None:
        self.symbol = symbol
        self.open_ms, self.o, self.h, self.lo, self.c = open_ms, o, h, lo, c
        self.account_id = account_id
        self.initial_balance = balance
        self.costs = Costs(taker_fee, maker_fee, slippage)
        self.policy = policy
        self.imr = imr
        self.decimals = price_decimals
        self.orders: dict[str, VenueOrder] = {}  # every order ever placed, oldest first
        self.working: dict[str, VenueOrder] = {}  # the ones not FILLED/CANCELED
        self.by_client: dict[str, VenueOrder] = {}
        self.fills: list[dict[str, Any]] = []  # oldest first
        self.qty = 0.0  # signed net position
        self.entry = 0.0
        self.realized = 0.0
        self.fees = 0.0
        self.mark = float(o[0]) if len(o) else 0.0
        self.now_ms = 0
        self.opened = 0  # candles whose open has been processed
        self.closed = 0  # candles whose close has been processed
        self._ids = itertools.count(774568067192586606)
        self._fill_ids = itertools.count(1)
        self.updated_ms = 0
        self.changed: list[str] = []  # ids of orders changed since the last account push
        self.partial_next = 0  # fault "partial": resting fills still to split in two
        self.step = 0.0  # the symbol's stepSize (the venue sets it): a part is a multiple

    # -- account views -------------------------------------------------------------------------
    @property
    def wallet(self) -> float:
        return self.initial_balance + self.realized - self.fees

    @property
    def unrealized(self) -> float:
        return (self.mark - self.entry) * self.qty if self.qty else 0.0

    @property
    def equity(self) -> float:
        return self.wallet + self.unrealized

    def _order_margin(self) -> float:
        total = 0.0
        for w in self.working.values():
            if not w.reduce_only:
                px = w.price if w.type == "LIMIT" else (w.trigger if math.isfinite(w.trigger)
                                                        else self.mark)
                total += w.size * (px if px > 0 else self.mark) * self.imr
        return total

    def available(self) -> float:
        return self.equity - abs(self.qty) * self.mark * self.imr - self._order_margin()

    def balance_view(self) -> dict[str, Any]:
        im = abs(self.qty) * self.mark * self.imr
        return {
            "totalEquityValue": fmt(self.equity, 6), "availableBalance": fmt(self.available(), 6),
            "initialMargin": fmt(im, 6), "maintenanceMargin": fmt(im / 2, 6),
            "walletBalance": fmt(self.wallet, 6), "unrealizedPnl": fmt(self.unrealized, 6),
            "realizedPnl": fmt(self.realized, 6),
            "symbolToOraclePrice": {self.symbol: {"oraclePrice": fmt(self.mark, self.decimals)}},
        }

    def positions_view(self) -> list[dict[str, Any]]:
        if self.qty == 0.0:
            return []
        return [{
            "symbol": self.symbol, "side": "LONG" if self.qty > 0 else "SHORT",
            "size": fmt(abs(self.qty)), "entryPrice": fmt(self.entry, 8),
            "customInitialMarginRate": fmt(self.imr), "fundingFee": "0",
            "realizedPnl": fmt(self.realized),
            "updatedTime": self.updated_ms,
        }]

    def wallets_view(self) -> list[dict[str, Any]]:
        return [{"token": "USDT", "balance": fmt(self.wallet, 6), "pendingDepositAmount": "0",
                 "pendingWithdrawAmount": "0", "pendingTransferInAmount": "0",
                 "pendingTransferOutAmount": "0"}]

    def order_view(self, o: VenueOrder) -> dict[str, Any]:
        return o.to_apex(self.account_id, self.decimals)

    def open_orders(self) -> list[dict[str, Any]]:
        return [self.order_view(o) for o in self.working.values()]

    # -- commands ------------------------------------------------------------------------------
    def place(self, form: dict[str, str], *, now_ms: int, active_candle: int,
              min_size: float, step: float) -> VenueOrder:
        """Validate and accept an order (signature already checked). Raises ``ApexReject``."""
        typ, side, size, price, trig = _parse_order(form, min_size, step)
        cid = form.get("clientId", "")
        if not cid:
            raise reject("clientId is missing", "ORDER_CLIENT_ID_MISSING")
        if cid in self.by_client:
            raise reject(f"clientId {cid} was used by order {self.by_client[cid].id}",
                         "ORDER_CLIENT_ID_DUPLICATE")
        reduce_only = form.get("reduceOnly") == "True"
        self._check_funds(form, typ, side, size, price, trig, reduce_only)
        oid = str(next(self._ids))
        o = VenueOrder(oid, cid, self.symbol, side, typ, size, price, trig, reduce_only, now_ms,
                       active_candle, OPEN, "PENDING",
                       is_position_tpsl=form.get("isPositionTpsl") == "True",
                       is_open_tpsl=form.get("isOpenTpslOrder") == "True", form=dict(form))
        if o.is_open_tpsl:
            o.children = _attached(form)
        self.orders[oid] = o
        self.working[oid] = o
        self.changed.append(oid)
        self.by_client[cid] = o
        if typ != "MARKET":
            o.status = "OPEN" if typ == "LIMIT" else "UNTRIGGERED"
        elif active_candle >= len(self.o):
            self._cancel(o, "the replay has no candle left to fill a market order")
        elif active_candle < self.opened:  # its candle is already open (lockstep): fill now
            self._fill_market(o, active_candle)
        return o

    def _check_funds(self, form: dict[str, str], typ: str, side: str, size: float,
                     price: float, trig: float, reduce_only: bool) -> None:
        try:
            limit_fee = Decimal(form.get("limitFee", "0"))
        except InvalidOperation:
            limit_fee = Decimal(0)
        need = Decimal(str(size)) * Decimal(str(price)) * Decimal(str(self.costs.taker_fee))
        if limit_fee < need * Decimal("0.999"):
            raise reject(f"limitFee {limit_fee} is below size x price x takerFeeRate = "
                         f"{need:.6f}", "ORDER_LIMIT_FEE_TOO_LOW")
        ref = self.mark if typ == "MARKET" else (price if typ == "LIMIT" else trig)
        if not reduce_only and size * ref * self.imr > self.available() + 1e-9:
            raise reject(
                f"insufficient balance: margin {size * ref * self.imr:.2f} USDT needed, "
                f"{max(self.available(), 0.0):.2f} available", "ORDER_INSUFFICIENT_BALANCE")
        if reduce_only and not self._reduces(side == "BUY"):
            raise reject("reduce-only order would not reduce the position",
                         "ORDER_REDUCE_ONLY_REJECTED")

    def cancel(self, oid: str, *, by_client: bool = False) -> str:
        o = self.by_client.get(oid) if by_client else self.orders.get(oid)
        if o is None:
            raise reject(f"order {oid} not found", "ORDER_NOT_FOUND")
        if o.status in FINAL:
            raise reject(f"order {oid} is already {o.status}", "ORDER_ALREADY_FINAL")
        self._cancel(o, "USER_CANCELED")
        return o.id

    def cancel_all(self) -> None:
        for o in list(self.working.values()):
            self._cancel(o, "USER_CANCELED")

    # -- the replay ----------------------------------------------------------------------------
    def on_open(self, k: int) -> None:
        self.opened = k + 1
        self.mark = float(self.o[k])
        for o in list(self.working.values()):
            if o.type == "MARKET" and o.status == "PENDING" and o.active_candle <= k:
                self._fill_market(o, k)

    def on_close(self, k: int) -> None:
        self.closed = k + 1
        self._process_resting(k)
        self.mark = float(self.c[k])

    def set_mark(self, price: float) -> None:
        self.mark = price

    # -- matching ------------------------------------------------------------------------------
    def _resting(self, k: int) -> list[VenueOrder]:
        return [o for o in self.working.values()
                if o.status in ("OPEN", "UNTRIGGERED") and o.active_candle <= k]

    def _process_resting(self, k: int) -> None:
        resting = self._resting(k)
        if not resting:
            return
        hi, lo = float(self.h[k]), float(self.lo[k])
        if not any((hi >= w.level) if (w.is_buy == w.is_stop) else (lo <= w.level)
                   for w in resting):
            return  # fast path: nothing reached
        sign = (self.qty > 0) - (self.qty < 0)
        path = bar_path(float(self.o[k]), hi, lo, float(self.c[k]), self.policy, sign)
        seen: set[int] = set()  # path points where some order would execute
        first_fill = len(self.fills)
        while (best := self._next_hit(k, path, seen)) is not None:
            point, price, gap, w = best
            if w.reduce_only and not self._reduces(w.is_buy):
                self._cancel(w, "REDUCE_ONLY_CANCELED")
                continue
            px = self.costs.slipped(price, w.is_buy) if w.is_stop else price
            first = w.filled_size == 0.0
            part = self._part(w)
            self._fill(w, px, taker=w.is_stop, candle=k, gap=gap, qty=part)
            if part is not None and w.status != "FILLED":  # the rest works from the next candle
                w.active_candle, w.active_point = k + 1, OPEN
            if first:
                self._activate_children(w, k, point)
            if self.qty == 0.0:
                self._cancel_orphans()
        if FIRST in seen and SECOND in seen:  # the fills depended on the assumed path order
            for f in self.fills[first_fill:]:
                f["ambiguous"] = True

    def _next_hit(self, k: int, path: tuple[float, float, float, float],
                  seen: set[int]) -> tuple[int, float, bool, VenueOrder] | None:
        """The resting order that executes first on candle ``k``'s path: (point, price, gap,
        order); every point where some order would execute is added to ``seen``."""
        best: tuple[int, float, bool, VenueOrder] | None = None
        for w in self._resting(k):
            start = w.active_point if w.active_candle == k else OPEN
            hit = crossing(w.is_buy, w.is_stop, w.level, path, start)
            if hit is not None:
                seen.add(hit[0])
                if best is None or hit[0] < best[0]:
                    best = (hit[0], hit[1], hit[2] and hit[0] == OPEN, w)
        return best

    def _part(self, w: VenueOrder) -> float | None:
        """The size of a partial fill of ``w`` when the fault ``partial`` is pending, else None."""
        if self.partial_next <= 0:
            return None
        rest = w.size - w.filled_size
        if w.reduce_only:
            rest = min(rest, abs(self.qty))
        step = self.step or 1e-12
        part = math.floor(rest / 2 / step + 1e-9) * step
        if not 0 < part < rest - 1e-12:
            return None  # too small to split: filled whole
        self.partial_next -= 1
        return part

    def _fill_market(self, o: VenueOrder, k: int) -> None:
        if o.reduce_only and not self._reduces(o.is_buy):
            self._cancel(o, "REDUCE_ONLY_CANCELED")
            return
        self._fill(o, self.costs.slipped(float(self.o[k]), o.is_buy), taker=True, candle=k)
        if self.qty == 0.0:
            self._cancel_orphans()
        self._activate_children(o, k, OPEN)

    def _reduces(self, is_buy: bool) -> bool:
        return (self.qty > 0 and not is_buy) or (self.qty < 0 and is_buy)

    def _fill(self, o: VenueOrder, price: float, *, taker: bool, candle: int,
              gap: bool = False, qty: float | None = None) -> None:
        part = qty is not None
        qty = o.size - o.filled_size if qty is None else qty
        if o.reduce_only:
            qty = min(qty, abs(self.qty))
        rate = self.costs.taker_fee if taker else self.costs.maker_fee
        fee = qty * price * rate
        signed = qty if o.is_buy else -qty
        old = self.qty
        if old == 0.0 or (old > 0) == (signed > 0):  # open or add
            new = old + signed
            self.entry = (self.entry * abs(old) + price * qty) / abs(new)
            self.qty = new
        else:
            closing = min(abs(signed), abs(old))
            self.realized += (price - self.entry) * closing * (1 if old > 0 else -1)
            new = old + signed
            if abs(new) < 1e-12:
                new = 0.0
            if new == 0.0:
                self.entry = 0.0
            elif (new > 0) != (old > 0):  # flipped: the rest opens at this price
                self.entry = price
            self.qty = new
        self.fees += fee
        ts = int(self.open_ms[candle])
        self.updated_ms = ts
        o.filled_size += qty
        o.filled_value += qty * price
        o.filled_fee += fee
        self.changed.append(o.id)
        if not part or o.filled_size >= o.size - 1e-12:
            o.status = "FILLED"
            self.working.pop(o.id, None)
        o.updated_ms = ts
        self.fills.append({
            "id": str(next(self._fill_ids)), "orderId": o.id, "clientId": o.client_id,
            "clientOrderId": o.client_id, "symbol": o.symbol, "side": o.side,
            "orderType": o.type, "price": fmt(price, 8), "size": fmt(qty),
            "value": fmt(qty * price, 8), "fee": fmt(fee, 8),
            "liquidity": "TAKER" if taker else "MAKER", "direction": o.side,
            "reduceOnly": o.reduce_only, "createdAt": ts, "updatedTime": ts,
            "candleOpenTime": ts, "gap": gap, "ambiguous": False,
        })

    def _activate_children(self, parent: VenueOrder, k: int, point: int) -> None:
        for c in parent.children:
            oid = str(next(self._ids))
            typ = "STOP_MARKET" if c["kind"] == "sl" else "TAKE_PROFIT_MARKET"
            child = VenueOrder(oid, c["client_id"] or f"{parent.client_id}-{c['kind']}",
                               self.symbol, c["side"], typ, c["size"], c["price"], c["trigger"],
                               True, int(self.open_ms[k]), k, point, "UNTRIGGERED",
                               is_position_tpsl=False, parent_id=parent.id,
                               form={"triggerPriceType":
                                     parent.form.get("triggerPriceType", "") or "MARKET"})
            self.orders[oid] = child
            self.working[oid] = child
            self.changed.append(oid)
            self.by_client.setdefault(child.client_id, child)

    def _cancel_orphans(self) -> None:
        for o in list(self.working.values()):
            if o.reduce_only and o.status in ("OPEN", "UNTRIGGERED"):
                self._cancel(o, "POSITION_CLOSED")

    def _cancel(self, o: VenueOrder, reason: str) -> None:
        o.status = "CANCELED"
        self.changed.append(o.id)
        self.working.pop(o.id, None)
        o.cancel_reason = reason
        o.updated_ms = self.now_ms


def _num(text: str | None, name: str) -> float:
    try:
        x = float(text) if text not in (None, "", "None") else math.nan
    except ValueError:
        raise reject(f"{name} {text!r} is not a number", "ORDER_PARAM_INVALID") from None
    return x


def _parse_order(form: dict[str, str], min_size: float,
                 step: float) -> tuple[str, str, float, float, float]:
    """(type, side, size, price, trigger) of an order form, checked like the exchange."""
    typ = form.get("type", "")
    if typ not in ORDER_TYPES:
        raise reject(f"order type {typ!r} is not one of {', '.join(ORDER_TYPES)}",
                     "ORDER_TYPE_INVALID")
    side = form.get("side", "")
    if side not in ("BUY", "SELL"):
        raise reject(f"side {side!r} must be BUY or SELL", "ORDER_SIDE_INVALID")
    size = _num(form.get("size"), "size")
    price = _num(form.get("price"), "price")
    if not size > 0:
        raise reject(f"size {form.get('size')} must be greater than zero",
                     "ORDER_SIZE_MUST_GREETER_ZERO")
    if size < min_size - 1e-12:
        raise reject(f"size {form.get('size')} is below minOrderSize {fmt(min_size)}",
                     "ORDER_SIZE_LESS_THAN_MIN")
    if step > 0 and abs(size / step - round(size / step)) > 1e-6:
        raise reject(f"size {form.get('size')} is not a multiple of stepSize {fmt(step)}",
                     "ORDER_SIZE_STEP_INVALID")
    if not price > 0:
        raise reject(f"price {form.get('price')} must be greater than zero",
                     "ORDER_PRICE_MUST_GREETER_ZERO")
    trig = math.nan
    if typ not in ("MARKET", "LIMIT"):
        trig = _num(form.get("triggerPrice"), "triggerPrice")
        if not trig > 0:
            raise reject(f"{typ} needs a triggerPrice greater than zero",
                         "ORDER_TRIGGER_PRICE_INVALID")
    return typ, side, size, price, trig


def _attached(form: dict[str, str]) -> list[dict[str, Any]]:
    """The attached stop-loss / take-profit of an ``isOpenTpslOrder`` order."""
    out = []
    for kind, flag in (("sl", "isSetOpenSl"), ("tp", "isSetOpenTp")):
        if form.get(flag) != "True":
            continue
        child = {
            "kind": kind, "client_id": form.get(f"{kind}ClientOrderId", ""),
            "side": form.get(f"{kind}Side", ""),
            "size": _num(form.get(f"{kind}Size"), f"{kind}Size"),
            "price": _num(form.get(f"{kind}Price"), f"{kind}Price"),
            "trigger": _num(form.get(f"{kind}TriggerPrice"), f"{kind}TriggerPrice"),
        }
        if child["side"] == form.get("side") or child["side"] not in ("BUY", "SELL"):
            raise reject(f"{kind}Side {child['side']!r} must be the opposite of the order's side",
                         "ORDER_TPSL_SIDE_INVALID")
        if not (child["size"] > 0 and child["trigger"] > 0 and child["price"] > 0):
            raise reject(f"{kind}Size, {kind}Price and {kind}TriggerPrice must be greater than "
                         "zero", "ORDER_TPSL_PARAM_INVALID")
        out.append(child)
    return out
