"""Start-up time of the ``tradebot`` command line, against a bare Python start in the same run.

- ``python_pass_s``: median of 5 runs of ``python -c pass`` (the interpreter alone);
- ``tradebot_help_s``: median of 5 runs of ``tradebot --help`` (build the CLI, print the help);
- ``tradebot_run_help_s``: median of 5 runs of ``tradebot run --help`` (imports one command);
- ``help_over_python``: the ratio ``tradebot_help_s / python_pass_s``, the number to compare
  between machines (the target is ``tradebot --help`` < 0.5 s; it was ~2.8 s when every command,
  torch included, was imported to build the parser).

Each is a fresh subprocess (nothing cached in memory); the CLI runs as ``python -m engine.cli``
with this interpreter, the same code path as the ``tradebot`` console script. Run alone:
``python bench/bench_cli.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _median_s(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(runs: int = 5) -> dict[str, object]:
    py = sys.executable
    base = _median_s([py, "-c", "pass"], runs)
    helps = _median_s([py, "-m", "engine.cli", "--help"], runs)
    run_help = _median_s([py, "-m", "engine.cli", "run", "--help"], runs)
    return {
        "python_pass_s": base,
        "tradebot_help_s": helps,
        "tradebot_run_help_s": run_help,
        "help_over_python": helps / base,
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:24s} {v:.4g}" if isinstance(v, float) else f"{k:24s} {v}")
