"""Small sweeps over the bundled synthetic data (in the repository: no real data needed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
DEFAULT = ROOT / "configs" / "default.yaml"
GAPPY = ROOT / "tests" / "fixtures" / "GAPPY-USDT_15m_data.csv"

# 2,000 bars: enough for the profile and the signals to trade, small enough to stay fast
SMALL_END = "2024-01-21 19:45:00"

BASE_SWEEP: dict[str, Any] = {
    "name": "t",
    "base": str(DEFAULT),
    "run": {
        "data": {"file": str(SYNTH), "end": SMALL_END},
        "strategies": [
            {"name": "trailing_stop", "kind": "trailing_stop"},
            {"name": "poc_target", "kind": "poc_target"},
        ],
    },
    "space": {
        "signals.params.stop_atr_mult": [3.5, 4.5],
        "strategies[trailing_stop].params.trail_buffer_pct": {"low": 0.5, "high": 1.5,
                                                              "step": 0.5},
    },
    "objective": {"metric": "sharpe", "min_trades": 1},
    "execution": {"workers": 1},
}

# 6 candidates: 2 x 2 trailing stops, 2 POC targets (4 of them exit-only variants)
SMALL_SPACE = {
    "signals.params.stop_atr_mult": [3.5, 4.5],
    "strategies[trailing_stop].params.trail_buffer_pct": [0.5, 1.5],
}


def sweep_dict(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE_SWEEP)
    for k, v in changes.items():
        d[k] = v
    return d


def write_sweep(tmp_path: Path, d: dict[str, Any], name: str = "sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.fixture
def plan_of():
    from engine.sweep.space import SweepConfig, plan_from_spec

    def make(d: dict[str, Any]):  # type: ignore[no-untyped-def]
        return plan_from_spec(SweepConfig.model_validate(d), "test-sweep")

    return make
