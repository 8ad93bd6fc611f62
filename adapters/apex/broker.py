"""The Apex broker: one account's engine orders as ApeX Omni orders (``engine.ports.Broker``).

Live mode's broker (entry point ``apex`` in ``tradebot.brokers``), through the real ``apexomni``
client (``adapters.apex.client.ApexClient``: every reply checked, exceptions mapped to
``engine.errors``). How each command becomes venue orders:

- ``SubmitOrder`` market, not reduce-only (an entry): a ``MARKET`` order whose ``price`` is the
  venue's worst-price guard (``get_worst_price_v3``); size from ``qty`` or, for ``equity_frac``,
  from the account's equity at the worst price (``engine.fills.size_for_equity_frac``, the
  simulated broker's formula); the command's ``stop_loss`` / ``take_profit`` attached
  (``isOpenTpslOrder``: a ``STOP_MARKET`` and a ``TAKE_PROFIT_MARKET`` that start working when the
  entry fills, whose engine ids are ``<order_id>-stop_loss`` / ``<order_id>-take_profit`` as in
  ``SimBroker``).
- reduce-only orders (exits, partials, the exit plugins' stop): ``MARKET`` / ``LIMIT`` /
  ``STOP_MARKET`` with ``reduceOnly``; ``qty=inf`` means the whole position.
- ``ModifyOrder`` (a stop move, a trail): **cancel-and-replace, new first**: the new
  ``STOP_MARKET`` is placed, then the old one is canceled (by its clientId, never "every order
  with a trigger": the reference bot's bug that also canceled the take-profit). If placing the
  new stop fails, the old one stays.
- Sizes are rounded down to ``stepSize``, prices to ``tickSize`` (the guard price away from the
  market) and checked against ``minOrderSize`` before sending: an order below it is refused
  locally (``OrderCanceled`` with the reason, never sent).

**Client ids.** Every venue order carries ``clientId = client_id(run_id, account, order_id)``: a
digest of the three, so the same engine order always maps to the same venue order. After a lost
reply (``VenueStateUnknown``: timeout or dropped connection on an order request) the broker looks
the order up by clientId before resending the *same* clientId, and ``DuplicateClientId`` means
the venue has it: a retry can never open a second position.

**Replies.** ``OrderRejected`` -> ``OrderCanceled`` with the venue's reason;
``TransientVenueError`` (5xx, 429, timeouts of reads) -> retried with capped exponential backoff
(``retry_after`` honoured up to the cap), then ``OrderCanceled`` "venue unavailable" when the
retries are spent; ``VenueStateUnknown`` -> reconcile that order by clientId.

**Fills.** The venue's fills endpoint is polled at every bar close (first on the bar, like the
simulated broker's fills of orders resting before it) and once more after the bar's handlers ran
(``after_bar``, so a market order placed on this bar's close is booked at once and the exit
plugin's stop goes out within the same second, not a bar later). Each venue fill of one of this
broker's clientIds becomes an ``OrderFilled`` for its account with the venue's price, size and
fee; ``seq`` is the bar the fill time falls in (a market order placed on bar N's close fills in
bar N+1, as in a backtest with ``market_fill: next_open``). Orders of this broker that leave the
venue's open orders without a fill (an orphaned take-profit canceled when the position closed)
are published as ``OrderCanceled`` with the venue's cancel reason.

**Sending.** A live run's brokers (one per account) send at once on a venue across the network
(not on a loopback one, the local venue, whose work competes with the engine for the same cores:
there it measured slower; ``from_config``): on a signal bar every account's entry is in flight
together instead of one after another. ``on_submit_order`` checks
and forms the order and journals its ``OrderSent`` on the engine thread (on disk before the
request leaves), then hands the request (zk signature + HTTP, which release the GIL) to the
account's worker thread: one per account, so one account's requests keep their order. Replies
are booked back on the engine thread, in the order sent (``OrderReply``, a refusal's
``OrderCanceled``), by every path that reads or changes the account's orders (a cancel, a stop
move, a fills poll, ``working_orders``) and at the latest in ``after_bar``; the run's last
``after_bar`` books what every account still has in flight (``SendDesk.drain``), so a bar ends
with nothing unbooked and the journal holds the same events as a serial run, only the accounts
interleaved differently. A market order's worker reads the fills endpoint as soon as the venue
accepts it (``after_bar`` books them without another round trip); the worst-price guard is looked
up once per bar, side and size for all accounts (``SendDesk``). A bar's own fills and
open-orders reads stay on the engine thread: handed to the workers too, they overlapped on the
venue but made the bar slower on a 2-core machine (docs/apex.md). Stop moves and cancels stay
on the engine thread (after settling).
``concurrent=False``: every request on the engine thread.

One venue account holds one net position per symbol, so a live run trades one strategy per
Apex account: several strategies each name their own account's credentials by an environment
prefix (``apex_env``; :func:`account_clients`), each gets its own broker and client, and two
strategies on one account are refused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from engine.errors import (
    ConfigError,
    DuplicateClientId,
    OrderRejected,
    TransientVenueError,
    VenueError,
    VenueStateUnknown,
)
from engine.events import (
    BarClosed,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    OrderReply,
    OrderSent,
    SubmitOrder,
    TimerFired,
)
from engine.fills import Costs, IntrabarPolicy, MarketFill, size_for_equity_frac
from engine.ports import WorkingOrder

if TYPE_CHECKING:
    from adapters.apex.account_stream import AccountStream
    from adapters.apex.client import ApexClient, ApexCredentials
    from engine.clock import Clock
    from engine.config import RunConfig
    from engine.portfolio import Account

logger = logging.getLogger(__name__)

STOP_PRICE_GUARD = Decimal("0.05")  # a stop-market's worst acceptable price: trigger -+ 5 %
WORST_TTL_S = 1.0  # a worst-price guard looked up on this bar is reused this long at most


_warmed = threading.local()


def warm_signer() -> None:
    """Sign once in this thread with a throwaway zk key: the zkLink signer's first signature in
    a thread costs about 0.1 s (its per-thread set-up; later ones about 5 ms), so a thread that
    will sign orders pays it at start, not on its first order. Once per thread; a failure is
    left to the first order to report."""
    if getattr(_warmed, "done", False):
        return
    _warmed.done = True
    try:
        from adapters.apex.client import zklink_sdk

        sdk = zklink_sdk()
        sdk.ZkLinkSigner().new_from_seed(bytes.fromhex("5a" * 64)).sign_musig(b"warm-up")
    except Exception as exc:  # only a warm-up: the first real signature reports a real problem
        logger.debug("zk signer warm-up failed: %s", exc)


def loopback(url: str) -> bool:
    """Whether ``url`` is a venue on this machine (the local venue on 127.0.0.1)."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def row_cid(row: dict[str, Any]) -> str:
    """The clientId of a venue order or fill row ("" when it has none)."""
    return str(row.get("clientId") or row.get("clientOrderId") or "")


