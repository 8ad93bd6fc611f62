"""The cnn handler through the real engine: the entry rule's nn mode finds it by its entry-point
name and reads its columns, and the engine's own lookahead checker passes it."""

from __future__ import annotations

import numpy as np

from adapters.csv_feed import CsvFeed
from engine.bootstrap import build_engine
from engine.config import RunConfig
from engine.lookahead import check_lookahead


def _config(model: str, mode: str) -> RunConfig:
    return RunConfig.model_validate({
        "data": {"file": "unused.csv"},
        "features": [{"id": "vp", "kind": "volume_profile",
                      "params": {"lookback": 200, "bins": 80, "mode": "close"}}],
        "signals": {"kind": "signals",
                    "params": {"mode": mode, "nn_handler_params": {"model": model}}},
        "strategies": [{"name": "poc", "kind": "poc_target"}],
    })


def test_nn_entry_mode_wires_the_cnn_handler(tiny_model, real_slice):
    cfg = _config(str(tiny_model), "nn")
    eng = build_engine(cfg, feed=CsvFeed.from_bars(real_slice.slice(0, 900)))
    assert type(eng.handlers["cnn"]).__name__ == "CnnHandler"
    eng.run()
    p_buy = eng.features.column("cnn_p_buy")
    assert np.isnan(p_buy[:200]).all() and np.isfinite(p_buy[200:]).all()


def test_engine_lookahead_check_passes_the_cnn_handler(tiny_model, real_slice):
    cfg = _config(str(tiny_model), "hybrid")
    report = check_lookahead(cfg, real_slice.slice(0, 900),
                             lambda c, b: build_engine(c, feed=CsvFeed.from_bars(b)))
    v = report.verdicts
    assert {"feature:cnn_p_hold", "feature:cnn_p_buy", "feature:cnn_p_sell"} <= set(v)
    assert all(x.ok for x in v.values()), report.summary()
