"""The exit-strategy plugin contract, and the runner that executes a plugin's decisions.

**Exits decide, the engine executes.** An exit plugin is a pure decision object: from a trade
setup it plans the initial stop and partial targets; on every bar close while the position is open
it returns intents (move the stop, take a partial, close everything). It never places orders,
sleeps or does I/O, and is never told the mode, so it runs unchanged in backtest, paper and live.
``ExitRunner`` turns intents into orders on the bus; the broker fills them under the engine's one
intrabar policy (``engine.fills``). A stop moved on a bar's close takes effect from the next bar.

``plan`` runs when the entry signal is raised, before the entry order is sent: it may read the
setup and the bars/features up to the signal's bar (``setup.seq``), nothing later (the fill's
price is not known yet). The entry carries the plan's stop and first partial target as attached
orders (``SubmitOrder.stop_loss`` / ``take_profit``, ``take_profit_frac`` of the filled size):
the broker (and the venue: Apex's ``isOpenTpslOrder``) makes them work from the entry's fill, so
the position is never without its stop. ``MoveStop`` moves that attached stop (engine id
``<entry id>-stop_loss``); further partials are placed at the fill as reduce-only orders.

A plugin class has:

- ``API_VERSION: ClassVar[tuple[int, int]]``: the plugin API (major, minor) it was written for
  (a plain int ``M`` means ``(M, 0)``); it loads when the major equals the engine's and the minor
  is at most the engine's (``api_version_problem``), so a plugin for 1.0 runs on 1.1;
- ``Params``: a pydantic model of its YAML params (``extra="forbid"``);
- ``__init__(self, params)``;
- ``plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan``;
- ``on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]``;
- optionally ``required_features(params) -> list[FeatureConfig | AnyFeature]`` (API 1.1), the
  one declaration of what it reads, the same as an entry rule's (API 1.0 plugins declared
  ``NEEDS_HANDLERS``, handler method names; still honoured).

Plugin authors import all of this from one public module, ``strategies.api``; register the class
under the entry-point group ``tradebot.exit_strategies`` (docs/writing-strategies.md).

API history: 1.0 the contract above without ``required_features``; 1.1 ``required_features``
on exit plugins, ``strategies.api``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import msgspec
from pydantic import BaseModel

from engine.bars import BarStore
from engine.errors import PluginLoadError, StrategyError
from engine.events import (
    BarClosed,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    Side,
    SignalRaised,
    SubmitOrder,
)
from engine.features import FeatureView
from engine.portfolio import Account

API_VERSION: tuple[int, int] = (1, 1)  # (major, minor) of the plugin API: see the module doc
DEFAULT_MAX_HOLD_BARS = 672  # 7 days of 15m bars, the reference bot's hold limit


# -- intents ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MoveStop:
    """Move the protective stop to ``price`` (from the next bar on)."""

    price: float
    reason: str = "TRAIL_STOP"


@dataclass(frozen=True, slots=True)
class TakePartial:
    """Sell (long) / buy back (short) ``fraction_of_initial`` of the initial size.

    With a finite ``limit_price`` a resting limit order is placed; with NaN a market order.
    """

    fraction_of_initial: float
    limit_price: float = math.nan
    reason: str = "PARTIAL_TARGET"


@dataclass(frozen=True, slots=True)
class CloseAll:
    """Close the whole remaining position at market."""

    reason: str


ExitIntent = MoveStop | TakePartial | CloseAll


# -- what a plugin sees ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TradeSetup:
    """The signal's setup: side, entry (signal close), ATR stop, target candidates, bar seq."""

    side: Side
    seq: int
    entry_price: float
    stop_price: float
    atr: float
    targets: tuple[float, ...] = ()
    alarm_id: str = ""

    @classmethod
    def from_signal(cls, s: SignalRaised) -> TradeSetup:
        return cls(s.side, s.seq, s.entry_price, s.stop_price, s.atr, s.targets, s.alarm_id)


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """Initial orders: the protective stop and resting partial targets."""

    stop_price: float
    partials: tuple[TakePartial, ...] = ()
    max_hold_bars: int = DEFAULT_MAX_HOLD_BARS


