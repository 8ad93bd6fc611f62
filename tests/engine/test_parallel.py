"""Strategies in worker processes give exactly the trades of one process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.bootstrap import _workers, build_engine
from engine.config import RunConfig
from engine.errors import StrategyError
from engine.parallel import split

ROOT = Path(__file__).resolve().parents[2]


def _config(workers: int, strategies: list[dict] | None = None) -> RunConfig:
    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    raw["data"]["file"] = str(ROOT / raw["data"]["file"])
    raw["data"]["end"] = "2024-02-20"  # ~4,800 bars
    raw["execution"]["workers"] = workers
    if strategies is not None:
        raw["strategies"] = strategies
    return RunConfig.model_validate(raw)


def _trades(eng):
    return {n: [(t.side, t.entry_seq, t.exit_seq, t.entry_price, t.exit_price, t.qty, t.pnl,
                 t.exit_reason) for t in a.trades] for n, a in eng.accounts.items()}


def test_six_strategies_in_two_workers_trade_as_in_one_process():
    serial = build_engine(_config(1))
    serial.run()
    par = build_engine(_config(2))
    assert serial.strategies and not par.strategies  # the second really ran in workers
    par.run()
    assert list(par.accounts) == list(serial.accounts)  # config order
    got, want = _trades(par), _trades(serial)
    assert sum(len(v) for v in want.values()) > 20
    assert got == want
    for n, a in par.accounts.items():
        assert a.cash == serial.accounts[n].cash
        assert a.fill_seqs == serial.accounts[n].fill_seqs


def test_worker_failure_names_the_strategy_and_the_cause(monkeypatch):
    from engine.registry import EXIT_STRATEGIES, Registry

    cls = Registry.installed(EXIT_STRATEGIES).load("trailing_stop")

    def broken(self, pos, bar, ctx):
        raise RuntimeError("boom in on_bar")

    monkeypatch.setattr(cls, "on_bar", broken)  # the forked workers inherit the patch
    cfg = _config(2, [{"name": "a", "kind": "poc_target"}, {"name": "b", "kind": "trailing_stop"}])
    eng = build_engine(cfg)
    with pytest.raises(StrategyError,
                       match=r"(?s)strategies \['b'\] failed in their worker process.*"
                             r"exit strategy 'b' raised in on_bar.*boom in on_bar"):
        eng.run()


def test_worker_count_rules():
    assert _workers(_config(1), replay=True) == 1
    assert _workers(_config(3), replay=True) == 3
    assert _workers(_config(64), replay=True) == 6  # never more than strategies
    assert _workers(_config(0), replay=True, bars=100_000) >= 1
    assert _workers(_config(0), replay=True, bars=2_000) == 1  # auto: too short to fork
    assert _workers(_config(2), replay=True, bars=2_000) == 2  # asked for: done
    assert _workers(_config(4), replay=False) == 1  # live and paper: one process
    one = _config(0, [{"name": "a", "kind": "poc_target"}])
    assert _workers(one, replay=True) == 1
    assert split(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
