"""Wire v1: the engine's events and commands on ZeroMQ, as msgpack (the codec only; no sockets).

Agreed contract (``WIRE.md``); the ZeroMQ sockets live in ``adapters/zmq_bridge.py`` (engine
side) and ``adapters/zmq_client.py`` (clients: the UI, the Telegram front end). This module
imports no zmq, so the UI and any tool can decode the wire cheaply. Never pickle.

**Events** (PUB, default ``tcp://127.0.0.1:5555``): multipart ``[topic, payload]``.

- ``topic`` = ``b"<kind>.<SYMBOL>"``; subscribe by prefix (``b"bar."``; ``b""`` for all). Kinds:
  ``bar`` (BarClosed), ``features`` (the feature row of a closed bar), ``signal``
  (SignalRaised), ``order`` (SubmitOrder, CancelOrder, ModifyOrder, OrderAccepted,
  OrderCanceled), ``fill`` (OrderFilled), ``trade`` (TradeClosed), ``equity`` (every strategy's
  equity at a bar close), ``status`` (heartbeat, about once a second), ``alert`` (HandlerFailed,
  bridge problems), ``command`` (CommandApplied: a command the engine applied or refused),
  ``event`` (any engine event type added later).
- ``payload`` = msgpack map ``{"v": 1, "seq", "run", "type", "ts", "data"}``: ``seq`` is one
  per-run counter from 1, +1 per message on every topic (a subscriber sees gaps); ``run`` the
  run id (a new id = the engine restarted: resync); ``type`` the event class name or the kind
  (``features``, ``equity``, ``status``); ``ts`` int ms UTC; ``data`` the event's fields as in
  ``engine/events.py`` (``msgspec.to_builtins``; floats stay floats, NaN allowed; tuples become
  lists). ``features`` data: ``{"bar_seq", "values": {column: float}}``; ``equity`` data:
  ``{"bar_seq", "equity": {strategy: float}}``; ``status`` data: see ``STATUS_FIELDS``.

**Requests** (ROUTER, default ``tcp://127.0.0.1:5556``): a DEALER sends ``[b"", request]`` and
gets ``[b"", reply]``. A request is a map with ``"id"`` (str, echoed) and ``"op"``; a reply is
``{"id", "ok": bool, "error": str | None, "result": ...}`` (``snapshot`` replies also carry
``"seq"`` and ``"snapshot"``). ``OPS`` lists the ops and their arguments; ``TRADING_OPS`` are
refused in backtest mode (a backtest or a replay is not live).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from typing import Any, Literal

import msgspec

from engine import events as _ev

VERSION = 1
DEFAULT_PUB = "tcp://127.0.0.1:5555"
DEFAULT_COMMANDS = "tcp://127.0.0.1:5556"
DEFAULT_TIMEOUT_S = 2.0

# engine event class -> topic kind
KIND_OF: dict[str, str] = {
    "BarClosed": "bar",
    "SignalRaised": "signal",
    "SubmitOrder": "order",
    "CancelOrder": "order",
    "ModifyOrder": "order",
    "OrderAccepted": "order",
    "OrderCanceled": "order",
    "OrderFilled": "fill",
    "TradeClosed": "trade",
    "HandlerFailed": "alert",
    "CommandApplied": "command",
}
KINDS = ("bar", "features", "signal", "order", "fill", "trade", "equity", "status", "alert",
         "command", "event")

# every engine event type by name (new events in engine/events.py are picked up automatically)
EVENT_TYPES: dict[str, type[_ev.Event]] = {
    name: obj
    for name, obj in vars(_ev).items()
    if isinstance(obj, type) and issubclass(obj, _ev.Event) and obj is not _ev.Event
}

STATUS_FIELDS = (
    "mode",  # "backtest" | "paper" | "live"
    "symbol", "timeframe",
    "run",  # run id
    "bar_seq",  # last published bar seq (-1 before the first)
    "last_bar_ts",  # its close time, ms UTC (0 before the first)
    "paused",  # entries paused
    "alive",  # the engine is running (False once the run finished)
    "finished",  # the run reached the end of its data
    "speed",  # replay pace in bars per second (0 = as fast as possible)
    "sent", "skipped", "dropped",  # publisher counters (see adapters/zmq_bridge.py)
    "accepts",  # the ops this engine accepts now
)

# op -> (required args, optional args)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ping": ((), ()),
    "snapshot": ((), ("bars",)),
    "setup": ((), ("alarm_id",)),
    "pause": ((), ("reason",)),
    "resume": ((), ("reason",)),
    "close": (("strategy",), ("reason",)),
    "flatten": ((), ("reason",)),
    "buy": (("strategy",), ("alarm_id", "price", "stop", "target", "reason")),
    "sell": (("strategy",), ("alarm_id", "price", "stop", "target", "reason")),
    # alert-first (execution.confirm, engine/confirm.py): send or drop the entries held on an
    # alarm; accepted only by an engine that holds entries ("take" in the status's accepts)
    "take": (("alarm_id",), ("reason",)),
    "skip": (("alarm_id",), ("reason",)),
}
TRADING_OPS = frozenset({"close", "flatten", "buy", "sell"})
# ops the engine thread applies (the others the bridge answers from its own state)
ENGINE_OPS = frozenset({"pause", "resume", "close", "flatten", "buy", "sell", "take", "skip"})
CONFIRM_OPS = frozenset({"take", "skip"})

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


class WireError(ValueError):
    """A payload or request that does not follow wire v1 (the reply's ``error`` says why)."""


# -- events -----------------------------------------------------------------------------------
def kind_of(event_type: str) -> str:
    """Topic kind of an event class name (``event`` for types this table does not know)."""
    return KIND_OF.get(event_type, "event")


def topic(kind: str, symbol: str) -> bytes:
    return f"{kind}.{symbol}".encode()


def encode_payload(seq: int, run: str, type_: str, ts_ms: int, data: Any) -> bytes:
    """One message payload. ``data`` may be an engine event itself (encoded as its fields)."""
    return _enc.encode({"v": VERSION, "seq": seq, "run": run, "type": type_, "ts": ts_ms,
                        "data": data})


def encode_event(event: _ev.Event, seq: int, run: str, symbol: str) -> tuple[bytes, bytes]:
    """``(topic, payload)`` of an engine event (``ts`` from its ``ts_event_ns``)."""
    name = type(event).__name__
    return (topic(kind_of(name), symbol),
            encode_payload(seq, run, name, event.ts_event_ns // 1_000_000, event))


def decode(payload: bytes) -> dict[str, Any]:
    """A payload (event message, request or reply) as a plain dict.

    Raises:
        WireError: not msgpack, not a map, or (event messages) another wire version.
    """
    try:
        out = _dec.decode(payload)
    except msgspec.DecodeError as exc:
        raise WireError(f"not a msgpack payload: {exc}") from None
    if not isinstance(out, dict):
        raise WireError(f"payload is a {type(out).__name__}, not a map")
    v = out.get("v", VERSION)
    if v != VERSION:
        raise WireError(f"wire version {v!r}; this side speaks {VERSION}")
    return out


def to_event(message: dict[str, Any]) -> _ev.Event:
    """The typed engine event carried by a decoded message (``type`` an engine event class).

    Raises:
        WireError: the type is not an engine event or the data does not fit it.
    """
    cls = EVENT_TYPES.get(message.get("type", ""))
    if cls is None:
        raise WireError(f"message type {message.get('type')!r} is not an engine event")
    try:
        return msgspec.convert(message["data"], cls)
    except (msgspec.ValidationError, KeyError) as exc:
        raise WireError(f"{cls.__name__} data does not fit: {exc}") from None


def nan_to_none(x: Any) -> Any:
    """For JSON-minded consumers (Dash stores): a NaN or infinite float -> None."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


# -- requests and replies -----------------------------------------------------------------------
_ids = itertools.count(1)


def new_id(prefix: str = "req") -> str:
    """A request id unique within this process (and across processes on one host)."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}-{time.monotonic_ns() % 1_000_000}"


def request(op: str, id: str | None = None, **args: Any) -> dict[str, Any]:
    """A request map (with a fresh id unless one is given)."""
    return {"id": id or new_id(op), "op": op, **args}


def encode(obj: Any) -> bytes:
    """msgpack of a request, reply or any plain structure (engine events encode as maps)."""
    return _enc.encode(obj)


def validate_request(req: Any) -> tuple[str, str, dict[str, Any]]:
    """``(id, op, args)`` of a decoded request.

    Raises:
        WireError: not a map, no/blank id, unknown op, a missing or unknown argument; the message
            says which and what is valid.
    """
    if not isinstance(req, dict):
        raise WireError(f"a request is a map with 'id' and 'op', got {type(req).__name__}")
    rid = req.get("id")
    if not isinstance(rid, str) or not rid:
        raise WireError("a request needs a non-empty string 'id' (the reply echoes it)")
    op = req.get("op")
    if op not in OPS:
        raise WireError(f"unknown op {op!r}; ops are {sorted(OPS)}")
    need, optional = OPS[op]
    args = {k: v for k, v in req.items() if k not in ("id", "op", "v")}
    missing = [k for k in need if args.get(k) in (None, "")]
    if missing:
        raise WireError(f"op {op!r} needs {missing}")
    unknown = sorted(set(args) - set(need) - set(optional))
    if unknown:
        raise WireError(f"op {op!r} does not take {unknown}; it takes {list(need + optional)}")
    return rid, op, args


def reply(rid: str, ok: bool, error: str | None = None, result: Any = None,
          **extra: Any) -> dict[str, Any]:
    return {"id": rid, "ok": ok, "error": error, "result": result, **extra}


# -- subscriber side ----------------------------------------------------------------------------
SeqVerdict = Literal["ok", "dup", "gap", "restart"]


class SeqTracker:
    """The subscriber's sequence rule (clone pattern).

    ``reset(run, seq)`` after applying a snapshot; then ``check(run, seq)`` per message:
    ``"dup"`` (seq <= last: already in the snapshot, drop it), ``"ok"`` (the next one, apply it),
    ``"gap"`` (messages were lost: apply nothing, take a new snapshot), ``"restart"`` (another run
    id: the engine restarted, take a new snapshot).
    """

    __slots__ = ("gaps", "last", "run")

    def __init__(self) -> None:
        self.run: str | None = None
        self.last = 0
        self.gaps = 0

    def reset(self, run: str | None, seq: int) -> None:
        self.run, self.last = run, seq

    def check(self, run: str, seq: int) -> SeqVerdict:
        if self.run is not None and run != self.run:
            return "restart"
        if seq <= self.last:
            return "dup"
        if seq != self.last + 1:
            self.gaps += 1
            return "gap"
        self.last = seq
        return "ok"
