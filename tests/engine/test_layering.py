"""Imports point down the layers, never up (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["engine", "indicators", "models", "strategies", "adapters", "ui"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    bad = []
    for py in (ROOT / layer).rglob("*.py"):
        up = _imports(py) & above
        if up:
            bad.append(f"{py.relative_to(ROOT)} imports {sorted(up)}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_only_models_imports_torch():
    bad = [
        str(py.relative_to(ROOT))
        for layer in LAYERS if layer != "models"
        for py in (ROOT / layer).rglob("*.py")
        if "torch" in _imports(py)
    ]
    assert not bad, f"torch imported outside models/: {bad}"
