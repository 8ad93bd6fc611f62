"""`tradebot train` end to end on the tiny config (CI), the card's contents, config refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.errors import ConfigError
from models.card import load_card, sha256_file
from models.cnn import CnnSpec, PatternDetectorCNN, n_parameters
from models.features import FeatureSpec
from models.train import build_dataset, load_train_config
from tests.conftest import ROOT
from tests.models.conftest import TINY

SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"


def test_cli_trains_the_tiny_config_and_is_deterministic(tmp_path, tiny_model, capsys):
    """The CLI writes weights + card; same config and seed -> the same weights, bit for bit
    (the fixture trained the same config with the same overrides in another call)."""
    rc = main(["train", str(TINY), "--out", str(tmp_path), "--epochs", "1", "--data", str(SYNTH),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "test:" in out and "val:" in out
    weights = tmp_path / "cnn_tiny.pt"
    assert sha256_file(weights) == sha256_file(tiny_model)

    card = load_card(weights.with_suffix(".json"))
    assert card.weights.sha256 == sha256_file(weights)
    assert card.feature_hash == FeatureSpec().digest()
    assert card.data.file == str(SYNTH) and card.data.n_bars == 6000
    assert card.data.sha256 == sha256_file(SYNTH)
    parts = card.parts
    assert list(parts) == ["train", "val", "test"]
    assert parts["val"].start_seq - parts["train"].stop_seq == card.purge_bars
    assert parts["test"].start_seq - parts["val"].stop_seq == card.purge_bars
    assert card.purge_bars >= FeatureSpec().lookback_bars + card.labels.horizon_bars
    for p in parts.values():
        assert p.first_sample_utc < p.last_sample_utc
        assert sum(p.class_counts.values()) == p.n_samples > 0
    assert parts["train"].last_sample_utc < parts["val"].first_sample_utc
    assert parts["val"].last_sample_utc < parts["test"].first_sample_utc
    for name in ("val", "test"):
        rep = card.metrics[name]
        conf = np.array(rep.confusion)
        assert conf.shape == (3, 3) and conf.sum() == rep.n == parts[name].n_samples
        assert conf.sum(axis=1).tolist() == list(parts[name].class_counts.values())
        assert set(rep.per_class) == {"hold", "buy", "sell"}
    assert {"torch", "numpy", "numba", "python"} <= set(card.versions)
    assert card.training.epochs_run == 1 and len(card.training.history) == 1
    state = torch.load(weights, weights_only=True)
    net = PatternDetectorCNN(card.model)
    net.load_state_dict(state)
    assert card.weights.n_parameters == n_parameters(net)


def test_training_set_covers_every_valid_bar(real_bars):
    """The whole real history: one sample per bar from the first valid bar (the reference bot
    stepped by 2 and skipped empty profiles); ``make bench`` times it."""
    cfg = load_train_config(ROOT / "configs" / "train.yaml")
    ds = build_dataset(real_bars, cfg.features, cfg.labels)
    first = cfg.features.first_valid_bar
    assert not ds.features.valid[:first].any()
    assert ds.features.valid[first:].mean() > 0.999
    h = cfg.labels.horizon_bars
    assert (ds.labels[-h:] == -1).all() and (ds.labels[:-h] >= 0).all()
    counts = np.bincount(ds.labels[ds.usable], minlength=3)
    assert counts[0] > 0.98 * counts.sum() and counts[1] > 100 and counts[2] > 100
    stepped = build_dataset(real_bars, cfg.features, cfg.labels, sample_step=2)
    assert stepped.usable.sum() == pytest.approx(ds.usable.sum() / 2, abs=2)
    assert stepped.usable[first] and not stepped.usable[first + 1]


def test_unknown_keys_and_bad_values_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("  epochs: 2", "  epochz: 2"))
    with pytest.raises(ConfigError, match="epochz"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="purge_bars=10 is below"):
        from models.splits import time_split

        cfg = load_train_config(TINY, {"split.purge_bars": 10})
        time_split(6000, cfg.split, cfg.features.lookback_bars, cfg.labels.horizon_bars)
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "missing.yaml")


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {file: x.csv}\nmodel: {preset: huge}\n")
    assert main(["train", str(bad)]) == 2
    assert "model" in capsys.readouterr().err


def test_model_presets():
    cfg = load_train_config(TINY)
    assert cfg.model.conv_channels == (8, 16, 32) and cfg.model.preset == "custom"
    ref = PatternDetectorCNN(CnnSpec.reference())
    assert 3_300_000 < n_parameters(ref) < 3_400_000  # the reference bot's ~3.33 M
    assert n_parameters(PatternDetectorCNN(CnnSpec.small())) < 250_000
    out = ref.eval()(torch.rand(5, 100), torch.rand(5, 80))
    assert out.shape == (5, 3)
    raw = json.loads(json.dumps({"data": {"file": "x"}, "model": {"preset": "small"}}))
    from models.train import TrainConfig

    assert TrainConfig.model_validate(raw).model == CnnSpec.small()


def test_walk_forward_folds_are_scored_in_the_card(tmp_path):
    from models.train import train

    cfg = load_train_config(TINY, {"training.epochs": 1, "split.walk_forward_folds": 2,
                                   "data.file": str(SYNTH)})
    card = train(cfg, out_dir=tmp_path).card
    assert len(card.folds) == 2
    for f in card.folds:
        assert f["train"]["stop_seq"] + card.purge_bars == f["val"]["start_seq"]
        assert f["val"]["stop_seq"] <= card.parts["val"].stop_seq  # never into the test part
        assert sum(map(sum, f["report"]["confusion"])) == f["val"]["n_samples"]
