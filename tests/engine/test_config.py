from __future__ import annotations

import re

import pytest

from engine.config import load_config, validate_params
from engine.errors import ConfigError

BASE = """
name: t
data: {file: data/x_15m_data.csv}
strategies:
  - {name: s1, kind: stoch_cross}
"""


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_valid_config_has_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    assert cfg.account.position_size_frac == 0.5
    assert cfg.costs.taker_fee_bps == 5.0
    assert cfg.execution.intrabar == "stop_first"
    assert len(cfg.config_hash()) == 16


def test_unknown_key_names_the_file_and_key_path(tmp_path):
    p = _write(tmp_path, BASE + "costs: {taker_fee_bsp: 3}\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert str(p) in msg and "costs.taker_fee_bsp" in msg and "unknown key" in msg


def test_wrong_type_names_key_and_value(tmp_path):
    p = _write(tmp_path, BASE + "account: {position_size_frac: lots}\n")
    with pytest.raises(ConfigError, match=r"account.position_size_frac.*'lots'"):
        load_config(p)


def test_out_of_range_is_refused(tmp_path):
    p = _write(tmp_path, BASE + "account: {position_size_frac: 1.5}\n")
    with pytest.raises(ConfigError, match="position_size_frac"):
        load_config(p)


def test_duplicate_strategy_names_are_refused(tmp_path):
    p = _write(tmp_path, BASE + "  - {name: s1, kind: stoch_cross}\n")
    with pytest.raises(ConfigError, match=r"unique.*s1"):
        load_config(p)


def test_env_interpolation_and_missing_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TB_DATA", "data/y_15m_data.csv")
    p = _write(tmp_path, BASE.replace("data/x_15m_data.csv", "'${TB_DATA}'"))
    assert str(load_config(p).data.file) == "data/y_15m_data.csv"
    monkeypatch.delenv("TB_DATA")
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(ConfigError, match=r"data.file: environment variable TB_DATA is not set"):
        load_config(p)


def test_overrides_apply_before_validation(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), {"data.file": "z_1h_data.csv", "output.dir": "o"})
    assert str(cfg.data.file) == "z_1h_data.csv" and str(cfg.output.dir) == "o"


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "a: [1, 2"))


# -- wrong in meaning, not only in form ---------------------------------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    ("account: {position_size_frac: yes}",
     "account.position_size_frac: must be a number, got True"),
    ("account: {initial_cash: on}", "account.initial_cash: must be a number, got True"),
    ("costs: {slippage_bps: false}", "costs.slippage_bps: must be a number, got False"),
    ("execution: {workers: true}", "execution.workers: must be a number, got True"),
    ("execution: {close_at_end: 1}", "execution.close_at_end: must be true or false, got 1"),
    ("output: {report: 'no'}", "output.report: must be true or false, got 'no'"),
    ("journal: {enabled: 0}", "journal.enabled: must be true or false, got 0"),
    ("features: [{id: f, kind: atr, params: {}}, {id: g, kind: atr, params: {n: 3}}]\n"
     "signals: {kind: x}\noutput: {progress: 'yes'}", "output.progress: must be true or false"),
])
def test_booleans_and_numbers_are_not_converted(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_write(tmp_path, BASE + extra + "\n"))


def test_numbers_stay_numbers(tmp_path):
    cfg = load_config(_write(tmp_path, BASE + "account: {position_size_frac: 1}\n"
                             "costs: {taker_fee_bps: '1e-1'}\n"))  # YAML 1.1 leaves 1e-1 a string
    assert cfg.account.position_size_frac == 1.0 and cfg.costs.taker_fee_bps == 0.1


def test_plugin_params_are_strict_too():
    from pydantic import BaseModel, ConfigDict

    class P(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = 3
        flag: bool = False

    with pytest.raises(ConfigError, match=r"strategies\[a\]\.params\.n: must be a number, "
                                          r"got True"):
        validate_params(P, {"n": True}, "strategies[a]")
    with pytest.raises(ConfigError, match=r"strategies\[a\]\.params\.flag: must be true or false"):
        validate_params(P, {"flag": "yes"}, "strategies[a]")
    assert validate_params(P, {"n": 5, "flag": True}, "strategies[a]") == P(n=5, flag=True)


def test_a_repeated_key_names_the_key_and_both_lines(tmp_path):
    text = BASE + "account:\n  initial_cash: 100\n  position_size_frac: 0.2\n  initial_cash: 5\n"
    with pytest.raises(ConfigError, match=r"key 'initial_cash' appears twice in one mapping, on "
                                          r"lines 7 and 9"):
        load_config(_write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"key 'name' appears twice.* lines 2 and 6"):
        load_config(_write(tmp_path, BASE + "name: again\n"))


def test_a_folder_or_a_binary_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder; give the path of a YAML file"):
        load_config(tmp_path)
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ConfigError, match="is not a text file"):
        load_config(png)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: a\x00b\n")
    with pytest.raises(ConfigError, match="binary file"):
        load_config(nul)


def test_an_override_below_a_scalar_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"data must be a mapping of keys \(to set data.file\)"):
        load_config(_write(tmp_path, "data: 5\nstrategies: []\n"), {"data.file": "x.csv"})


def test_a_file_that_is_no_config_lists_a_few_problems_not_every_line(tmp_path):
    text = "\n".join(f"user{i}: x" for i in range(40)) + "\n"
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    msg = str(exc.value)
    assert "user0: unknown key" in msg and "user39" not in msg
    assert "more problems (is this a run config?)" in msg


def test_strict_scalars_inside_lists_tuples_and_mappings():
    from pydantic import BaseModel, ConfigDict

    class P(BaseModel):
        model_config = ConfigDict(extra="forbid")
        routes: dict[str, tuple[int, ...]] = {}
        levels: list[float] = []
        pair: tuple[int, bool] = (1, True)

    with pytest.raises(ConfigError) as exc:
        validate_params(P, {"routes": {"fill": [123, True]}, "levels": [1.5, False],
                            "pair": [2, 1]}, "x")
    msg = str(exc.value)
    assert "x.params.routes.fill[1]: must be a number, got True" in msg
    assert "x.params.levels[1]: must be a number, got False" in msg
    assert "x.params.pair[1]: must be true or false, got 1" in msg
    assert validate_params(P, {"routes": {"fill": [1, 2]}, "levels": [1, 2.5]}, "x") == P(
        routes={"fill": (1, 2)}, levels=[1.0, 2.5])
