"""``tradebot indicators``: the bars plus every indicator column, as the array API computes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import indicators
from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"


@pytest.fixture
def bar_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "BTCUSDT_15m_data.csv"
    with SYNTH.open() as fh:
        src.write_text("".join(line for _, line in zip(range(3001), fh, strict=False)))
    return src


@pytest.mark.parametrize(("variant", "profile_mode"),
                         [(None, None), ("model", "range"), ("chart", "close")])
def test_writes_bars_and_every_indicator(bar_file, tmp_path, capsys, variant, profile_mode):
    out = tmp_path / "out" / "ind.csv"
    argv = ["indicators", "--data", str(bar_file), "--out", str(out)]
    if variant:
        argv += ["--variant", variant]
    if profile_mode:
        argv += ["--profile-mode", profile_mode]
    assert main(argv) == 0
    assert "wrote 3,000 bars" in capsys.readouterr().out
    df = pd.read_csv(out)
    src = pd.read_csv(bar_file)
    pd.testing.assert_frame_equal(df[list(src.columns)], src)  # the bars, as read
    variants = [variant] if variant else ["model", "chart"]
    stoch_cols = {f"s{n}_{v}" for n in (9, 14, 40, 60) for v in variants}
    other = {f"s{n}_{v}" for n in (9, 14, 40, 60) for v in {"model", "chart"} - set(variants)}
    assert stoch_cols <= set(df.columns) and not other & set(df.columns)
    h, lo, c = src["high"].to_numpy(), src["low"].to_numpy(), src["close"].to_numpy()
    vp = indicators.volume_profile(h, lo, c, src["volume"].to_numpy(), 200, 80,
                                   profile_mode or "close")
    k, d = indicators.stochastic(h, lo, c, 14, 3, 3)
    r = indicators.linreg(c, 100)
    expected = {
        "stoch_14_3_3_k": k,
        "stoch_14_3_3_d": d,
        "atr_14_wilder": indicators.atr(h, lo, c, 14, "wilder"),
        "atr_14_sma": indicators.atr(h, lo, c, 14, "sma"),
        "linreg_100_slope": r.slope,
        "linreg_100_intercept": r.intercept,
        "linreg_100_r2": r.r2,
        "linreg_100_std": r.resid_std,
        "slope_20": indicators.slope_rule(c, 20),
        "poc": vp.poc,
        "vah": vp.vah,
        "val": vp.val,
        **{f"{name}_{v}": line for v in variants
           for name, line in indicators.multi_stochastic(h, lo, c, v).items()},
    }
    assert set(df.columns) == {*src.columns, *expected}
    for name, want in expected.items():  # written with 10 significant digits
        np.testing.assert_allclose(df[name].to_numpy(), want, rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def test_profile_modes_differ_and_warm_up_is_empty(bar_file, tmp_path):
    frames = {}
    for mode in ("close", "range"):
        out = tmp_path / f"{mode}.csv"
        argv = ["indicators", "--data", str(bar_file), "--out", str(out), "--profile-mode", mode]
        assert main(argv) == 0
        frames[mode] = pd.read_csv(out)
    for df in frames.values():
        assert df[["poc", "vah", "val"]].iloc[:200].isna().all().all()
        assert df[["poc", "vah", "val"]].iloc[200:].notna().all().all()
        body = df.iloc[200:]
        assert (body["val"] <= body["poc"]).all() and (body["poc"] <= body["vah"]).all()
    assert not frames["close"]["poc"].equals(frames["range"]["poc"])


def test_a_bad_file_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "ind.csv"
    code = main(["indicators", "--data", str(tmp_path / "BTCUSDT_15m_data.csv"), "--out",
                 str(out)])
    assert code == 2 and not out.exists()
    assert "error:" in capsys.readouterr().err


def test_out_equal_to_the_input_is_refused_and_the_input_kept(bar_file, tmp_path, capsys):
    before = bar_file.read_bytes()
    (tmp_path / "d").mkdir()
    for same in (bar_file, tmp_path / "d" / ".." / bar_file.name):
        assert main(["indicators", "--data", str(bar_file), "--out", str(same)]) == 2
        assert "is the input file" in capsys.readouterr().err
    assert bar_file.read_bytes() == before


def test_out_that_is_a_folder_is_refused_before_the_work(bar_file, tmp_path, capsys):
    assert main(["indicators", "--data", str(bar_file), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_symbol_and_timeframe_flags_read_an_unnamed_file(bar_file, tmp_path, capsys):
    plain = tmp_path / "prices.csv"
    plain.write_bytes(bar_file.read_bytes())
    out = tmp_path / "ind.csv"
    assert main(["indicators", "--data", str(plain), "--out", str(out)]) == 2
    assert "--symbol/--timeframe on" in capsys.readouterr().err
    assert main(["indicators", "--data", str(plain), "--out", str(out), "--symbol", "BTCUSDT",
                 "--timeframe", "15m"]) == 0
    assert len(pd.read_csv(out)) == 3000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
