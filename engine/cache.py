"""Where tradebot caches: compiled Numba kernels and parsed bar files. One default, here.

=====================  ==========================================  ============================
variable               default in a source checkout                default elsewhere
=====================  ==========================================  ============================
``TRADEBOT_CACHE_DIR`` ``<checkout>/.cache/tradebot`` (bar cache)  ``~/.cache/tradebot``
``NUMBA_CACHE_DIR``    ``<checkout>/.cache/numba`` (kernels)       ``~/.cache/tradebot/numba``
=====================  ==========================================  ============================

A *source checkout* is the folder holding ``engine/`` when it also holds ``setup.cfg`` and is
writable (``pip install -e .``, ``make``, the tests); ``~/.cache`` is ``$XDG_CACHE_HOME`` when
that is set. A variable already set in the environment wins.

``apply_defaults()`` runs when the ``engine`` package is imported, i.e. before Numba is imported
by any command, test or benchmark (the kernels' packages import ``engine`` first), so the CLI finds
the same compiled kernels whether it runs through ``make``, directly, or under pytest. The
Makefile and ``tests/conftest.py`` set nothing of their own: they rely on this default.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


def _in_checkout() -> bool:
    return (_CHECKOUT / "setup.cfg").is_file() and os.access(_CHECKOUT, os.W_OK)


def default_dirs() -> dict[str, Path]:
    """The default of each cache variable (what ``apply_defaults`` sets when it is unset)."""
    if _in_checkout():
        base = _CHECKOUT / ".cache"
        return {"TRADEBOT_CACHE_DIR": base / "tradebot", "NUMBA_CACHE_DIR": base / "numba"}
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = (Path(xdg) if xdg else Path.home() / ".cache") / "tradebot"
    return {"TRADEBOT_CACHE_DIR": home, "NUMBA_CACHE_DIR": home / "numba"}


def apply_defaults() -> None:
    """Set each cache variable that is unset (or empty) to its default."""
    for var, path in default_dirs().items():
        if not os.environ.get(var):
            os.environ[var] = str(path)


def tradebot_cache_dir() -> Path:
    """The bar-cache root: ``$TRADEBOT_CACHE_DIR``, else its default."""
    env = os.environ.get("TRADEBOT_CACHE_DIR")
    return Path(env) if env else default_dirs()["TRADEBOT_CACHE_DIR"]
