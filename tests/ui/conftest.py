"""UI test fixtures: real-engine messages from the real candles, and a headless Chromium.

Browser tests need Debian's ``chromium`` + ``chromedriver`` and ``dash[testing]``: ``need(...)``
fails them in CI when a part is missing and skips them elsewhere. Screenshots go to
``tests/ui/artifacts/`` (ignored by git) or ``$UI_ARTIFACTS``.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import need

ARTIFACTS = Path(os.environ.get("UI_ARTIFACTS", Path(__file__).parent / "artifacts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def real_messages(real_data_path):
    """Six weeks of real BTC/USDT 15m candles run through the real engine, as wire messages."""
    from tests.ui.engine_source import engine_messages

    return engine_messages(real_data_path, "2024-01-01", "2024-02-15")


@pytest.fixture
def browser(tmp_path):
    """A ``dash.testing`` composite (server runner + selenium Chrome), always headless."""
    need(shutil.which("chromium") is not None and shutil.which("chromedriver") is not None,
         "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        from dash.testing.application_runners import ThreadedRunner
        from dash.testing.composite import DashComposite
    except ImportError as exc:  # pragma: no cover - dash[testing] is in the test extras
        need(False, f"dash[testing] is not installed: {exc}")
        raise
    os.environ.setdefault("DASH_TEST_CHROMEPATH", shutil.which("chromium") or "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.add_argument("--enable-unsafe-swiftshader")  # WebGL in headless Chromium (software)
    with ThreadedRunner() as server, DashComposite(
        server, browser="Chrome", headless=True, download_path=str(tmp_path),
        percy_run=False, percy_finalize=False, wait_timeout=15, options=[opts],
    ) as dc:
        dc.driver.set_window_size(1500, 1180)
        yield dc