class PositionView(msgspec.Struct, frozen=True):
    """Read-only view of the open position handed to ``on_bar`` (a msgspec struct: made once
    per bar per open position, so it must be cheap to build)."""

    side: Side
    entry_price: float  # average fill price
    entry_seq: int  # bar on which the entry filled
    initial_qty: float
    qty: float  # remaining (> 0)
    stop_price: float  # the working stop
    bars_held: int  # bars since the entry bar, the entry bar counting as 1
    partials_filled: int
    last_partial_seq: int  # bar of the most recent partial fill, -1 before the first
    setup: TradeSetup

    @property
    def sign(self) -> int:
        return 1 if self.side == "long" else -1


@dataclass(frozen=True, slots=True)
class ExitContext:
    """Read-only access to bars, features and handlers up to the current bar.

    No clock, no broker."""

    bars: BarStore
    features: FeatureView
    atr_column: str
    handlers: Mapping[str, Any] = field(default_factory=dict)

    def atr(self, seq: int) -> float:
        return self.features.value(self.atr_column, seq)

    def handler_with(self, attribute: str) -> Any:
        """The first feature handler offering ``attribute`` (e.g. ``profile_at``), or None."""
        for h in self.handlers.values():
            if hasattr(h, attribute):
                return h
        return None


class ExitStrategy(Protocol):
    API_VERSION: ClassVar[tuple[int, int] | int]
    Params: ClassVar[type[BaseModel]]

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan: ...

    def on_bar(
        self, pos: PositionView, bar: BarClosed, ctx: ExitContext
    ) -> Sequence[ExitIntent]: ...


def api_version(declared: Any) -> tuple[int, int] | None:
    """A declared ``API_VERSION`` as (major, minor): ``1`` -> (1, 0), ``(1, 1)`` -> (1, 1);
    None if it is neither."""
    if isinstance(declared, int) and not isinstance(declared, bool):
        return (declared, 0)
    if (isinstance(declared, tuple) and len(declared) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in declared)):
        return (declared[0], declared[1])
    return None


def api_version_problem(declared: Any) -> str | None:
    """Why a plugin declaring ``API_VERSION = declared`` cannot load here (None: it can).

    Compatible: the same major and a minor at most the engine's (a plugin written for 1.0 runs on
    a 1.1 engine; one written for 1.2 needs an engine that has 1.2).
    """
    have = f"{API_VERSION[0]}.{API_VERSION[1]}"
    v = api_version(declared)
    if v is None:
        return (f"API_VERSION is {declared!r}; declare the plugin API it was written for as "
                f"(major, minor), e.g. API_VERSION = {API_VERSION} (this tradebot has {have})")
    want = f"{v[0]}.{v[1]}"
    if v[0] > API_VERSION[0] or (v[0] == API_VERSION[0] and v[1] > API_VERSION[1]):
        return (f"it was written for plugin API {want}, newer than this tradebot's {have}: "
                "upgrade tradebot (pip install -U ai-trading-bot)")
    if v[0] < API_VERSION[0]:
        return (f"it was written for plugin API {want}, and this tradebot's is {have} (major "
                f"{API_VERSION[0]} changed the contract): upgrade the plugin, or use a tradebot "
                f"with plugin API {v[0]}.x")
    return None


def check_exit_contract(name: str, cls: Any) -> None:
    """Refuse a plugin that does not honour the contract, saying what is missing."""
    problems = []
    version = api_version_problem(getattr(cls, "API_VERSION", None))
    if version is not None:
        problems.append(version)
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        problems.append("Params must be a pydantic BaseModel subclass")
    for meth in ("plan", "on_bar"):
        if not callable(getattr(cls, meth, None)):
            problems.append(f"method {meth}() is missing")
    req = getattr(cls, "required_features", None)
    if req is not None and not callable(req):
        problems.append("required_features must be a static method (params) -> list of "
                        "FeatureConfig / AnyFeature")
    if problems:
        raise PluginLoadError(f"exit strategy {name!r} ({cls!r}): " + "; ".join(problems))


