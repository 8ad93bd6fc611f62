"""One surface for plugin authors: ``strategies.api``, one way to declare what a plugin reads,
an API-version rule that accepts compatible plugins, and no silent pick between two installed
plugins of one name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import strategies.api as api
from engine.cli import main
from engine.errors import PluginLoadError
from engine.exits import API_VERSION, api_version_problem, check_exit_contract
from engine.registry import ENTRY_RULES, EXIT_STRATEGIES, Registry

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tests" / "fixtures" / "DEMO-USDT_15m_data.csv"
BUILT_INS = ("poc_target", "vah_exit", "lvn_acceleration", "multi_tier", "trailing_stop",
             "volume_divergence")
# what a plugin may import besides strategies.api: the standard library and pydantic
ALLOWED = {"__future__", "math", "collections", "typing", "dataclasses", "pydantic"}


def _imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _foreign(mods: set[str], own: str = "") -> set[str]:
    return {m for m in mods if m != "strategies.api" and m.split(".")[0] not in ALLOWED
            and not (own and m.startswith(own))}


# -- the public module ----------------------------------------------------------------------------
def test_the_public_module_offers_everything_a_plugin_needs():
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    for name in ("API_VERSION", "TradeSetup", "ExitPlan", "PositionView", "ExitContext",
                 "MoveStop", "TakePartial", "CloseAll", "ExitParams", "PluginParams", "window",
                 "hvn_trail", "VOLUME_PROFILE", "FeatureConfig", "check_exit_plugin"):
        assert name in api.__all__, name
    assert api.API_VERSION == API_VERSION


@pytest.mark.parametrize("name", BUILT_INS)
def test_built_in_plugins_import_only_the_public_module(name):
    mods = _imports((ROOT / "strategies" / f"{name}.py").read_text())
    assert _foreign(mods, own="strategies.poc_target") == set(), mods  # vah_exit extends it


def test_the_scaffold_and_the_guide_use_only_the_public_module(tmp_path):
    assert main(["new-strategy", "fresh_exit", "--dir", str(tmp_path)]) == 0
    pkg = tmp_path / "tradebot-fresh-exit"
    module = (pkg / "tradebot_fresh_exit" / "strategy.py").read_text()
    assert _foreign(_imports(module)) == set()
    assert f"API_VERSION: ClassVar[tuple[int, int]] = {API_VERSION}" in module  # a literal
    assert _foreign(_imports((pkg / "tests" / "test_strategy.py").read_text()),
                    own="tradebot_fresh_exit") == set()
    guide = (ROOT / "docs" / "writing-strategies.md").read_text()
    blocks = [b.split("```", 1)[0] for b in guide.split("```python")[1:]]
    assert blocks and any("from strategies.api import" in b for b in blocks)
    for b in blocks:
        assert _foreign(_imports(b), own="tradebot_") == set(), b


def test_the_guides_example_plugin_passes_the_contract_kit():
    guide = (ROOT / "docs" / "writing-strategies.md").read_text()
    block = next(b.split("```", 1)[0] for b in guide.split("```python")[1:] if "class MyExit:" in b)
    space: dict[str, object] = {}
    exec(compile(block, "writing-strategies.md", "exec"), space)
    report = api.check_exit_plugin(space["MyExit"], n_bars=1500)
    assert report.ok and report.trades > 0, report.summary()


# -- one declaration of needs ---------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILT_INS)
def test_built_in_plugins_declare_the_volume_profile_like_entry_rules_declare_features(name):
    cls = Registry.installed(EXIT_STRATEGIES).load(name)
    assert not hasattr(cls, "NEEDS_HANDLERS")
    assert cls.required_features(cls.Params()) == [api.VOLUME_PROFILE]


# -- API versions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [1, (1, 0), API_VERSION])
def test_compatible_api_versions_load(declared):
    assert api_version_problem(declared) is None


@pytest.mark.parametrize(("declared", "says"), [
    ((API_VERSION[0], API_VERSION[1] + 1), "newer than this tradebot's .*upgrade tradebot"),
    ((API_VERSION[0] + 1, 0), "newer than this tradebot's .*upgrade tradebot"),
    ((0, 9), r"written for plugin API 0\.9.*upgrade the plugin"),
    ("1", r"API_VERSION is '1'; declare the plugin API it was written for as \(major, minor\)"),
    (None, "API_VERSION is None"),
    ((1, 0, 0), r"API_VERSION is \(1, 0, 0\)"),
    (True, "API_VERSION is True"),
])
def test_incompatible_api_versions_say_what_to_upgrade(declared, says):
    cls = type("P", (), {"API_VERSION": declared, "Params": api.PluginParams,
                         "plan": lambda *a: None, "on_bar": lambda *a: None})
    with pytest.raises(PluginLoadError, match=says):
        check_exit_contract("p", cls)


def test_an_api_1_0_plugin_runs_on_this_engine():
    cls = type("Old", (Registry.installed(EXIT_STRATEGIES).load("trailing_stop"),),
               {"API_VERSION": 1})
    report = api.check_exit_plugin(cls, n_bars=1500)
    assert report.ok, report.summary()


# -- one name, one plugin -------------------------------------------------------------------------
def _dist(site: Path, name: str, group: str, eps: dict[str, str]) -> None:
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))


@pytest.fixture
def twins(tmp_path, monkeypatch):
    """Two installed distributions, twin-a and twin-b, both declaring the exit strategy twin."""
    site = tmp_path / "site"
    _dist(site, "twin_a", EXIT_STRATEGIES, {"twin": "tests.fixtures.plugins.twins:TwinA"})
    _dist(site, "twin_b", EXIT_STRATEGIES, {"twin": "tests.fixtures.plugins.twins:TwinB"})
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


def _config(tmp_path: Path, kind: str) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"name: t\ndata: {{file: {DEMO}}}\n"
        "signals: {kind: signals, params: {mode: rules}}\n"
        f"strategies:\n  - {{name: s, kind: {kind}}}\n"
        f"output: {{dir: {tmp_path / 'out'}, report: false, progress: false}}\n"
    )
    return cfg


def test_two_distributions_with_one_plugin_name_are_an_error_naming_both(twins, capsys):
    reg = Registry.installed(EXIT_STRATEGIES)
    with pytest.raises(PluginLoadError) as ei:
        reg.load("twin")
    msg = str(ei.value)
    assert "exit strategy 'twin' is installed by more than one distribution" in msg
    assert "TwinA (distribution twin_a)" in msg and "TwinB (distribution twin_b)" in msg
    assert "uninstall all but one" in msg
    reg.load("poc_target")  # the other plugins are unaffected

    assert main(["strategies", "list"]) == 1
    out = capsys.readouterr().out
    twin_rows = [line for line in out.splitlines() if line.split()[1:2] == ["twin"]]
    assert len(twin_rows) == 2 and all("more than one distribution" in r for r in twin_rows)

    assert main(["run", str(_config(twins, "twin")), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "twin_a" in err and "twin_b" in err and "more than one distribution" in err


def test_one_name_as_exit_strategy_and_entry_rule_is_an_error_naming_both(tmp_path, monkeypatch,
                                                                          capsys):
    site = tmp_path / "site"
    _dist(site, "twin_a", EXIT_STRATEGIES, {"twin": "tests.fixtures.plugins.twins:TwinA"})
    _dist(site, "rule_b", ENTRY_RULES, {"twin": "strategies.stoch_cross:StochCross"})
    monkeypatch.syspath_prepend(str(site))
    assert main(["run", str(_config(tmp_path, "twin")), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "kind 'twin' is installed twice" in err
    assert "(distribution twin_a)" in err and "(distribution rule_b)" in err


@pytest.mark.parametrize(("name", "what"), [("poc_target", "an exit strategy"),
                                            ("signals", "an entry rule"),
                                            ("stoch_cross", "an entry rule")])
def test_new_strategy_refuses_an_installed_name(tmp_path, capsys, name, what):
    assert main(["new-strategy", name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"strategy name {name!r} is taken: the installed distribution ai-trading-bot has " \
           f"{what} of that name" in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_new_strategy_refuses_a_name_a_third_party_plugin_has(twins, capsys):
    assert main(["new-strategy", "twin", "--dir", str(twins / "new")]) == 2
    assert "'twin' is taken: the installed distribution twin_a" in capsys.readouterr().err
    assert not (twins / "new").exists()
