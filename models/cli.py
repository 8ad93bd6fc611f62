"""``tradebot train CONFIG``: train the CNN signal model and write weights + model card."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # models.card imports torch: only when the command runs (engine/cli.py)
    from models.card import ClassificationReport, ModelCard


def register(subparsers: Any) -> None:  # argparse's _SubParsersAction is private
    """Add the ``train`` sub-command (entry point in ``tradebot.commands``)."""
    p = subparsers.add_parser(
        "train", help="train the CNN signal model (weights + model card)",
        description="Train PatternDetectorCNN on a bar file with a purged time split; writes "
        "<output.dir>/<output.name>.pt and .json (the model card). See docs/model.md.")
    p.add_argument("config", type=Path, help="training YAML, e.g. configs/train.yaml")
    p.add_argument("--data", help="bar file to use instead of data.file")
    p.add_argument("--out", type=Path, help="output folder instead of output.dir")
    p.add_argument("--name", help="file name stem instead of output.name")
    p.add_argument("--epochs", type=int, help="maximum epochs instead of training.epochs")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="instead of training.device")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _report_lines(name: str, rep: ClassificationReport) -> list[str]:
    lines = [f"  {name}: n={rep.n} accuracy={_fmt(rep.accuracy)} macro-F1={_fmt(rep.macro_f1)}"]
    for cls, s in rep.per_class.items():
        lines.append(f"    {cls:5s} precision={_fmt(s.precision)} recall={_fmt(s.recall)} "
                     f"f1={_fmt(s.f1)} support={s.support}")
    return lines


def summary(card: ModelCard, weights: Path) -> str:
    """Human-readable summary of a freshly trained model."""
    t = card.training
    lines = [
        f"wrote {weights} ({card.weights.bytes / 1e6:.2f} MB, {card.weights.n_parameters:,} "
        f"parameters) and its card {weights.with_suffix('.json')}",
        f"  data {card.data.file}: {card.data.n_bars:,} bars {card.data.first_open_utc} .. "
        f"{card.data.last_open_utc}; purge {card.purge_bars} bars between parts",
    ]
    for name, part in card.parts.items():
        lines.append(f"  {name:5s} {part.first_sample_utc} .. {part.last_sample_utc}  "
                     f"samples={part.n_samples:,} classes={part.class_counts}")
    lines.append(f"  features built in {t.build_seconds:.2f} s; trained {t.epochs_run} epochs "
                 f"in {t.seconds:.1f} s on {t.device}, best epoch {t.best_epoch}")
    for name in ("val", "test"):
        lines += _report_lines(name, card.metrics[name])
    for side, scores in card.signals.get("test", {}).items():
        s = scores[0]
        lines.append(f"  test {side} signals p>{s.threshold:.2f}: n={s.n_signals} precision="
                     f"{_fmt(s.precision, True)} (base rate {_fmt(s.base_rate, True)}"
                     + ("" if s.setup_signals is None else
                        f"; setup-only rule n={s.setup_signals} precision="
                        f"{_fmt(s.setup_precision, True)}") + ")")
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    from models.train import load_train_config, train

    overrides: dict[str, Any] = {}
    if args.data:
        overrides["data.file"] = args.data
    if args.epochs is not None:
        overrides["training.epochs"] = args.epochs
    if args.device:
        overrides["training.device"] = args.device
    if args.name:
        overrides["output.name"] = args.name
    cfg = load_train_config(args.config, overrides)
    res = train(cfg, progress=not args.no_progress, out_dir=args.out)
    print(summary(res.card, res.weights))
    return 0
