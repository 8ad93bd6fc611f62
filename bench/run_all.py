"""`make bench`: every benchmark, each measured against its reference in the same run.

Sections run in order; a section whose module is missing is reported, not skipped silently.
Results are printed and saved to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SECTIONS = [
    ("cli", "bench.bench_cli", {}),
    ("data", "bench.bench_data", {}),
    ("indicators", "bench.bench_indicators", {}),
    ("engine", "bench.bench_engine", {}),
    ("volume_profile", "bench.bench_volume_profile", {}),
    ("strategies", "bench.bench_strategies", {}),
    ("bridge", "bench.bench_bridge", {}),
    ("ui", "bench.bench_ui", {}),
    ("paper", "bench.bench_paper", {}),
    ("live", "bench.bench_live", {}),
    ("telegram", "bench.bench_telegram", {}),
    ("apex_venue", "bench.bench_apex_venue", {}),
    ("models", "bench.bench_models", {}),
    ("sweep", "bench.bench_sweep", {}),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="section names to run")
    args = ap.parse_args()
    out: dict[str, object] = {"machine": f"{platform.machine()} {platform.processor()}".strip(),
                              "python": platform.python_version()}
    failed = False
    for name, module, kwargs in SECTIONS:
        if args.only and name not in args.only:
            continue
        print(f"\n== {name} ==", flush=True)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            print(f"(not available: {exc})")
            out[name] = {"error": str(exc)}
            continue
        t0 = time.perf_counter()
        try:
            res = mod.run(**kwargs)
        except Exception:
            traceback.print_exc()
            failed = True
            out[name] = {"error": traceback.format_exc(limit=3)}
            continue
        for k, v in res.items():
            print(f"  {k:42s} {v:.4g}" if isinstance(v, float) else f"  {k:42s} {v}")
        print(f"  ({time.perf_counter() - t0:.1f} s)")
        out[name] = res
    dest = Path(__file__).resolve().parent / "results"
    dest.mkdir(exist_ok=True)
    (dest / "latest.json").write_text(json.dumps(out, indent=2, default=str))
    print(f"\nsaved {dest / 'latest.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
