"""Alert-first (``execution.confirm: telegram``, engine/confirm.py) without Telegram: the config
rules, and the engine's hold driven through the real bridge's command channel (``take`` /
``skip``) in a paper replay of real candles. The whole chat flow against a live venue:
test_live.py."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from adapters.csv_feed import CsvFeed
from adapters.zmq_client import request
from engine.bootstrap import build_engine
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.events import OrderCanceled
from tests.telegram.harness import EngineRun, free_addr, run_config


def _cfg(execution: dict | None = None, **over) -> dict:
    d = run_config("paper").resolved_dict()
    d["execution"].update(execution or {})
    d.update(over)
    return d


def test_config_rules():
    with pytest.raises(ValidationError, match="nobody can tap during a backtest"):
        RunConfig.model_validate(_cfg(mode="backtest", execution={"confirm": "telegram"}))
    with pytest.raises(ValidationError, match="confirm"):
        RunConfig.model_validate(_cfg(execution={"confirm": "email"}))
    with pytest.raises(ValidationError, match="extra"):
        RunConfig.model_validate(_cfg(execution={"confirm": "telegram", "confirm_after": 3}))
    plain = RunConfig.model_validate(_cfg())
    off = RunConfig.model_validate(_cfg(execution={"confirm": "none", "confirm_timeout_s": 5}))
    on = RunConfig.model_validate(_cfg(execution={"confirm": "telegram"}))
    # runs without alert-first keep the hash they had before the option existed
    assert plain.config_hash() == off.config_hash() != on.config_hash()


def test_a_strategy_that_trades_by_itself_is_refused(real_bars):
    cfg = RunConfig.model_validate(_cfg(
        execution={"confirm": "telegram"},
        strategies=[{"name": "sc", "kind": "stoch_cross"}]))
    with pytest.raises(ConfigError, match="'sc' .* trades by itself"):
        build_engine(cfg, feed=CsvFeed.from_bars(real_bars.slice(0, 50)), precompute=False)


def _wait(pred, what, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"{what}: not seen in {timeout} s")


def test_held_entries_taken_and_skipped_through_the_bridge(real_bars):
    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(real_bars, 800, "paper", pub, cmd, speed=150.0, confirm="telegram",
                    confirm_timeout_s=60)
    book, br = eng.engine.confirm, eng.bridge
    assert book is not None
    assert {"take", "skip"} <= set(br.accepts())
    eng.start()
    try:
        # generous: a first run compiles the numba kernels on the engine thread
        a1 = _wait(lambda: next(iter(book.held), None), "a held entry", 90)
        held = {h.gate.name for h in book.held[a1]}
        assert held == {"poc_target", "trailing_stop"}  # both strategies took the signal
        assert all(eng.engine.accounts[n].qty == 0 for n in held)  # nothing sent yet
        rep = request(cmd, "take", alarm_id=a1, reason="test")
        assert rep["ok"], rep
        assert sorted(rep["result"]["entered"]) == sorted(held)
        orders = set(rep["result"]["orders"])
        _wait(lambda: {f.order_id for f in list(br.fills)} >= orders, "the entries' fills")
        rep = request(cmd, "take", alarm_id=a1)
        assert not rep["ok"] and f"alarm {a1} was already taken" in rep["error"]
        a2 = _wait(lambda: next(iter(book.held), None), "another held entry", 30)
        rep = request(cmd, "skip", alarm_id=a2, reason="test")
        assert rep["ok"] and a2 not in book.held
        drops = [o for o in br.orders if isinstance(o, OrderCanceled)
                 and o.reason.startswith(f"confirm: alarm {a2} skipped")]
        assert {o.account for o in drops} == {h for h in rep["result"]["dropped"]}
    finally:
        eng.close()


def test_take_refused_without_alert_first(real_bars):
    pub, cmd = free_addr(), free_addr()
    eng = EngineRun(real_bars, 400, "paper", pub, cmd, speed=400.0)
    assert eng.engine.confirm is None and "take" not in eng.bridge.accepts()
    eng.start()
    try:
        _wait(lambda: eng.bridge.signals, "a signal")
        rep = request(cmd, "take", alarm_id=eng.bridge.signals[0].alarm_id)
        assert not rep["ok"] and "execution.confirm is none" in rep["error"]
    finally:
        eng.close()
