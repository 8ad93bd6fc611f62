"""Fixtures for the model tests: a tiny trained model (seconds, on the bundled synthetic data)
and a real-data slice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT

TINY = ROOT / "configs" / "train_tiny.yaml"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Weights of a model trained by configs/train_tiny.yaml (one epoch); its card beside it."""
    from models.train import load_train_config, train

    synth = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
    cfg = load_train_config(TINY, {"training.epochs": 1, "data.file": str(synth)})
    res = train(cfg, out_dir=tmp_path_factory.mktemp("tiny"))
    return res.weights


@pytest.fixture(scope="session")
def real_slice(real_bars):
    """1,500 real bars from mid-2024 (enough for 1,300 scored samples)."""
    return real_bars.slice(45_000, 46_500)
