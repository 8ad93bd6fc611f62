"""Exit 2, VAH exit: as POC target, but the partial target tries the value-area edge first.

Reference (§6.3.2): PPT priority VAH (> entry·1.01) -> POC -> entry·1.04 (shorts: VAL -> POC ->
entry·0.96); everything else as ``poc_target``.
"""

from __future__ import annotations

from typing import ClassVar

from strategies.poc_target import PocTarget, PocTargetParams


class VahExit(PocTarget):
    Params = PocTargetParams
    ORDER: ClassVar[tuple[str, str]] = ("va", "poc")
