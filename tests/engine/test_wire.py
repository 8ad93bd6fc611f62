"""Wire v1 codec (engine/wire.py): every engine event round-trips through msgpack, requests are
validated with a reason, and the subscriber's sequence rule sorts duplicates, gaps and restarts."""

from __future__ import annotations

import math
import typing

import msgspec
import pytest

from engine import events as ev
from engine import wire


def _all_event_types() -> list[type[ev.Event]]:
    out, todo = [], list(ev.Event.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(out, key=lambda c: c.__name__)


def _value(t: msgspec.inspect.Type, i: int) -> object:
    """A non-default value of field type ``t`` (so a dropped field would show)."""
    T = msgspec.inspect
    if isinstance(t, T.IntType):
        return 1_700_000_000_000_000_000 + i
    if isinstance(t, T.FloatType):
        return 12345.5 + i
    if isinstance(t, T.BoolType):
        return True
    if isinstance(t, T.StrType):
        return f"s{i}"
    if isinstance(t, T.LiteralType):
        return t.values[-1]
    if isinstance(t, T.VarTupleType | T.ListType):  # of its item type (floats, strings)
        return (_value(t.item_type, i), _value(t.item_type, i + 1))
    if isinstance(t, T.DictType):
        return {"strategy": "poc_target", "price": 1.25}
    if isinstance(t, T.UnionType):
        return _value(t.types[0], i)
    if isinstance(t, T.AnyType):
        return {"k": i}
    raise AssertionError(f"no example value for {t}; extend _value")


def _example(cls: type[ev.Event]) -> ev.Event:
    info = msgspec.inspect.type_info(cls)
    return cls(**{f.name: _value(f.type, i) for i, f in enumerate(info.fields)})


EVENT_TYPES = _all_event_types()


def test_every_event_type_is_on_the_wire_table():
    # a new event in engine/events.py gets a topic kind ("event" at least) and a decoder
    assert {c.__name__ for c in EVENT_TYPES} == set(wire.EVENT_TYPES)
    assert "CommandApplied" in wire.EVENT_TYPES


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_event_round_trip(cls):
    event = _example(cls)
    top, payload = wire.encode_event(event, 7, "run-1", "BTC-USDT")
    assert top == f"{wire.kind_of(cls.__name__)}.BTC-USDT".encode()
    msg = wire.decode(payload)
    assert msg["v"] == 1 and msg["seq"] == 7 and msg["run"] == "run-1"
    assert msg["type"] == cls.__name__
    assert msg["ts"] == event.ts_event_ns // 1_000_000
    fields = msgspec.to_builtins(event)  # tuples arrive as lists (msgpack has arrays only)
    assert msg["data"] == {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
    assert wire.to_event(msg) == event


def test_nan_survives_and_tuples_become_lists():
    s = ev.SubmitOrder(ts_event_ns=1, ts_init_ns=1, account="a", order_id="o", side="buy",
                       type="market", seq=3)
    data = wire.decode(wire.encode_event(s, 1, "r", "X")[1])["data"]
    assert math.isnan(data["price"]) and math.isnan(data["stop_loss"])
    sig = _example(ev.SignalRaised)
    assert isinstance(wire.decode(wire.encode_event(sig, 1, "r", "X")[1])["data"]["targets"], list)
    assert wire.nan_to_none(float("nan")) is None and wire.nan_to_none(1.5) == 1.5


def test_decode_refuses_garbage_and_other_versions():
    with pytest.raises(wire.WireError, match="msgpack"):
        wire.decode(b"\xc1")
    with pytest.raises(wire.WireError, match="not a map"):
        wire.decode(wire.encode([1, 2]))
    with pytest.raises(wire.WireError, match="version 2"):
        wire.decode(wire.encode({"v": 2, "seq": 1}))
    with pytest.raises(wire.WireError, match="not an engine event"):
        wire.to_event({"type": "features", "data": {}})


@pytest.mark.parametrize(("req", "why"), [
    ([1], "a request is a map"),
    ({"op": "ping"}, "non-empty string 'id'"),
    ({"id": "1", "op": "explode"}, "unknown op 'explode'"),
    ({"id": "1", "op": "close"}, r"needs \['strategy'\]"),
    ({"id": "1", "op": "buy", "strategy": "a", "size": 3}, r"does not take \['size'\]"),
])
def test_bad_requests_say_why(req, why):
    with pytest.raises(wire.WireError, match=why):
        wire.validate_request(req)


def test_request_helpers():
    r = wire.request("close", strategy="poc_target")
    rid, op, args = wire.validate_request(wire.decode(wire.encode(r)))
    assert (op, args) == ("close", {"strategy": "poc_target"}) and rid == r["id"]
    assert wire.request("ping")["id"] != wire.request("ping")["id"]
    assert wire.TRADING_OPS <= set(wire.OPS) and "ping" not in wire.TRADING_OPS
    assert set(typing.get_args(wire.SeqVerdict)) == {"ok", "dup", "gap", "restart"}


def test_seq_tracker():
    t = wire.SeqTracker()
    t.reset("r1", 10)
    assert [t.check("r1", s) for s in (9, 10, 11, 12, 14)] == ["dup", "dup", "ok", "ok", "gap"]
    assert t.gaps == 1 and t.last == 12
    assert t.check("r2", 1) == "restart"
