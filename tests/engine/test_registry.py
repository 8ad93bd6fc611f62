from __future__ import annotations

import pytest

from engine.errors import PluginLoadError
from engine.registry import ENTRY_RULES, Registry


def test_unknown_name_gets_did_you_mean_and_installed_list():
    reg = Registry.from_mapping(ENTRY_RULES, {"stoch_cross": object, "poc_target": object})
    with pytest.raises(PluginLoadError) as ei:
        reg.load("stoch_cros")
    msg = str(ei.value)
    assert "did you mean 'stoch_cross'" in msg
    assert "['poc_target', 'stoch_cross']" in msg
    assert "pip install -e ." in msg


def test_installed_entry_points_resolve():
    reg = Registry.installed(ENTRY_RULES)
    assert "stoch_cross" in reg.names()
    assert reg.load("stoch_cross").__name__ == "StochCross"


def test_broken_plugin_reports_the_real_cause():
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="broken", value="tests.fixtures.no_such_module:X", group=ENTRY_RULES)
    reg = Registry(ENTRY_RULES, {"broken": ep})
    with pytest.raises(
        PluginLoadError, match=r"broken.*failed to import.*ModuleNotFoundError"
    ) as ei:
        reg.load("broken")
    assert isinstance(ei.value.__cause__, ModuleNotFoundError)