def client_id(run_id: str, account: str, order_id: str) -> str:
    """The venue clientId of engine order ``order_id`` of ``account`` in run ``run_id``: 20
    decimal digits of a SHA-256 of the three (Apex's own ids are digit strings)."""
    h = hashlib.sha256(f"{run_id}\x1f{account}\x1f{order_id}".encode()).hexdigest()
    return str(int(h[:16], 16)).zfill(20)[:20]


@dataclass(frozen=True)
class SymbolRules:
    """``tickSize``, ``stepSize`` and ``minOrderSize`` of one perpetual (``/api/v3/symbols``)."""

    symbol: str
    tick: Decimal
    step: Decimal
    min_size: Decimal

    @classmethod
    def from_symbols(cls, data: Any, symbol: str) -> SymbolRules:
        for c in (data or {}).get("contractConfig", {}).get("perpetualContract", []) or []:
            if symbol in (c.get("symbol"), c.get("symbolDisplayName"), c.get("crossSymbolName")):
                return cls(c["symbol"], Decimal(str(c["tickSize"])), Decimal(str(c["stepSize"])),
                           Decimal(str(c.get("minOrderSize") or c["stepSize"])))
        raise VenueError(f"symbol {symbol} is not a perpetual this venue lists; check data.symbol")

    def size(self, qty: float) -> Decimal:
        """``qty`` rounded down to the step (a size is never rounded up past what was asked)."""
        q = Decimal(repr(qty)) if math.isfinite(qty) else Decimal(0)
        # 1e-9 of a step absorbs the float noise of qty computed as a multiple of the step
        steps = ((q / self.step) + Decimal("1e-9")).to_integral_value(ROUND_DOWN)
        return (steps * self.step).normalize()

    def price(self, px: float | Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        p = Decimal(repr(px)) if isinstance(px, float) else px
        return ((p / self.tick).to_integral_value(rounding) * self.tick).normalize()


def _s(d: Decimal) -> str:
    return format(d, "f")


@dataclass
class _Order:
    """One engine order as this broker tracks it on the venue."""

    order_id: str  # the engine's
    cid: str  # the venue clientId of the live venue order
    side: str  # "buy" / "sell"
    type: str  # engine type: market / limit / stop
    qty: float
    price: float
    reduce_only: bool
    tag: str
    seq: int
    working: bool = False  # on the venue (children: once their entry filled)
    parent: str = ""  # an attached child: the entry's engine id
    old_cids: list[str] = field(default_factory=list)  # replaced stops (a fill may still come)
    filled: float = 0.0


class SendDesk:
    """What the Apex brokers of one live run (one per account) share to send at once.

    - ``brokers``: in wiring order, which is the order of their ``after_bar`` hooks: the last
      ``after_bar`` of a bar books what every account still has in flight (:meth:`drain`), so
      nothing of the bar is left unbooked when it ends.
    - the worst-price guard (``get_worst_price_v3``): the market's, not an account's, so it is
      looked up once per bar, side and size for all of them and reused for ``WORST_TTL_S`` at
      most (the six entries of one signal bar ask the same question).
    """

    def __init__(self) -> None:
        self.brokers: list[ApexBroker] = []
        self.bar_seq: int | None = None  # the bar of the worst prices below
        self.worst: dict[tuple[Any, ...], tuple[float, Any]] = {}  # this bar's worst prices

    def drain(self) -> None:
        """Book every account's orders still in flight (engine thread), account by account in
        wiring order, each in the order sent; again while booking makes new ones."""
        while any(b._pending for b in self.brokers):
            for b in self.brokers:
                if b._pending:
                    b._settle_and_book()


class ApexBroker:
    """Executes one account's orders on an Apex venue (``engine.ports.Broker``).

    Args:
        account, publish, costs, policy, market_fill: the ``BrokerFactory`` arguments (``policy``
            and ``market_fill`` are the venue's business live: unused).
        client: the checked Apex client (``ApexClient``) with the account's credentials.
        symbol: the venue symbol (``BTC-USDT``).
        run_id: part of every clientId (``client_id``); unique per run.
        max_retries, backoff_s, backoff_cap_s: transient errors are retried ``max_retries``
            times, waiting ``backoff_s`` doubling up to ``backoff_cap_s`` (or the venue's
            ``retry_after``, capped).
        market_wait_s: after a bar, how long to wait for the fills of the market orders placed
            on it (the local venue in lockstep fills them at once).
        sleep: how to wait (tests may record the waits).
        concurrent: send through the account's worker thread (signature + HTTP), the replies
            booked back on the engine thread at the next settle point (module docstring,
            "Sending"); False: every request on the engine thread, one after another.
        desk: what the brokers of one run share (:class:`SendDesk`); default: its own.
    """

    def __init__(self, account: Account, publish: Callable[[Event], None], costs: Costs,
                 policy: IntrabarPolicy | None = None, market_fill: MarketFill | None = None, *,
                 client: ApexClient, symbol: str, run_id: str, max_retries: int = 5,
                 backoff_s: float = 0.25, backoff_cap_s: float = 4.0, market_wait_s: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep,
                 stream: AccountStream | None = None, concurrent: bool = True,
                 desk: SendDesk | None = None) -> None:
        self.account = account
        self.name = account.name
        self._publish = publish
        self.costs = costs
        self.client = client
        self.symbol = symbol
        self.run_id = run_id
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._rules: SymbolRules | None = None
        self._orders: dict[str, _Order] = {}  # engine id -> order
        self._by_cid: dict[str, _Order] = {}  # every clientId this broker used -> order
        self._seen_fills: set[str] = set()
        self._sent: set[str] = set()  # clientIds journaled as sent (OrderSent)
        self._fills_from_ms = 0
        self._bar: BarClosed | None = None
        self.retries = 0  # transient errors retried (diagnostics, tests)
        self.market_wait_s = market_wait_s
        self._polling = False
        # why new entries are refused after a restart's reconciliation found what it cannot
        # explain ("" = trading; adapters/apex/reconcile.py); exits and stops still go out
        self.halted = ""
        # the account's private websocket (adapters.apex.account_stream): fills as they happen
        self.stream = stream
        self._stream_lost = False  # a session was lost: back-fill from the fills endpoint
        self.ws_fills = 0  # fills booked from the websocket first (diagnostics, tests)
        self.backfills = 0  # back-fills from the fills endpoint after a websocket drop
        self._timer = "apex-ws"  # one timer drains every account's stream (journaled once)
        # sending (module docstring): the account's worker and what it has in flight
        self.concurrent = concurrent
        self.desk = desk if desk is not None else SendDesk()
        self.desk.brokers.append(self)
        self._worker: ThreadPoolExecutor | None = None
        self._pending: list[tuple[_Order, Future[tuple[bool, list[dict[str, Any]] | None]]]] = []
        self._stash: list[dict[str, Any]] | None = None  # fills read right after a market order

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: RunConfig, client: ApexClient | None = None,
                    run_id: str | None = None, *, resume: bool = False
                    ) -> Callable[..., ApexBroker]:
        """The ``BrokerFactory`` for a live run of ``config``: one ``ApexClient`` on
        ``data.venue`` (credentials from the environment / ``.env``), clientIds prefixed by
        ``run_id`` (default: the config's name and hash and the start time in ms, so a
        restarted run's new orders never reuse a clientId). ``resume``: the run continues from
        its journal (``engine.restore``): the account may hold what the journal explains, so
        ``check_flat`` is replaced by the reconciliation (``reconcile``)."""
        if not config.data.venue or not config.data.symbol:
            raise ConfigError("mode: live needs data.venue (main, test or a local venue's URL) "
                              "and data.symbol; see configs/live.yaml")
        clients = account_clients(config, client)  # one Apex account per strategy
        client = next(iter(clients.values()))
        rid = run_id or f"{config.name}-{config.config_hash()}-{int(time.time() * 1000)}"
        symbol = config.data.symbol

        ws = config.data.websocket
        desk = SendDesk()  # the run's brokers send at once (module docstring, "Sending")
        # ... where the venue's work is not on this machine's cores: docs/apex.md, "Speed"
        concurrent = not loopback(client.base_url)

        def factory(account: Account, publish: Callable[[Event], None], costs: Costs,
                    policy: IntrabarPolicy | None = None,
                    market_fill: MarketFill | None = None) -> ApexBroker:
            c = clients.get(account.name, client)  # the strategy's own account
            stream = None
            if ws:
                stream = _account_stream(ws, c, account.name)
            broker = cls(account, publish, costs, policy, market_fill, client=c,
                         symbol=symbol, run_id=rid, stream=stream, desk=desk,
                         concurrent=concurrent)
            try:
                if not resume:
                    broker.check_flat()
            except BaseException:
                broker.close()
                raise
            broker.warm()
            return broker

        return factory

    def check_flat(self) -> None:
        """Refuse a fresh start (no journal of this run) on an account that already holds a
        position or open orders in the symbol: trading beside what no journal explains could
        double a position. A restart with the run's journal reconciles instead (``reconcile``).

        Raises:
            VenueError: what the venue holds and how to clear it.
        """
        sym = self.rules.symbol.replace("-", "")
        # also warms the signing client (its account and symbol configs), so the first order
        # does not pay for them after a bar close
        priv = self.client.private
        self._retry("configs", self.client.call, "configs", priv.configs_v3)
        pos = [p for p in (self._retry("account", self.client.account).get("positions") or [])
               if str(p.get("symbol", "")).replace("-", "") == sym and float(p.get("size") or 0)]
        orders = [o for o in self._retry("open orders", self.client.open_orders) or []
                  if str(o.get("symbol", "")).replace("-", "") == sym]
        if pos or orders:
            held = [f"a {p.get('side')} position of {p.get('size')}" for p in pos]
            if orders:
                held.append(f"{len(orders)} open order(s)")
            raise VenueError(
                f"the Apex account at {self.client.base_url} holds {' and '.join(held)} in "
                f"{self.rules.symbol} and this run has no journal that explains them (a "
                "restart finds its journal in the output folder: docs/apex.md): close them "
                "with `tradebot flatten CONFIG` (or by hand), then start again")

    @property
    def rules(self) -> SymbolRules:
        if self._rules is None:
            self._rules = SymbolRules.from_symbols(self._retry("symbols", self.client.symbols),
                                                   self.symbol)
        return self._rules

    def cid(self, order_id: str) -> str:
        return client_id(self.run_id, self.name, order_id)

    # -- commands ------------------------------------------------------------------------------
    def on_submit_order(self, cmd: SubmitOrder) -> None:
        if self.halted and not cmd.reduce_only:
            self._canceled(cmd.order_id, f"halted: {self.halted}")
            return
        o = _Order(cmd.order_id, self.cid(cmd.order_id), cmd.side, cmd.type, cmd.qty, cmd.price,
                   cmd.reduce_only, cmd.tag, cmd.seq)
        try:
            form = self._form(cmd, o)
        except OrderRejected as exc:  # refused locally (size, price): never sent
            self._canceled(cmd.order_id, str(exc))
            return
        self._place(o, form)

    def on_cancel_order(self, cmd: CancelOrder) -> None:
        self._settle()  # the account's orders in flight first: one account's orders keep order
        o = self._orders.get(cmd.order_id)
        if o is None or not o.working:
            self._canceled(cmd.order_id, "not working (already filled or canceled)")
            return
        try:
            self._cancel_cid(o.cid)
        except OrderRejected as exc:  # already filled / canceled on the venue: a fill of it
            o.working = False  # not yet polled is still booked (fills are matched by clientId)
            self._canceled(o.order_id, f"cancel refused by the venue: {exc}")
            return
        o.working = False
        self._canceled(o.order_id, cmd.reason or "canceled")

    def on_modify_order(self, cmd: ModifyOrder) -> None:
        """Cancel-and-replace: place the new order first, then cancel the old one."""
        self._settle()
        o = self._orders.get(cmd.order_id)
        if o is None or not o.working:
            self._canceled(cmd.order_id, "modify: not working")
            return
        old_cid = o.cid
        n = len(o.old_cids) + 1
        new = _Order(o.order_id, self.cid(f"{o.order_id}~{n}"), o.side, o.type, o.qty,
                     cmd.price, True, cmd.tag or o.tag, o.seq)
        sub = SubmitOrder(ts_event_ns=cmd.ts_event_ns, ts_init_ns=cmd.ts_init_ns,
                          account=self.name, order_id=o.order_id, side=o.side,  # type: ignore
                          type=o.type if o.type != "market" else "stop",  # type: ignore
                          seq=o.seq, qty=math.inf, price=cmd.price, reduce_only=True, tag=new.tag)
        new.type = sub.type
        try:
            form = self._form(sub, new)
            self._journal_sent(new, replaces=old_cid)
            placed = self._send(new, form)
            self._journal_reply(new, "accepted" if placed else "failed")
        except (OrderRejected, VenueError) as exc:
            # the old order stays: the position is never left without its stop
            if new.cid in self._sent:
                self._journal_reply(new, "rejected" if isinstance(exc, OrderRejected)
                                    else "failed", str(exc))
            logger.warning("%s: moving %s to %s failed, the old one stays: %s", self.name,
                           o.order_id, cmd.price, exc)
            return
        if not placed:
            return
        new.old_cids = [*o.old_cids, old_cid]
        self._orders[o.order_id] = new
        self._by_cid[new.cid] = new
        self._by_cid[old_cid] = new
        new.working = True
        try:
            self._cancel_cid(old_cid)
        except OrderRejected as exc:  # the old one filled meanwhile: its fill is polled
            logger.info("%s: old stop %s of %s not canceled: %s", self.name, old_cid,
                        o.order_id, exc)

    def working_orders(self) -> list[WorkingOrder]:
        self._settle()
        # qty: what is left of it (a partially filled order keeps working for the rest)
        return [WorkingOrder(o.order_id, o.side, o.qty - o.filled, o.price,  # type: ignore
                             o.tag) for o in self._orders.values() if o.working]

    # -- the bar -------------------------------------------------------------------------------
    def on_bar_closed(self, bar: BarClosed) -> None:
        self._bar = bar
        self._settle()
        self._stash = None
        self.poll_stream()
        if any(o.working for o in self._orders.values()):
            self._poll_fills()
            self._poll_canceled()

    def bind_clock(self, clock: Clock, interval_s: float = 1.0) -> None:
        """With a websocket: drain it every ``interval_s`` on ``clock`` (a timer: it fires on
        the loop's idle ticks while the feed waits for the next candle), so a fill pushed
        between two bars is booked within about that long, on the engine thread."""
        if self.stream is not None and self._timer not in clock.timers():
            clock.set_timer(self._timer, interval_ns=int(interval_s * 1e9))

    def on_timer_fired(self, ev: TimerFired) -> None:
        if ev.name == self._timer:
            self.poll_stream()

    def close(self) -> None:
        """Stop the websocket (if any) and the worker; the venue's orders are left as they
        are."""
        if self.stream is not None:
            self.stream.stop()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        if self in self.desk.brokers:
            self.desk.brokers.remove(self)

    def after_bar(self, bar: BarClosed) -> None:
        """After the bar's handlers: book the replies of the orders placed on this close (in
        the order sent) and what they did at once (market orders fill as soon as they are
        placed; on the exchange this waits up to ``market_wait_s`` for their fills, then asks
        whether the venue canceled them). Only market orders can have filled since the bar's
        own poll: a resting order placed on this close works from the next candle, whose fills
        the next bar close (or the websocket) books. The run's last broker then books what
        every account still has in flight (``SendDesk.drain``: the stops placed on these
        fills), so the bar ends with nothing unbooked."""
        self._settle_and_book()
        if self.desk.brokers and self.desk.brokers[-1] is self:
            self.desk.drain()
        elif self not in self.desk.brokers:
            while self._pending:
                self._settle_and_book()

    def _settle_and_book(self) -> None:
        """Book the replies in flight, then the fills of the market orders among them: those
        the worker read right after the venue accepted them, else from the fills endpoint."""
        self._settle()
        rows, self._stash = self._stash, None
        if not any(o.working and o.type == "market" for o in self._orders.values()):
            return
        self._poll_fills(rows)
        deadline = time.monotonic() + self.market_wait_s
        while any(o.working and o.type == "market" for o in self._orders.values()):
            if time.monotonic() >= deadline:
                self._poll_canceled()
                break
            self._sleep(0.05)
            self.poll_stream()
            self._poll_fills()

    def close_at_end(self, bar: BarClosed, tag: str) -> None:
        """Live runs do not close at the end of data: positions stay, with their stops, on the
        venue (``tradebot flatten`` closes them)."""
        self._settle()
        logger.info("%s: run stopped; %d orders stay working on the venue", self.name,
                    len(self.working_orders()))

    # -- orders --------------------------------------------------------------------------------
    def _form(self, cmd: SubmitOrder, o: _Order) -> dict[str, Any]:
        """The ``create_order_v3`` arguments of ``cmd`` (sizes/prices rounded, min size checked).

        Raises:
            OrderRejected: below ``minOrderSize``, no price, or nothing to reduce.
        """
        r = self.rules
        buy = cmd.side == "buy"
        side = "BUY" if buy else "SELL"
        acct = self.account
        if cmd.reduce_only and not ((acct.qty > 0 and not buy) or (acct.qty < 0 and buy)):
            raise OrderRejected("reduce-only order with no position to reduce")
        qty = cmd.qty
        if cmd.reduce_only and (not math.isfinite(qty) or qty > abs(acct.qty)):
            qty = abs(acct.qty)
        form: dict[str, Any] = {"symbol": r.symbol, "side": side, "clientId": o.cid,
                                "reduceOnly": cmd.reduce_only}
        if cmd.type == "market":
            est = qty if qty > 0 and math.isfinite(qty) else float(r.min_size)
            worst = Decimal(str(self._worst_price(r.symbol, side,
                                                  _s(r.size(est) or r.min_size))["worstPrice"]))
            price = r.price(worst, ROUND_CEILING if buy else ROUND_FLOOR)
            if cmd.equity_frac > 0.0:
                qty = size_for_equity_frac(acct.equity_at(float(price)), cmd.equity_frac,
                                           float(price), self.costs.taker_fee)
            form.update(type="MARKET", price=_s(price))
        elif cmd.type == "limit":
            if not math.isfinite(cmd.price):
                raise OrderRejected("a limit order needs a price")
            form.update(type="LIMIT", price=_s(r.price(cmd.price)))
        else:  # stop
            if not math.isfinite(cmd.price):
                raise OrderRejected("a stop order needs a trigger price")
            trig = r.price(cmd.price)
            form.update(type="STOP_MARKET", triggerPrice=_s(trig), triggerPriceType="MARKET",
                        price=_s(self._guard(trig, buy)))
        size = r.size(qty)
        if size < r.min_size or size <= 0:
            raise OrderRejected(
                f"size {qty:.8g} rounds to {_s(size)} {r.symbol}, below the venue's minOrderSize "
                f"{_s(r.min_size)} (stepSize {_s(r.step)}); raise the position size or the "
                "account's equity")
        form["size"] = _s(size)
        o.qty = float(size)
        if not cmd.reduce_only and cmd.type == "market":
            self._attach(cmd, o, form, size, buy)
        return form

    def _guard(self, trigger: Decimal, buy: bool) -> Decimal:
        r = self.rules
        if buy:
            return r.price(trigger * (1 + STOP_PRICE_GUARD), ROUND_CEILING)
        return r.price(trigger * (1 - STOP_PRICE_GUARD), ROUND_FLOOR)

    def _attach(self, cmd: SubmitOrder, o: _Order, form: dict[str, Any], size: Decimal,
                buy: bool) -> None:
        """The plan's stop and first target as the entry's attached TP/SL (``isOpenTpslOrder``):
        on the venue from the moment the entry fills. The stop's size is the entry's (reduce-only:
        it closes what is left); the target's is ``take_profit_frac`` of it (rounded down to the
        step; NaN: the entry's size), tagged ``take_profit_tag``. A target below
        ``minOrderSize`` is not attached (``OrderCanceled`` for its id, as a partial of that
        size sent alone would be refused); the entry and its stop go without it."""
        r = self.rules
        exit_side = "SELL" if buy else "BUY"
        children = []
        for kind, px, eng_type, tag in (("sl", cmd.stop_loss, "stop", "STOP_LOSS"),
                                        ("tp", cmd.take_profit, "limit",
                                         cmd.take_profit_tag or "TAKE_PROFIT")):
            if not math.isfinite(px):
                continue
            eid = f"{cmd.order_id}-{'stop_loss' if kind == 'sl' else 'take_profit'}"
            csize = size
            if kind == "tp" and math.isfinite(cmd.take_profit_frac):
                csize = r.size(cmd.take_profit_frac * float(size))
                if csize < r.min_size or csize <= 0:
                    self._canceled(eid, f"target size {cmd.take_profit_frac:g} x {_s(size)} "
                                   f"rounds to {_s(csize)} {r.symbol}, below the venue's "
                                   f"minOrderSize {_s(r.min_size)}: not attached")
                    continue
            trig = r.price(px)
            price = self._guard(trig, not buy) if kind == "sl" else trig
            c = _Order(eid, self.cid(eid), "sell" if buy else "buy", eng_type, float(csize),
                       float(trig), True, tag, cmd.seq, parent=cmd.order_id)
            children.append(c)
            form.update({"isOpenTpslOrder": True, f"isSetOpen{kind.title()}": True,
                         f"{kind}ClientId": c.cid, f"{kind}Side": exit_side,
                         f"{kind}Size": _s(csize), f"{kind}Price": _s(price),
                         f"{kind}TriggerPrice": _s(trig)})
        if children:
            form["triggerPriceType"] = "MARKET"
            for c in children:
                self._orders[c.order_id] = c
                self._by_cid[c.cid] = c

    def _place(self, o: _Order, form: dict[str, Any]) -> None:
        if self._fills_from_ms == 0 and self._bar is not None:
            # no fill of ours is older than our first order: skip the account's history
            self._fills_from_ms = self._bar.ts_event_ns // 1_000_000 - 60_000
        self._orders[o.order_id] = o
        self._by_cid[o.cid] = o
        self._journal_sent(o)  # on disk before the request leaves (engine.journal)
        for c in self._orders.values():
            if c.parent == o.order_id:
                self._journal_sent(c)
        if self.concurrent:  # signature + request in the account's worker; booked by _settle
            self._pending.append((o, self._pool().submit(self._send_and_read, o, form)))
            return
        self._book_sent(o, lambda: self._send(o, form))

    def _book_sent(self, o: _Order, outcome: Callable[[], bool]) -> None:
        """Book the venue's answer to order ``o`` (engine thread): ``outcome()`` says whether
        the venue has it, or raises what ``_send`` raises."""
        try:
            placed = outcome()
        except OrderRejected as exc:
            self._journal_reply(o, "rejected", str(exc))
            self._drop_children(o)
            self._canceled(o.order_id, str(exc))
            return
        except VenueError as exc:  # retries spent / unreachable / auth: reported, not crashed
            self._journal_reply(o, "failed", str(exc))
            self._drop_children(o)
            self._canceled(o.order_id, f"not placed: {exc}")
            return
        self._journal_reply(o, "accepted" if placed else "failed")
        if placed:
            o.working = True

    # -- sending through the account's worker ------------------------------------------------
    def warm(self) -> None:
        """Before trading: the zk signer's per-thread set-up (``warm_signer``) in this thread
        (stop moves sign here) and, in the background, in the account's worker."""
        warm_signer()
        if self.concurrent:
            self._pool().submit(warm_signer)

    def _pool(self) -> ThreadPoolExecutor:
        """The account's worker: one thread, so the account's requests keep their order."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"apex-{self.name}")
        return self._worker

    def _send_and_read(self, o: _Order, form: dict[str, Any]
                       ) -> tuple[bool, list[dict[str, Any]] | None]:
        """(worker) ``_send``; for a market order the venue accepted, also read the fills
        endpoint at once (it fills as it is placed): ``after_bar`` books them without another
        round trip (None: that read failed, ``after_bar`` reads again)."""
        placed = self._send(o, form)
        rows = None
        if placed and form.get("type") == "MARKET":
            try:
                rows = self.venue_fills()
            except VenueError as exc:
                logger.info("%s: fills after %s: %s; read again after the bar", self.name,
                            o.order_id, exc)
        return placed, rows

    def _settle(self) -> None:
        """Book the replies of the orders in the worker, in the order they were sent (engine
        thread), waiting for those still in flight. Every path that reads or changes this
        account's orders settles first, so it sees them as a serial broker would."""
        while self._pending:
            o, fut = self._pending.pop(0)

            def outcome(fut: Future[tuple[bool, list[dict[str, Any]] | None]] = fut) -> bool:
                placed, rows = fut.result()
                if rows is not None:
                    self._stash = [*(self._stash or []), *rows]
                return placed

            self._book_sent(o, outcome)

    def _worst_price(self, symbol: str, side: str, size: str) -> dict[str, Any]:
        """``get_worst_price_v3`` for a market order: once per bar, side and size for every
        account of the run (``SendDesk.worst``), reused for ``WORST_TTL_S`` at most."""
        bar = self._bar
        if bar is None:
            return self._retry("worst price", self.client.worst_price, symbol, side, size)
        key = (bar.seq, symbol, side, size)
        hit = self.desk.worst.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] <= WORST_TTL_S:
            return hit[1]
        data = self._retry("worst price", self.client.worst_price, symbol, side, size)
        if self.desk.bar_seq != bar.seq:  # only this bar's are kept
            self.desk.bar_seq, self.desk.worst = bar.seq, {}
        self.desk.worst[key] = (now, data)
        return data

    def _journal_sent(self, o: _Order, replaces: str = "") -> None:
        """Publish ``OrderSent`` for ``o``: the journal commits it before this returns (the
        bus is synchronous; ``engine.journal`` durable types), so before the request leaves."""
        self._sent.add(o.cid)
        bar = self._bar
        ts = bar.ts_event_ns if bar is not None else 0
        self._publish(OrderSent(
            ts_event_ns=ts, ts_init_ns=time.time_ns(), account=self.name, order_id=o.order_id,
            client_id=o.cid, side=o.side, type=o.type, qty=o.qty,  # type: ignore[arg-type]
            price=o.price, reduce_only=o.reduce_only, seq=o.seq, tag=o.tag, parent=o.parent,
            replaces=replaces))

    def _journal_reply(self, o: _Order, status: str, reason: str = "") -> None:
        bar = self._bar
        ts = bar.ts_event_ns if bar is not None else 0
        self._publish(OrderReply(ts_event_ns=ts, ts_init_ns=time.time_ns(), account=self.name,
                                 order_id=o.order_id, client_id=o.cid,
                                 status=status, reason=reason))  # type: ignore[arg-type]

    # -- restart -------------------------------------------------------------------------------
    def restore(self, events: list[Event]) -> None:
        """Rebuild the orders this broker had on the venue from the run's journal (the
        ``OrderSent`` / ``OrderReply`` / fills / cancels of its account):
        ``adapters.apex.reconcile.restore``."""
        from adapters.apex.reconcile import restore

        restore(self, events)

    def reconcile(self, journal: str = "", report_dir: Any = None) -> Any:
        """Compare the restored state with the venue before trading again and act on it
        (``adapters.apex.reconcile.reconcile``); returns the ``Reconciled`` report."""
        from adapters.apex.reconcile import reconcile

        return reconcile(self, journal, report_dir)

    def _drop_children(self, o: _Order) -> None:
        for c in [c for c in self._orders.values() if c.parent == o.order_id]:
            del self._orders[c.order_id]

    def _send(self, o: _Order, form: dict[str, Any]) -> bool:
        """Create the order, idempotently: after a lost reply look it up by clientId and resend
        the same clientId only if the venue does not have it. True once the venue has it.

        Raises:
            OrderRejected: the venue refused it.
            VenueError: transient errors past the retries, or anything else unexpected.
        """
        attempt = 0
        while True:
            try:
                self.client.create_order(**form)
                return True
            except DuplicateClientId:
                if self._lookup(o.cid) is not None:
                    return True
                raise
            except VenueStateUnknown as exc:
                logger.warning("%s: %s", self.name, exc)
                if self._lookup(o.cid) is not None:
                    return True  # accepted before the reply was lost: nothing to resend
                if attempt >= self.max_retries:
                    raise VenueError(f"create order {o.order_id} (clientId {o.cid}): reply lost "
                                     f"{attempt + 1} times and the venue does not have it"
                                     ) from exc
            except TransientVenueError as exc:
                if attempt >= self.max_retries:
                    raise VenueError(f"create order {o.order_id} (clientId {o.cid}): still "
                                     f"failing after {attempt} retries: {exc}") from exc
                self._backoff(attempt, exc)
            attempt += 1

    def _lookup(self, cid: str) -> dict[str, Any] | None:
        """The venue's order with clientId ``cid``, or None when it has none."""
        try:
            return self._retry(f"order clientId={cid}", self.client.order_by_client_id, cid)
        except OrderRejected as exc:
            if "NOT_FOUND" in str(exc).upper():
                return None
            raise

    def _cancel_cid(self, cid: str) -> None:
        priv = self.client.private
        self._retry(f"cancel clientId={cid}", self.client.call, f"cancel clientId={cid}",
                    priv.delete_order_by_client_order_id_v3, id=cid)

    def _retry(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except TransientVenueError as exc:
                if attempt >= self.max_retries:
                    raise VenueError(f"{what}: still failing after {attempt} retries: {exc}") \
                        from exc
                self._backoff(attempt, exc)
                attempt += 1

    def _backoff(self, attempt: int, exc: TransientVenueError) -> None:
        wait = min(self.backoff_cap_s, self.backoff_s * 2**attempt)
        if exc.retry_after is not None:
            wait = min(self.backoff_cap_s, max(wait, exc.retry_after))
        self.retries += 1
        logger.info("%s: %s; retry in %.2f s", self.name, exc, wait)
        self._sleep(wait)

    # -- fills ---------------------------------------------------------------------------------
    def _poll_fills(self, rows: list[dict[str, Any]] | None = None) -> None:
        """Book the new fills of the fills endpoint (``rows``: its answer, read by the worker;
        None: read it now)."""
        if self._polling:  # a handler of a fill being published asked again: the outer poll
            return  # publishes the rest, once each
        self._polling = True
        try:
            self._poll_fills_once(rows)
        finally:
            self._polling = False

    def venue_fills(self) -> list[dict[str, Any]]:
        """Every fill of the account's symbol since ``_fills_from_ms`` (all pages)."""
        rows: list[dict[str, Any]] = []
        page = 0
        while True:
            data = self._retry("fills", self.client.fills, symbol=self.symbol,
                               beginTimeInclusive=self._fills_from_ms, limit=100, page=page)
            batch = list((data or {}).get("orders") or [])
            rows.extend(batch)
            if len(batch) < 100:
                return rows
            page += 1

    def _unseen(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The fills of ours in ``rows`` not booked yet, oldest first."""
        new = [f for f in rows if str(f.get("id")) not in self._seen_fills
               and row_cid(f) in self._by_cid]
        new.sort(key=lambda f: (int(f.get("createdAt", 0)), int(f["id"])
                                if str(f.get("id", "")).isdigit() else 0))
        return new

    def _poll_fills_once(self, rows: list[dict[str, Any]] | None = None) -> None:
        self._settle()  # an order's reply is booked before its fills
        for f in self._unseen(self.venue_fills() if rows is None else rows):
            self._seen_fills.add(str(f["id"]))
            self._fills_from_ms = max(self._fills_from_ms, int(f.get("createdAt", 0)))
            self._on_fill(f)

    def poll_stream(self) -> None:
        """Book the fills the account's websocket pushed since the last call (engine thread).
        After a lost session, the fills endpoint is read first (a back-fill of what was pushed
        while nobody listened); fills already booked (by their venue id) are skipped."""
        if self.stream is None or self._polling:
            return
        from adapters.apex.account_stream import ACCOUNT_TOPIC, DOWN, UP

        self._settle()  # an order's reply is booked before its fills
        self._polling = True
        try:
            for kind, payload in self.stream.drain():
                if kind == DOWN:
                    self._stream_lost = True
                elif kind == UP and (self._stream_lost or payload > 1):
                    self._stream_lost = False
                    self.backfills += 1
                    logger.info("%s: account websocket back (session %d): back-filling from the "
                                "fills endpoint", self.name, payload)
                    self._poll_fills_once()
                elif kind == ACCOUNT_TOPIC:
                    self._book_pushed(payload.get("fills") or [])
        finally:
            self._polling = False

    def _book_pushed(self, rows: list[dict[str, Any]]) -> None:
        for f in self._unseen(rows):
            # not _fills_from_ms: the endpoint's window must still cover a fill the websocket
            # missed before this one
            self._seen_fills.add(str(f["id"]))
            self.ws_fills += 1
            self._on_fill(f)

    def _on_fill(self, f: dict[str, Any]) -> None:
        cid = row_cid(f)
        o = self._by_cid[cid]
        qty, price = float(f["size"]), float(f["price"])
        if o.cid == cid:
            o.filled += qty
            if o.type == "market" or o.filled >= o.qty - 1e-12:
                o.working = False
        if not o.reduce_only:  # an entry filled: its attached children are now on the venue
            for c in self._orders.values():
                if c.parent == o.order_id:
                    c.working = True
        ts_ns = int(f.get("createdAt", 0)) * 1_000_000
        bar = self._bar
        seq = -1
        if bar is not None:
            seq = bar.seq + 1 + (ts_ns - bar.ts_event_ns) // self._tf_ns(bar)
        fill = OrderFilled(
            ts_event_ns=ts_ns, ts_init_ns=time.time_ns(), account=self.name,
            order_id=o.order_id, side="buy" if f.get("side") == "BUY" else "sell", qty=qty,
            price=price, fee=float(f.get("fee", 0.0)),
            liquidity="maker" if str(f.get("liquidity", "")).upper() == "MAKER" else "taker",
            seq=int(seq), tag=o.tag, gap=bool(f.get("gap", False)),
        )
        self._publish(fill)
        if self.account.qty == 0.0:  # flat: the venue cancels reduce-only orders
            self._poll_canceled()

    @staticmethod
    def _tf_ns(bar: BarClosed) -> int:
        from engine.timeframes import timeframe_ns

        return timeframe_ns(bar.timeframe)

    def _poll_canceled(self) -> None:
        """Orders of ours the venue no longer works without a fill: canceled there."""
        self._settle()
        working = [o for o in self._orders.values() if o.working]
        if not working:
            return
        open_orders = self._retry("open orders", self.client.open_orders) or []
        open_cids = {row_cid(x) for x in open_orders}
        for o in working:
            if o.cid in open_cids:
                continue
            try:
                v = self._lookup(o.cid)
            except VenueError:
                continue
            if v is None or v.get("status") not in ("CANCELED", "FILLED"):
                continue
            o.working = False
            if v.get("status") == "FILLED":  # filled short of its size (a reduce-only order
                continue  # capped at the position): its fills are booked, nothing canceled
            self._canceled(o.order_id, f"canceled by the venue: {v.get('cancelReason', '')}")

    def _canceled(self, order_id: str, reason: str) -> None:
        bar = self._bar
        ts = bar.ts_event_ns if bar is not None else 0
        logger.info("%s: order %s canceled: %s", self.name, order_id, reason)
        self._publish(OrderCanceled(ts_event_ns=ts, ts_init_ns=ts, account=self.name,
                                    order_id=order_id, reason=reason))


def account_credentials(prefix: str) -> ApexCredentials | None:
    """The Apex credentials under environment prefix ``prefix`` (``APEX_X`` ->
    ``APEX_X_API_KEY``, ``APEX_X_API_SECRET``, ``APEX_X_API_PASSPHRASE``, ``APEX_X_ZK_SEEDS``),
    from the environment or ``.env``; None when ``<prefix>_API_KEY`` is not set.

    Raises:
        ConfigError: the key is set but the secret or passphrase is not (names the variables).
    """
    import os
    from pathlib import Path

    from adapters.apex.client import ApexCredentials
    from engine.config import _load_dotenv

    env = {**_load_dotenv(Path(".env")), **os.environ}
    names = [f"{prefix}_{n}" for n in ("API_KEY", "API_SECRET", "API_PASSPHRASE", "ZK_SEEDS")]
    key, secret, passphrase, seeds = (env.get(n, "") for n in names)
    if not key:
        return None
    missing = [n for n, v in zip(names[1:3], (secret, passphrase), strict=True) if not v]
    if missing:
        raise ConfigError(f"{names[0]} is set but {' and '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not; export them or add them "
                          "to .env (the API page of the ApeX Omni web UI shows all three)")
    return ApexCredentials(key, secret, passphrase, seeds)


def account_clients(config: RunConfig, client: ApexClient | None = None
                    ) -> dict[str, ApexClient]:
    """One ``ApexClient`` per strategy of a live ``config``, each on the strategy's own Apex
    account: ``apex_env: APEX_X`` names its credentials' environment prefix (default ``APEX``:
    ``APEX_API_KEY``...; ``client``, when given, is that default account's).

    Raises:
        ConfigError: two strategies on one account (the same prefix, or two prefixes holding one
            API key): the venue nets every order of a symbol into one position per account, so
            they would close each other's trades; or a prefix whose key is not set.
    """
    from adapters.apex.client import ApexClient, credentials_from_env

    by_prefix: dict[str, list[str]] = {}
    for s in config.strategies:
        by_prefix.setdefault(s.apex_env or "APEX", []).append(s.name)
    for prefix, names in by_prefix.items():
        if len(names) > 1:
            raise ConfigError(
                f"mode: live trades one strategy per Apex account: strategies "
                f"{', '.join(names)} would share the account of {prefix}_API_KEY, and the venue "
                "nets every order of a symbol into one position, so they would close each "
                "other's trades; give each strategy its own account with apex_env (e.g. "
                f"`- {{name: {names[1]}, kind: ..., apex_env: APEX_{names[1].upper()}}}` and "
                f"APEX_{names[1].upper()}_API_KEY, _API_SECRET, _API_PASSPHRASE, _ZK_SEEDS in the "
                "environment or .env; configs/live.yaml), or use mode: paper to run them side "
                "by side")
    out: dict[str, ApexClient] = {}
    keys: dict[str, str] = {}  # API key -> the strategy trading that account
    for s in config.strategies:
        prefix = s.apex_env or "APEX"
        if prefix == "APEX":
            c = client or ApexClient(config.data.venue or "", timeout=config.data.timeout_s)
            creds = c._credentials or credentials_from_env()
        else:
            creds = account_credentials(prefix)
            if creds is None:
                raise ConfigError(
                    f"strategies[{s.name}]: apex_env {prefix}: {prefix}_API_KEY is not set; "
                    f"export {prefix}_API_KEY, {prefix}_API_SECRET, {prefix}_API_PASSPHRASE and "
                    f"{prefix}_ZK_SEEDS (that account's keys) or add them to .env")
            c = ApexClient(config.data.venue or "", creds, timeout=config.data.timeout_s)
        if creds is not None:
            if creds.key in keys:
                raise ConfigError(
                    f"mode: live trades one strategy per Apex account: strategies "
                    f"{keys[creds.key]} and {s.name} name different apex_env prefixes holding "
                    "the same API key, so they would share one account and net into one "
                    "position; give each strategy its own account's keys")
            keys[creds.key] = s.name
        out[s.name] = c
    return out


def _account_stream(url: str, client: ApexClient, name: str) -> AccountStream:
    """Start ``client``'s account websocket at ``url`` and wait (5 s at most) for its login;
    a venue that does not answer leaves the broker on the fills endpoint, with reconnects."""
    import weakref

    from adapters.apex.account_stream import AccountStream
    from adapters.apex.client import credentials_from_env

    creds = client._credentials or credentials_from_env()
    if creds is None:
        raise ConfigError("data.websocket needs the account's API key: set APEX_API_KEY, "
                          "APEX_API_SECRET and APEX_API_PASSPHRASE (see docs/apex.md)")
    stream = AccountStream(url, creds, name=name).start()
    if not stream.wait_ready(5.0):
        logger.warning("%s: account websocket %s not logged in within 5 s: fills come from the "
                       "fills endpoint until it is", name, stream.endpoint)
    weakref.finalize(client, stream.stop)
    return stream


def flatten(client: ApexClient, symbol: str, *, max_retries: int = 5,
            sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """The kill switch (``tradebot flatten``): cancel every open order of ``symbol``, then close
    every position in it with a reduce-only ``MARKET`` order at the worst-price guard. Returns
    what it did, one line each. Idempotent: a second call finds nothing to do.

    Raises:
        VenueError: the venue refused or stayed unavailable (the message says what is left).
    """
    from engine.portfolio import Account

    done: list[str] = []
    acct = Account("flatten", symbol, 0.0, lambda e: None)
    broker = ApexBroker(acct, lambda e: None, Costs.from_bps(0, 0, 0), client=client,
                        symbol=symbol, run_id=f"flatten-{time.time_ns()}",
                        max_retries=max_retries, sleep=sleep)
    r = broker.rules
    n_open = len([o for o in broker._retry("open orders", client.open_orders) or []
                  if str(o.get("symbol", "")).replace("-", "") == r.symbol.replace("-", "")])
    broker._retry("cancel open orders", client.delete_open_orders, r.symbol)
    done.append(f"canceled {n_open} open order(s) of {r.symbol}")
    for p in broker._retry("account", client.account).get("positions") or []:
        size = float(p.get("size") or 0.0)
        if str(p.get("symbol", "")).replace("-", "") != r.symbol.replace("-", "") or size == 0:
            continue
        long = str(p.get("side", "")).upper() == "LONG"
        acct.qty = size if long else -size
        cmd = SubmitOrder(ts_event_ns=0, ts_init_ns=0, account="flatten", order_id="close",
                          side="sell" if long else "buy", type="market", seq=-1, qty=math.inf,
                          reduce_only=True, tag="FLATTEN")
        o = _Order("close", broker.cid("close"), cmd.side, "market", size, math.nan, True,
                   "FLATTEN", -1)
        form = broker._form(cmd, o)
        broker._send(o, form)
        done.append(f"closed the {p.get('side')} position of {_s(r.size(size))} {r.symbol} "
                    f"(reduce-only MARKET, worst price {form['price']})")
    if len(done) == 1:
        done.append(f"no open position in {r.symbol}")
    return done
