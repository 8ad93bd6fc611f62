from __future__ import annotations

import pytest

from engine.config import load_config
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
