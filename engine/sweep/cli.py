"""``tradebot sweep SWEEP.yaml [--data FILE] [--out DIR] [--max-candidates N] [--scheduler ADDR]
[--workers N]``: parameter sweeps, optimisation and walk-forward (docs/sweeps.md).

Nothing heavy is imported here at module level (the CLI loads every command's ``register``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sweep", help="parameter sweep / optimisation / walk-forward of a run "
                       "config (grid, random, Optuna TPE; local processes or a Dask cluster)")
    p.add_argument("sweep", type=Path, help="sweep file, e.g. configs/sweep.yaml")
    p.add_argument("--data", type=Path, help="bar CSV to use instead of the run config's")
    p.add_argument("--out", type=Path, help="output folder (default: the sweep's out, else "
                   "runs/sweep-NAME); an existing one is resumed")
    p.add_argument("--max-candidates", type=int, metavar="N",
                   help="run at most the first N candidates (trials); rerun without it to go on")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: the sweep's execution.workers; 0 = "
                   "one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    import sys

    from engine.errors import ConfigError
    from engine.sweep.runner import run_sweep
    from engine.sweep.space import load_sweep

    if args.max_candidates is not None and args.max_candidates < 1:
        raise ConfigError(f"--max-candidates must be at least 1, got {args.max_candidates}")
    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers must be 0 (one per core) or more, got {args.workers}")
    plan = load_sweep(args.sweep, data=args.data)
    out = run_sweep(plan, args.out, max_candidates=args.max_candidates, workers=args.workers,
                    scheduler=args.scheduler,
                    progress=not args.no_progress and sys.stderr.isatty())
    s = out.summary
    print(f"sweep {plan.spec.name}: {len(out.rows)} candidates, {out.ran} runs executed, "
          f"{out.reused} reused, {out.failed} failed; {s['executor']}, {s['elapsed_s']:.1f} s")
    print(_top(out.rows, 10))
    d = s.get("diagnostics", {})
    if "pbo" in d:
        print(f"PBO (CSCV): {d['pbo']['pbo']:.2f}")
    if "deflated_sharpe" in d:
        print(f"deflated Sharpe ratio of the best: {d['deflated_sharpe']['dsr']:.3f}")
    if s.get("mode") == "walk_forward":
        print(f"walk-forward out-of-sample return %: {s.get('oos_return_pct')}")
    rt = s.get("retrain_model") or {}
    if "compounded_return_pct" in rt:
        c = rt["compounded_return_pct"]
        print(f"CNN retrained per window, out-of-sample return % compounded over "
              f"{rt['compared_windows']} test windows: rules {c['rules']:.2f}, hybrid "
              f"{c['hybrid']:.2f} (hybrid better in {rt['hybrid_better_windows']})")
    print(f"results: {', '.join(str(p) for p in out.paths)}")
    if out.rows and all(r["status"] == "failed" for r in out.rows):
        first = next((r["error"] for r in out.rows if r.get("error")), "?")
        print(f"error: every candidate failed; the first error: {first}", file=sys.stderr)
        return 1
    return 0


def _top(rows: list[dict[str, object]], n: int) -> str:
    lines = []
    for i, r in enumerate(rows[:n], 1):
        sc = r.get("score")
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())  # type: ignore[union-attr]
        score = "ineligible" if sc is None else f"{sc:+.4f}"
        if r.get("status") == "failed":
            score = "FAILED"
        lines.append(f"{i:3d}. {score:>10}  {r['strategy']}  {params}")
    return "\n".join(lines)
