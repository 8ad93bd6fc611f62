"""The search space: expansion, and refusal of bad paths and ranges before anything runs."""

from __future__ import annotations

import pytest

from engine.cli import main
from engine.errors import ConfigError
from engine.sweep.search import points
from engine.sweep.space import Dim, set_path, validate_all, validate_ranges

from .conftest import ROOT, sweep_dict, write_sweep


def test_grid_expands_per_strategy(plan_of):
    plan = plan_of(sweep_dict())
    pts = points(plan)
    # trailing_stop: 2 x 3; poc_target: only the shared signals path varies: 2
    assert len(pts) == 8
    assert sum(1 for s, _ in pts if s == "trailing_stop") == 6
    assert all("strategies[trailing_stop].params.trail_buffer_pct" not in p
               for s, p in pts if s == "poc_target")
    cands = validate_all(plan, pts)
    assert len({c.key for c in cands}) == 8
    ts = [c for c in cands if c.strategy == "trailing_stop"]
    assert {c.config.strategies[0].params["trail_buffer_pct"] for c in ts} == {0.5, 1.0, 1.5}
    assert all(len(c.config.strategies) == 1 for c in cands)
    assert all(c.config.execution.workers == 1 for c in cands)


def test_dim_grid_and_types():
    assert Dim(low=10, high=30, step=10).grid("x") == [10, 20, 30]
    assert Dim(low=0.5, high=1.5, step=0.5).grid("x") == [0.5, 1.0, 1.5]
    assert Dim(low=1, high=100, n=3, log=True).grid("x") == [1.0, 10.0, 100.0]
    with pytest.raises(ConfigError, match="no grid"):
        Dim(low=0.1, high=0.9).grid("x")


def test_set_path_selects_list_entries_by_name():
    raw = {"strategies": [{"name": "a", "kind": "k"}], "features": [{"id": "vp", "kind": "v"}]}
    set_path(raw, "strategies[a].params.x", 1)
    set_path(raw, "features[vp].params.lookback", 150)
    assert raw["strategies"][0]["params"] == {"x": 1}
    assert raw["features"][0]["params"] == {"lookback": 150}
    with pytest.raises(ConfigError, match=r"strategies\[b\].*no strategies entry.*\['a'\]"):
        set_path(raw, "strategies[b].params.x", 1)


@pytest.mark.parametrize(("space", "expect"), [
    ({"signals.params.stoch_lo": [1, 2]}, r"signals\.params\.stoch_lo: unknown key"),
    ({"strategies[trailing_stop].params.trail_buffer_pct": {"low": -1, "high": 1, "step": 1}},
     r"strategies\[trailing_stop\]\.params\.trail_buffer_pct: Input should be greater"),
    ({"strategies[nope].params.x": [1]}, r"space\.strategies\[nope\]\.params\.x: the run "
                                         r"config has no strategy named 'nope'"),
    ({"features[vp].params.lookback": [0, 100]}, r"features\[vp\]\.params\.lookback"),
    ({"account.position_size_frac": [0.5, 2.0]}, r"account\.position_size_frac"),
])
def test_bad_candidates_refused_up_front_with_key_path(plan_of, space, expect):
    with pytest.raises(ConfigError, match=expect):
        plan = plan_of(sweep_dict(space=space))
        validate_all(plan, points(plan))


def test_tpe_range_ends_validated(plan_of):
    plan = plan_of(sweep_dict(space={"signals.params.s9_extreme_pct": {"low": 10, "high": 60}},
                              search={"method": "tpe"}))
    with pytest.raises(ConfigError, match=r"signals\.params\.s9_extreme_pct: Input should be "
                                          r"less than 50 \(got 60\)"):
        validate_ranges(plan)


@pytest.mark.parametrize(("space", "expect"), [
    ({"signals.params.stop_atr_mult": {"low": 3, "high": 2, "step": 1}}, "low 3.0 is above high"),
    ({"signals.params.stop_atr_mult": {"values": []}}, "values is empty"),
    ({"signals.params.stop_atr_mult": {"lo": 1}}, "unknown key"),
    ({}, "space is empty"),
])
def test_bad_ranges_refused_by_the_cli(tmp_path, capsys, space, expect):
    p = write_sweep(tmp_path, sweep_dict(space=space))
    assert main(["sweep", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expect in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing ran


def test_unknown_sweep_key_refused(tmp_path, capsys):
    p = write_sweep(tmp_path, sweep_dict(serach={"method": "grid"}))
    assert main(["sweep", str(p)]) == 2
    assert "serach: unknown key" in capsys.readouterr().err


def test_shipped_sweep_config_validates(real_data_path):
    from engine.sweep.space import load_sweep

    plan = load_sweep(ROOT / "configs" / "sweep.yaml", data=real_data_path)
    if plan.spec.search.method == "tpe":
        validate_ranges(plan)
    else:
        assert len(validate_all(plan, points(plan))) >= 6
    assert plan.spec.walk_forward is not None
    assert len(plan.strategies) == 6


def test_random_points_are_seeded_and_inside_the_ranges(plan_of):
    d = sweep_dict(space={"signals.params.stop_atr_mult": {"low": 3.0, "high": 5.0},
                          "strategies[trailing_stop].params.trail_buffer_pct":
                              {"low": 0.5, "high": 2.0, "step": 0.25}},
                   search={"method": "random", "n_trials": 12, "seed": 7})
    plan = plan_of(d)
    a, b = points(plan), points(plan)
    assert a == b and len(a) == 12
    for s, p in a:
        assert 3.0 <= p["signals.params.stop_atr_mult"] <= 5.0
        if s == "trailing_stop":
            v = p["strategies[trailing_stop].params.trail_buffer_pct"]
            assert 0.5 <= v <= 2.0 and (v - 0.5) / 0.25 == pytest.approx(round((v - 0.5) / 0.25))
    assert len(points(plan, limit=5)) == 5


def test_out_that_is_a_file_refused_before_any_work(tmp_path, capsys):
    p = write_sweep(tmp_path, sweep_dict())
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["sweep", str(p), "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is a file" in err
