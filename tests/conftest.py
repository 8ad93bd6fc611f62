"""Shared fixtures. Real parts: the real BTC/USDT data lives beside the repository in
../shared/data and is never copied in. A test that needs it fails in CI (CI=true) when it is
missing, and skips with the reason elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "BTCUSDT_15m_data.csv"

os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))


def need(condition: bool, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a real part is missing."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs this real part: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    need(REAL_DATA.is_file(), f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_bars(real_data_path, tmp_path_factory):
    from engine.datafile import load_bars

    os.environ.setdefault("TRADEBOT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    return load_bars(real_data_path)
