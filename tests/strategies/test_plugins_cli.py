"""For plugin authors: ``tradebot strategies list``, "did you mean", broken plugins, and the
package ``tradebot new-strategy`` generates, installed and run for real.

The generated package is pip-installed into a temporary ``--target`` folder and used through
``PYTHONPATH`` in fresh interpreters, so nothing is installed into the venv.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import PluginLoadError
from engine.exits import API_VERSION, check_exit_contract
from engine.registry import EXIT_STRATEGIES, Registry

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
DEMO = ROOT / "tests" / "fixtures" / "DEMO-USDT_15m_data.csv"
BIN = Path(sys.executable).parent
BROKEN = "tests.fixtures.plugins.broken_exit:BrokenExit"
API = f"{API_VERSION[0]}.{API_VERSION[1]}"  # as `strategies list` shows it

BUILT_INS = {
    "poc_target": "strategies.poc_target:PocTarget",
    "vah_exit": "strategies.vah_exit:VahExit",
    "lvn_acceleration": "strategies.lvn_acceleration:LvnAcceleration",
    "multi_tier": "strategies.multi_tier:MultiTier",
    "trailing_stop": "strategies.trailing_stop:TrailingStop",
    "volume_divergence": "strategies.volume_divergence:VolumeDivergence",
}


def _rows(out: str) -> dict[str, list[str]]:
    """``tradebot strategies list`` output: {name: [kind, name, target, api, ..., status]}."""
    lines = out.strip().splitlines()
    assert lines[0].split()[:5] == ["kind", "name", "target", "api", "package"], lines[0]
    return {line.split()[1]: line.split() for line in lines[1:]}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # absolute cache folders: the subprocesses run elsewhere and must reuse the compiled kernels
    env["NUMBA_CACHE_DIR"] = str(Path(env.get("NUMBA_CACHE_DIR", ROOT / ".cache" / "numba"))
                                 .resolve())
    if "TRADEBOT_CACHE_DIR" in env:
        env["TRADEBOT_CACHE_DIR"] = str(Path(env["TRADEBOT_CACHE_DIR"]).resolve())
    env.update(extra)
    return env


def _fake_dist(where: Path, name: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution (``*.dist-info``) declaring exit-strategy entry points."""
    info = where / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{EXIT_STRATEGIES}]\n{eps}")


# -- the built-ins ---------------------------------------------------------------------------------
def test_strategies_list_shows_the_six_built_ins_with_module_and_api_version(capsys):
    assert main(["strategies", "list"]) == 0
    rows = _rows(capsys.readouterr().out)
    for name, target in BUILT_INS.items():
        row = rows[name]
        assert row[0] == "exit", row
        assert row[2] == target, row
        assert row[3] == API, row
        assert row[4] == "ai-trading-bot", row
        assert row[-1] == "ok", row
    # entry rules and feature handlers are listed too, without an exit API version
    assert rows["signals"][0] == "entry" and rows["signals"][3] == "-"
    assert rows["volume_profile"][0] == "feature"


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_each_built_in_loads_through_its_entry_point_and_honours_the_contract(name):
    cls = Registry.installed(EXIT_STRATEGIES).load(name)
    module, qualname = BUILT_INS[name].split(":")
    assert (cls.__module__, cls.__qualname__) == (module, qualname)
    check_exit_contract(name, cls)
    assert cls.API_VERSION == API_VERSION
    cls(cls.Params())  # the defaults validate and construct


# -- unknown names ---------------------------------------------------------------------------------
def test_unknown_exit_strategy_gets_did_you_mean_and_the_installed_list():
    reg = Registry.installed(EXIT_STRATEGIES)
    with pytest.raises(PluginLoadError) as ei:
        reg.load("poc_targt")
    msg = str(ei.value)
    assert "exit strategy 'poc_targt' is not installed" in msg
    assert "did you mean 'poc_target'?" in msg
    for name in BUILT_INS:
        assert repr(name) in msg
    with pytest.raises(PluginLoadError, match="did you mean 'trailing_stop'"):
        reg.load("trailing-stop")


def _config(tmp_path: Path, kind: str, data: Path = DEMO) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"name: t\ndata: {{file: {data}}}\n"
        "signals: {kind: signals, params: {mode: rules}}\n"
        f"strategies:\n  - {{name: s, kind: {kind}}}\n"
        f"output: {{dir: {tmp_path / 'out'}, report: false, progress: false}}\n"
    )
    return cfg


