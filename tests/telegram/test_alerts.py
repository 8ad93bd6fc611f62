"""Alert texts of the engine events the end-to-end runs do not raise (a handler disabled, a
model's confidence), built from real engine events through the real wire codec."""

from __future__ import annotations

import msgspec

from adapters.telegram import alerts
from engine import wire
from engine.events import CommandApplied, HandlerFailed, ModifyOrder, SignalRaised


def _msg(ev, seq=7):
    topic, payload = wire.encode_event(ev, seq, "run-1", "BTC-USDT")
    return topic.split(b".")[0].decode(), wire.decode(payload)


def test_handler_failed_stop_moved_and_command_alerts():
    kind, msg = _msg(HandlerFailed(ts_event_ns=1, ts_init_ns=1, handler="cnn",
                                   error="ValueError: bad shape"))
    assert kind == "alert"
    assert alerts.event_alert(kind, msg) == (
        "alert", "alert-run-1-7", "⚠️ Handler cnn failed and is disabled: ValueError: bad shape")
    kind, msg = _msg(ModifyOrder(ts_event_ns=1, ts_init_ns=1, account="trailing_stop",
                                 order_id="o-9", price=27_950.5, reason="trail"))
    assert alerts.event_alert(kind, msg) == (
        "stop", "mod-o-9-27950.5", "↕️ Stop moved trailing_stop: 27,950.50 (trail)")
    kind, msg = _msg(CommandApplied(ts_event_ns=1, ts_init_ns=1, request_id="r1", op="buy",
                                    ok=False, error="buy refused: not live"))
    assert alerts.event_alert(kind, msg)[2] == "⚙️ buy refused: buy refused: not live"


def test_signal_text_with_confidence_and_no_setup():
    sig = SignalRaised(ts_event_ns=1_680_438_600_000_000_000, ts_init_ns=0, symbol="BTC-USDT",
                       timeframe="15m", seq=145, alarm_id="A1", rule="cnn", side="long",
                       entry_price=28_302.68, stop_price=28_100.0, atr=40.3,
                       targets=(28_700.0,), confidence=0.734)
    text = alerts.signal_text(msgspec.to_builtins(sig), None, "BTC-USDT", "15m")
    assert text.splitlines()[:5] == [
        "🔔 LONG signal BTC-USDT 15m", "alarm: A1 (cnn)",
        "price: 28,302.68   stop: 28,100.00   ATR: 40.30", "bar: 2023-04-02 12:30 UTC",
        "confidence: 73%"]
    assert text.endswith("/buy A1") and "setups:" not in text


def test_refused_orders_are_alerted_and_routine_cancels_are_not():
    """A risk refusal, an order the venue never got and a halted entry reach the chat (issue 9:
    "a refused order is journaled and alerted"); the engine's own cancel of a stop no longer
    needed does not."""
    from engine.events import OrderCanceled

    def cancel(reason: str, oid: str = "multi_tier-3"):
        return _msg(OrderCanceled(ts_event_ns=1, ts_init_ns=1, account="multi_tier",
                                  order_id=oid, reason=reason))

    kind, msg = cancel("risk: 3 orders in the last minute, the limit is 3 "
                       "(risk.max_orders_per_minute)")
    assert kind == "order"
    assert alerts.event_alert(kind, msg) == (
        "alert", "refused-multi_tier-multi_tier-3",
        "⛔ Order multi_tier-3 of multi_tier not working: risk: 3 orders in the last minute, "
        "the limit is 3 (risk.max_orders_per_minute)")
    for reason in ("not placed: venue unavailable after 5 tries", "halted: position mismatch"):
        assert alerts.event_alert(*cancel(reason))[2].endswith(reason)
    assert alerts.event_alert(*cancel("position closed (STOP_LOSS)")) is None
