"""``walk_forward.retrain_model``: the CNN retrained on each walk-forward train window (and on
nothing else), the test window traded hybrid (that model) vs rules, reported per window.

On the first 3,001 real bars (2 windows of 2,000 train + 500 test bars) with a tiny CNN
(``configs/train_tiny.yaml``: 2 epochs, one thread): a few seconds of training per window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.sweep.execute import ModelJob, load_bars, train_model
from engine.sweep.runner import run_sweep
from engine.sweep.store import Store
from engine.sweep.walkforward import windows

from .conftest import DEFAULT

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "train_tiny.yaml"
END = "2023-05-02 06:00:00"  # the real data's first 3,001 bars


def _spec(data: Path, **retrain: object) -> dict:
    return {
        "name": "retrain", "base": str(DEFAULT),
        "run": {"data": {"file": str(data), "end": END},
                "strategies": [{"name": "trailing_stop", "kind": "trailing_stop"}]},
        "space": {"signals.params.stop_atr_mult": [3.5, 4.5]},
        "objective": {"metric": "sharpe", "min_trades": 1},
        "walk_forward": {"train_bars": 2000, "test_bars": 500, "retrain_model": {
            "config": str(TINY), "set": {"training.threads": 1}, **retrain}},
        "execution": {"workers": 1},
    }


def _scrambled(bars, lo: int, hi: int, seed: int):  # type: ignore[no-untyped-def]
    """The same bars with ``[lo, hi)`` replaced by noise (prices and volumes)."""
    from engine.bars import Bars

    rng = np.random.default_rng(seed)
    cols = {}
    for name in ("open", "high", "low", "close", "volume"):
        c = np.array(getattr(bars, name), copy=True)
        c[lo:hi] = c[lo:hi] * rng.uniform(0.5, 1.5, hi - lo)
        cols[name] = c
    cols["high"] = np.maximum.reduce([cols["open"], cols["high"], cols["low"], cols["close"]])
    cols["low"] = np.minimum.reduce([cols["open"], cols["high"], cols["low"], cols["close"]])
    return Bars.from_columns(bars.symbol, bars.timeframe, bars.tf_ns, bars.ts_open_ns, **cols)


def test_cnn_retrained_per_window_on_its_train_bars_only(plan_of, real_data_path, tmp_path):
    plan = plan_of(_spec(real_data_path))
    out = run_sweep(plan, tmp_path / "o", progress=False)
    rt = out.summary["retrain_model"]
    data = out.best.config.resolved_dict()["data"]
    bars = load_bars(data)  # the very bars the sweep's windows index
    ws = windows(len(bars), plan.spec.walk_forward)
    assert len(bars) == 3001 and len(ws) == 2 and len(rt["windows"]) == 2
    ts = bars.ts_open_ns
    store = Store(tmp_path / "o" / "results.sqlite")
    for row, w in zip(rt["windows"], ws, strict=True):
        m = row["model"]
        assert m["status"] == "ok", m
        # the trainer was handed exactly the train window, which ends before the test window
        assert (m["first_ns"], m["last_ns"], m["n_bars"]) == (
            ts[w.train_lo], ts[w.train_hi - 1], w.train_hi - w.train_lo)
        assert m["last_ns"] < ts[w.test_lo]
        card = json.loads(Path(m["weights"]).with_suffix(".json").read_text())
        assert card["data"]["n_bars"] == 2000 and card["weights"]["sha256"] == m["sha256"]
        assert sum(m["samples"].values()) > 1000
        # rules = the window's chosen candidate on the test window (the walk-forward's own run)
        chosen = out.summary["windows"][w.k]
        assert row["cand"] == chosen["cand"] and row["rules"]["score"] == chosen["test_score"]
        # hybrid = the same candidate in mode hybrid on this window's model, on the test bars
        rh = store.get(row["hybrid_key"])
        assert rh is not None and rh.status == "ok"
        assert rh.params["signals.params.mode"] == "hybrid"
        assert rh.params["signals.params.nn_handler_params"]["model"] == m["weights"]
        assert (rh.seen_first_ns, rh.seen_last_ns) == (ts[w.test_lo], ts[w.test_hi - 1])
        assert row["hybrid"]["total_return_pct"] == rh.metrics["total_return_pct"]
        assert row["diff"]["total_return_pct"] == pytest.approx(
            row["hybrid"]["total_return_pct"] - row["rules"]["total_return_pct"], abs=1e-12)
    # the two windows' models differ (different bars), and each is in the store
    assert rt["windows"][0]["model"]["sha256"] != rt["windows"][1]["model"]["sha256"]
    assert [r["model_key"] for r in store.model_windows()] == [
        r["model_key"] for r in rt["windows"]]
    assert all(store.model(r["model_key"])["sha256"] == r["model"]["sha256"]
               for r in rt["windows"])
    eq = out.summary["equity"]
    assert "hybrid, CNN retrained per window" in eq and "walk-forward out-of-sample" in eq
    c = rt["compounded_return_pct"]
    assert c["hybrid"] == pytest.approx(  # the hybrid test windows compounded
        (np.prod([1 + r["hybrid"]["total_return_pct"] / 100 for r in rt["windows"]]) - 1)
        * 100, rel=1e-9)
    html = (tmp_path / "o" / "sweep.html").read_text()
    assert "CNN retrained per window: hybrid vs rules" in html

    # No test bar reaches a model: window 0 retrained with every bar from its test window on
    # replaced by noise gives bit-identical weights (deterministic on CPU, one thread) ...
    w0, row0 = ws[0], rt["windows"][0]

    def retrain(b, folder):  # type: ignore[no-untyped-def]
        # the same file name: torch.save writes it into the file (its sha256 depends on it)
        job = ModelJob("k", "cnn", plan.model_train["config"], data, w0.train_lo, w0.train_hi,
                       str(tmp_path / folder), Path(row0["model"]["weights"]).stem)
        got = train_model(job, b)
        assert got["status"] == "ok", got
        return got["sha256"]

    assert retrain(_scrambled(bars, w0.test_lo, len(bars), 1), "future") == \
        row0["model"]["sha256"]
    # ... while noise on train bars changes them (the check can fail)
    assert retrain(_scrambled(bars, 300, 900, 2), "past") != row0["model"]["sha256"]

    # resume: nothing is trained or run again
    stamp = [Path(r["model"]["weights"]).stat().st_mtime_ns for r in rt["windows"]]
    again = run_sweep(plan, tmp_path / "o", progress=False, write_report=False)
    assert again.ran == 0
    assert [Path(r["model"]["weights"]).stat().st_mtime_ns for r in rt["windows"]] == stamp
    assert again.summary["retrain_model"]["windows"] == rt["windows"]


def test_retrain_model_refused_up_front(plan_of, tmp_path):
    from .conftest import SYNTH

    def spec(**kw: object) -> dict:
        d = _spec(SYNTH)
        d["run"]["data"].pop("end")
        for k, v in kw.items():
            d["walk_forward"]["retrain_model"][k] = v
        return d

    with pytest.raises(ConfigError, match=r"training\.epochz"):
        plan_of(spec(set={"training.epochz": 2}))
    with pytest.raises(ConfigError, match="model trainer 'rnn' is not installed"):
        plan_of(spec(trainer="rnn"))
    with pytest.raises(ConfigError, match="no_such.yaml"):
        plan_of(spec(config=str(tmp_path / "no_such.yaml")))
    d = spec()
    d["run"]["signals"] = {"params": {"mode": "hybrid"}}
    with pytest.raises(ConfigError, match="mode is 'hybrid'.*set it to rules"):
        plan_of(d)
    d = spec()
    d["space"]["signals.params.mode"] = ["rules", "hybrid"]
    with pytest.raises(ConfigError, match=r"space\.signals\.params\.mode cannot be swept"):
        plan_of(d)
    from engine.sweep.space import SweepConfig

    with pytest.raises(ValueError, match="retrain_modle"):
        d = spec()
        d["walk_forward"]["retrain_modle"] = d["walk_forward"].pop("retrain_model")
        SweepConfig.model_validate(d)


def test_train_window_too_short_for_the_split_refused_before_any_run(plan_of, tmp_path):
    from .conftest import SYNTH

    d = _spec(SYNTH)
    d["run"]["data"]["end"] = "2024-01-24 23:45:00"  # 2,304 synthetic bars
    d["walk_forward"].update(train_bars=800, test_bars=350)
    with pytest.raises(ConfigError, match="train window of 800 bars is too short.*raise "
                       "walk_forward.train_bars"):
        run_sweep(plan_of(d), tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "results.sqlite").exists() or Store(
        tmp_path / "o" / "results.sqlite").count() == 0