def test_tradebot_run_with_a_misspelt_exit_strategy_suggests_it(tmp_path, capsys):
    assert main(["run", str(_config(tmp_path, "poc_targt")), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "strategies[s]: kind 'poc_targt' is not installed" in err  # where, and what
    assert "did you mean 'poc_target'" in err
    for name in BUILT_INS:  # the installed list
        assert repr(name) in err


# -- a plugin that fails to import -----------------------------------------------------------------
def test_broken_plugin_reports_the_real_cause_through_the_registry():
    ep = EntryPoint(name="broken_exit", value=BROKEN, group=EXIT_STRATEGIES)
    reg = Registry(EXIT_STRATEGIES, {"broken_exit": ep})
    with pytest.raises(PluginLoadError) as ei:
        reg.load("broken_exit")
    assert str(ei.value) == (f"exit strategy 'broken_exit' ({BROKEN}) failed to import: "
                             "ImportError: needs foo")
    assert type(ei.value.__cause__) is ImportError


def test_installed_broken_plugin_is_listed_with_its_error_and_refused_by_run(
        tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    _fake_dist(site, "broken_exit_pkg", {"broken_exit": BROKEN})
    monkeypatch.syspath_prepend(str(site))

    assert main(["strategies", "list"]) == 1  # a broken plugin makes the listing fail
    rows = _rows(capsys.readouterr().out)
    row = rows["broken_exit"]
    assert row[2:4] == [BROKEN, "?"]
    assert " ".join(row).endswith("error: ImportError: needs foo"), row
    assert all(rows[n][-1] == "ok" for n in BUILT_INS)  # the others still load

    assert main(["run", str(_config(tmp_path, "broken_exit")), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "exit strategy 'broken_exit'" in err and "ImportError: needs foo" in err


# -- the scaffold, installed and run ---------------------------------------------------------------
@pytest.fixture(scope="module")
def scaffold(tmp_path_factory):
    """``tradebot new-strategy my_exit``, pip-installed into a --target folder."""
    tmp = tmp_path_factory.mktemp("scaffold")
    assert main(["new-strategy", "my_exit", "--dir", str(tmp)]) == 0
    pkg = tmp / "tradebot-my-exit"
    site = tmp / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--target", str(site), str(pkg)],
        capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return pkg, site


def test_new_strategy_creates_a_package_with_entry_point_params_and_test(scaffold, capsys):
    pkg, site = scaffold
    cfg = (pkg / "setup.cfg").read_text()
    assert "name = tradebot-my-exit" in cfg
    assert f"{EXIT_STRATEGIES} =\n    my_exit = tradebot_my_exit.strategy:MyExit" in cfg
    module = (pkg / "tradebot_my_exit" / "strategy.py").read_text()
    assert "class MyExitParams(PluginParams)" in module and "from strategies.api import" in module
    assert "check_exit_plugin(MyExit" in (pkg / "tests" / "test_strategy.py").read_text()
    assert (site / "tradebot_my_exit" / "strategy.py").is_file()
    # the same name again is refused rather than overwriting the author's work
    assert main(["new-strategy", "my_exit", "--dir", str(pkg.parent)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["new-strategy", "My-Exit", "--dir", str(pkg.parent)]) == 2
    assert "snake_case" in capsys.readouterr().err


def test_installed_scaffold_is_listed_and_its_generated_test_passes(scaffold):
    pkg, site = scaffold
    env = _env(PYTHONPATH=str(site))
    done = subprocess.run([str(BIN / "tradebot"), "strategies", "list"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=pkg.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    row = _rows(done.stdout)["my_exit"]
    assert row[:5] == ["exit", "my_exit", "tradebot_my_exit.strategy:MyExit", API,
                       "tradebot-my-exit"], row
    assert row[-1] == "ok", row

    # the generated test (contract + contract kit), run as its author would
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=300, cwd=pkg, env=_env(PYTHONPATH=str(site)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout, done.stdout


def test_installed_scaffold_trades_in_a_run(scaffold, tmp_path):
    _, site = scaffold
    out = tmp_path / "out"
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(
        "name: mine\n"
        f"data: {{file: {SYNTH}, end: '2024-01-31 23:45:00'}}\n"  # January: 2,976 bars
        "features: [{id: vp, kind: volume_profile}]\n"
        "signals: {kind: signals, params: {mode: rules}}\n"
        "strategies:\n  - {name: mine, kind: my_exit, params: {target_pct: 1.5}}\n"
        f"output: {{dir: {out}, report: false, progress: false}}\n"
    )
    done = subprocess.run([str(BIN / "tradebot"), "run", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=_env(PYTHONPATH=str(site)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2,976 bars, 1 strategy" in done.stdout, done.stdout
    assert any(line.startswith("mine ") for line in done.stdout.splitlines()), done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mine"]["trades"] > 0, metrics
    with (out / "trades.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["strategy"] == "mine"]
    assert rows
    # the plugin's own decisions show: its partial target and its trailing stop
    reasons = {r["exit_reason"] for r in rows}
    assert {"TARGET", "TRAIL_STOP"} <= reasons, reasons