# -- the runner ------------------------------------------------------------------------------------
class ExitRunner:
    """Trades one account: enters on signals when flat, then executes one exit plugin's intents."""

    def __init__(
        self,
        name: str,
        plugin: Any,
        account: Account,
        ctx: ExitContext,
        publish: Callable[[Event], None],
        position_size_frac: float,
        sides: tuple[Side, ...] = ("long", "short"),
    ) -> None:
        self.name = name
        self.plugin = plugin
        self.account = account
        self.ctx = ctx
        self._publish = publish
        self.frac = position_size_frac
        self.sides = sides
        # operator pause (a ZeroMQ bridge command): no new entries; open positions are managed
        self.entries_paused = False
        self._n = 0
        self._pending: TradeSetup | None = None  # the setup of the entry order in flight
        self._pending_plan: ExitPlan | None = None  # its plan, made at the signal
        self._entry_id = ""
        self._attached_sl = False  # the entry in flight carries the plan's stop (attached)
        self._attached_tp = False  # ... and its first partial target
        self._setup: TradeSetup | None = None
        self._plan: ExitPlan | None = None
        self._stop_id = ""
        self._stop_price = math.nan
        self._initial_qty = 0.0
        self._partials_filled = 0
        self._last_partial_seq = -1
        self._entry_seq = -1

    # -- events --------------------------------------------------------------------------------
    def on_signal_raised(self, sig: SignalRaised) -> None:
        if (self.entries_paused or self.account.qty != 0.0 or self._pending is not None
                or sig.side not in self.sides):
            return
        setup = TradeSetup.from_signal(sig)
        # planned at the signal (the plan reads the setup and bars up to the signal's only:
        # module doc), so the entry carries the stop and the first target as attached orders
        try:
            plan = self.plugin.plan(setup, self.ctx)
        except Exception as exc:
            raise StrategyError(
                f"exit strategy {self.name!r} raised in plan at seq {sig.seq}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        sl = plan.stop_price if math.isfinite(plan.stop_price) else math.nan
        first = plan.partials[0] if plan.partials else None
        if first is not None and not (math.isfinite(first.limit_price)
                                      and first.fraction_of_initial > 0.0):
            first = None  # a market partial (or nothing to take) is not an attachable target
        self._pending = setup
        self._pending_plan = plan
        self._attached_sl = math.isfinite(sl)
        self._attached_tp = first is not None
        # known before publishing: a refusal can arrive while the order is being submitted
        self._entry_id = f"{self.name}-{self._n + 1}"
        self._submit(sig, "buy" if sig.side == "long" else "sell", "market",
                     equity_frac=self.frac, tag="ENTRY", stop_loss=sl,
                     take_profit=first.limit_price if first is not None else math.nan,
                     take_profit_frac=first.fraction_of_initial if first is not None
                     else math.nan,
                     take_profit_tag=first.reason if first is not None else "")

    def on_order_canceled(self, ev: OrderCanceled) -> None:
        """An entry that will never fill (refused by a risk limit or the venue, or sized to
        nothing) frees the runner for the next signal."""
        if self._pending is not None and ev.order_id == self._entry_id:
            self._pending = None
            self._pending_plan = None

    def on_order_filled(self, fill: OrderFilled) -> None:
        if fill.account != self.name:
            return
        if fill.tag == "ENTRY" and self._pending is not None:
            self._open(fill)
        elif fill.tag != "ENTRY" and fill.order_id != self._stop_id and self.account.qty != 0:
            self._partials_filled += 1
            self._last_partial_seq = fill.seq
        if self.account.qty == 0.0 and fill.tag != "ENTRY":
            self._reset(fill)

    def on_bar_closed(self, bar: BarClosed) -> None:
        if self.account.qty == 0.0 or self._setup is None:
            return
        acct = self.account
        pos = PositionView(
            side=self._setup.side, entry_price=acct.avg_price, entry_seq=self._entry_seq,
            initial_qty=self._initial_qty, qty=abs(acct.qty), stop_price=self._stop_price,
            bars_held=bar.seq - self._entry_seq + 1, partials_filled=self._partials_filled,
            last_partial_seq=self._last_partial_seq, setup=self._setup,
        )
        assert self._plan is not None
        if pos.bars_held >= self._plan.max_hold_bars:
            self._apply(CloseAll("HOLD_LIMIT"), bar, pos)
            return
        try:
            intents = self.plugin.on_bar(pos, bar, self.ctx)
        except Exception as exc:
            raise StrategyError(
                f"exit strategy {self.name!r} raised in on_bar at seq {bar.seq}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for intent in intents or ():
            self._apply(intent, bar, pos)

    # -- helpers -------------------------------------------------------------------------------
    def _open(self, fill: OrderFilled) -> None:
        """The entry filled: its attached stop and first target (``SubmitOrder.stop_loss`` /
        ``take_profit``, working on the broker from the fill) become the working stop and the
        first partial; what was not attached (a plan without a finite stop, further partials,
        a market partial) is placed now, as reduce-only orders."""
        setup = self._pending
        assert setup is not None
        plan = self._pending_plan
        if plan is None:  # (an entry restored without its plan)
            plan = self.plugin.plan(setup, self.ctx)
        self._pending = None
        self._pending_plan = None
        self._setup = setup
        self._initial_qty = fill.qty
        self._entry_seq = fill.seq
        self._partials_filled = 0
        self._last_partial_seq = -1
        self._plan = plan
        exit_side = "sell" if setup.side == "long" else "buy"
        if self._attached_sl:  # MoveStop / trailing: cancel-and-replace of the attached stop
            self._stop_id = f"{self._entry_id}-stop_loss"
        else:
            self._stop_id = self._submit(fill, exit_side, "stop", qty=math.inf,
                                         price=plan.stop_price, reduce_only=True,
                                         tag="STOP_LOSS")
        self._stop_price = plan.stop_price
        for i, p in enumerate(plan.partials):
            if i == 0 and self._attached_tp:
                continue  # working as the entry's attached target
            self._partial(fill, p)

    def _partial(self, ev: Event, p: TakePartial) -> None:
        exit_side = "sell" if self._setup is not None and self._setup.side == "long" else "buy"
        qty = p.fraction_of_initial * self._initial_qty
        typ = "limit" if math.isfinite(p.limit_price) else "market"
        self._submit(ev, exit_side, typ, qty=qty, price=p.limit_price, reduce_only=True,
                     tag=p.reason)

    def _apply(self, intent: ExitIntent, bar: BarClosed, pos: PositionView) -> None:
        if isinstance(intent, MoveStop):
            if not math.isfinite(intent.price) or intent.price == self._stop_price:
                return
            self._stop_price = intent.price
            self._publish(ModifyOrder(ts_event_ns=bar.ts_event_ns, ts_init_ns=bar.ts_init_ns,
                                      account=self.name, order_id=self._stop_id,
                                      price=intent.price, reason=intent.reason, tag=intent.reason))
        elif isinstance(intent, TakePartial):
            self._partial(bar, intent)
        elif isinstance(intent, CloseAll):
            exit_side = "sell" if pos.side == "long" else "buy"
            self._submit(bar, exit_side, "market", qty=math.inf, reduce_only=True,
                         tag=intent.reason)
        else:
            raise StrategyError(f"exit strategy {self.name!r} returned {intent!r}, not an intent")

    def _reset(self, fill: OrderFilled) -> None:
        why = fill.tag
        if self._stop_id:  # routed to this account's broker only, stamped with the closing fill
            self._publish(CancelOrder(ts_event_ns=fill.ts_event_ns, ts_init_ns=fill.ts_init_ns,
                                      account=self.name,
                                      order_id=self._stop_id, reason=f"position closed ({why})"))
        self._setup = None
        self._plan = None
        self._stop_id = ""
        self._stop_price = math.nan

    def _submit(self, ev: Event, side: str, typ: str, *, qty: float = 0.0,
                equity_frac: float = 0.0, price: float = math.nan, reduce_only: bool = False,
                tag: str, **attached: Any) -> str:
        self._n += 1
        oid = f"{self.name}-{self._n}"
        seq = getattr(ev, "seq", -1)
        self._publish(SubmitOrder(
            ts_event_ns=ev.ts_event_ns, ts_init_ns=ev.ts_init_ns, account=self.name,
            order_id=oid, side=side, type=typ, seq=seq, qty=qty,  # type: ignore[arg-type]
            equity_frac=equity_frac, price=price, reduce_only=reduce_only, tag=tag, **attached,
        ))
        return oid
