"""Shared fixtures: the real BTC/USDT 15m data.

The real data lives beside the repository in ``../shared/data`` and is never copied in. A test
that needs it fails in CI (``CI=true``) when it is missing, and is skipped with the reason
elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.bars import Bars

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "BTCUSDT_15m_data.csv"

# The caches' default locations (NUMBA_CACHE_DIR, TRADEBOT_CACHE_DIR) are set by importing
# engine (engine/cache.py, above), the same as for the CLI and `make`.


def need(condition: bool, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a real part is missing."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs this real part: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """Path of the real data; fails in CI and skips elsewhere when it is absent."""
    need(REAL_DATA.is_file(), f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_bars(real_data_path: Path) -> Bars:
    """The real data as ``Bars`` (69,122 bars of BTC-USDT 15m), loaded once per session."""
    from engine.datafile import load_bars

    return load_bars(real_data_path, use_cache=False)  # no cache: tests write nothing to ~/.cache
