"""Train a ``PatternDetectorCNN`` without leakage and write its weights and model card.

``tradebot train configs/train.yaml`` runs :func:`train`:

1. load and validate the bars (``engine.datafile``), optionally a date range of them;
2. build every bar's features (``models.features``, the engine's own kernels: seconds for 69k
   bars) and labels (``models.labels``);
3. cut the bars in time order into train / validation / test with a purge gap of at least the
   feature lookback plus the label horizon at each boundary (``models.splits``);
4. fit with AdamW and the focal loss (class weights from the training part only), keeping the
   weights of the epoch with the lowest validation loss and stopping after ``patience`` epochs
   without improvement;
5. score those weights on validation and on the untouched test part, optionally run
   walk-forward folds, and write ``<name>.pt`` (a ``state_dict``, loadable with
   ``weights_only=True``) and ``<name>.json`` (the model card, ``models.card``).

Seeded and deterministic on CPU (same config, same threads -> same weights); CUDA is used when
present (``device: auto``) but never required.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.bars import Bars
from engine.config import read_yaml, validate_config
from engine.datafile import load_bars
from engine.errors import ConfigError, DataError
from models.card import (
    ClassificationReport,
    DataInfo,
    ModelCard,
    PartInfo,
    TrainingInfo,
    WeightsInfo,
    classification_report,
    library_versions,
    sha256_file,
    signal_scores,
)
from models.cnn import CLASSES, CnnSpec, PatternDetectorCNN, n_parameters
from models.features import FEATURE_VERSION, FeatureSet, FeatureSpec, build_features
from models.inference import pick_device, predict_proba
from models.labels import (
    LABEL_VERSION,
    BarrierLabel,
    LabelSpec,
    PointReturnLabel,
    label_digest,
    make_labels,
    setup_masks,
)
from models.losses import FocalLoss, class_weights
from models.splits import Part, Split, SplitSpec, time_split

logger = logging.getLogger(__name__)
_STRICT = ConfigDict(extra="forbid", frozen=True)


class TrainDataConfig(BaseModel):
    model_config = _STRICT
    file: Path
    gaps: Literal["fail", "keep", "fill"] = "fail"
    start: str | None = Field(default=None, description="first bar open time to use (UTC)")
    end: str | None = Field(default=None, description="last bar open time to use (UTC)")
    max_bars: int | None = Field(default=None, ge=500, description="keep only the first N bars")


class OptimConfig(BaseModel):
    model_config = _STRICT
    seed: int = 7
    epochs: int = Field(default=40, ge=1, le=10_000)
    patience: int = Field(default=6, ge=1, description="epochs without a better validation loss")
    batch_size: int = Field(default=512, ge=2, le=65_536)
    lr: float = Field(default=1e-4, gt=0, le=1.0)
    weight_decay: float = Field(default=0.05, ge=0, le=1.0)
    focal_gamma: float = Field(default=2.0, ge=0, le=10)
    alpha: Literal["balanced"] | tuple[float, float, float] = Field(
        default="balanced", description="class weights; balanced = N / (3 * count), x boost")
    signal_boost: float = Field(default=2.0, gt=0, description="extra weight of BUY and SELL")
    sample_step: int = Field(default=1, ge=1, le=100, description="use every k-th bar (ref: 2)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(default=2, ge=1, le=256, description="torch CPU threads")
    amp: bool = Field(default=False, description="bfloat16 autocast, CUDA only")


class EvalConfig(BaseModel):
    model_config = _STRICT
    signal_thresholds: tuple[float, ...] = Field(
        default=(0.30, 0.50, 0.70), min_length=1,
        description="p_buy / p_sell thresholds scored on validation and test; the first is the "
        "headline (0.30: the reference bot's nn_threshold)")

    @model_validator(mode="after")
    def _in_range(self) -> EvalConfig:
        bad = [t for t in self.signal_thresholds if not 0.0 < t < 1.0]
        if bad:
            raise ValueError(f"signal_thresholds must lie strictly between 0 and 1, got {bad}")
        return self


class TrainOutputConfig(BaseModel):
    model_config = _STRICT
    dir: Path = Path("runs/models")
    name: str = Field(default="cnn", pattern=r"^[A-Za-z0-9_.-]+$")


class TrainConfig(BaseModel):
    """``configs/train.yaml``: unknown keys are refused."""

    model_config = _STRICT
    data: TrainDataConfig
    features: FeatureSpec = FeatureSpec()
    labels: LabelSpec = PointReturnLabel()
    model: CnnSpec = CnnSpec.small()
    split: SplitSpec = SplitSpec()
    training: OptimConfig = OptimConfig()
    evaluation: EvalConfig = EvalConfig()
    output: TrainOutputConfig = TrainOutputConfig()
    notes: str = Field(default="", description="free text copied into the model card")

    @model_validator(mode="before")
    @classmethod
    def _model_preset(cls, raw: Any) -> Any:
        """``model: {preset: small, dropout: 0.2}`` = the preset's sizes with the given changes."""
        if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
            return raw
        given = dict(raw["model"])
        preset = given.pop("preset", "custom")
        if preset not in ("reference", "small"):
            return raw
        base = CnnSpec.from_preset(preset).model_dump()
        changed = {k: v for k, v in given.items() if base.get(k) != v}
        base.update(given)
        base["preset"] = "custom" if changed else preset
        return {**raw, "model": base}


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a training YAML.

    Args:
        overrides: dotted keys set after reading (``{"training.epochs": 2}``).

    Raises:
        ConfigError: missing file, bad YAML, unknown keys or wrong values (each key path named).
    """
    raw = read_yaml(path, "training config", overrides)
    return validate_config(TrainConfig, raw, path, "training config")


# -- data -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """Every bar's features, labels and forward returns, plus the usable sample mask."""

    bars: Bars
    features: FeatureSet
    labels: NDArray[np.int8]
    fwd_return: NDArray[np.float64]
    usable: NDArray[np.bool_]
    build_seconds: float
    setups: tuple[NDArray[np.bool_], NDArray[np.bool_]] | None = None


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _to_ns(text: str, key: str) -> int:
    try:
        return int(np.datetime64(text.replace("Z", ""), "ns").astype(np.int64))
    except ValueError:
        raise ConfigError(f"data.{key}: {text!r} is not a date/time like 2024-01-31 or "
                          "2024-01-31 12:00:00") from None


def load_training_bars(cfg: TrainDataConfig) -> Bars:
    """The bars a training config names (date range and ``max_bars`` applied)."""
    bars = load_bars(cfg.file, gaps=cfg.gaps)
    lo, hi = 0, len(bars)
    if cfg.start:
        lo = int(np.searchsorted(bars.ts_open_ns, _to_ns(cfg.start, "start"), side="left"))
    if cfg.end:
        hi = int(np.searchsorted(bars.ts_open_ns, _to_ns(cfg.end, "end"), side="right"))
    if cfg.max_bars is not None:
        hi = min(hi, lo + cfg.max_bars)
    if hi - lo < 500:
        raise DataError(f"{cfg.file}: only {hi - lo} bars between start={cfg.start} and "
                        f"end={cfg.end}; training needs at least 500")
    return bars.slice(lo, hi)


def build_dataset(bars: Bars, features: FeatureSpec, labels: PointReturnLabel | BarrierLabel,
                  sample_step: int = 1) -> Dataset:
    """Features and labels of every bar; ``usable`` = valid features, known label, on the step."""
    t0 = time.perf_counter()
    fs = build_features(bars, features)
    y = make_labels(bars, labels, features)
    h = labels.horizon_bars
    close = np.asarray(bars.close, dtype=np.float64)
    fwd = np.full(len(bars), np.nan)
    fwd[: len(bars) - h] = close[h:] / close[: len(bars) - h] - 1.0
    usable = fs.valid & (y >= 0)
    setups = None
    if labels.setup is not None:
        setups = setup_masks(bars, labels.setup, features.shift)
    if sample_step > 1:
        # Step from the first valid bar (as the reference bot stepped from bar 200).
        on_step = (np.arange(len(bars)) - features.first_valid_bar) % sample_step == 0
        usable &= on_step
    return Dataset(bars, fs, y, fwd, usable, time.perf_counter() - t0, setups)


# -- training -------------------------------------------------------------------------------------
@dataclass
class FitResult:
    model: PatternDetectorCNN
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]]
    alpha: list[float]
    seconds: float


def _tensors(ds: Dataset, seqs: NDArray[np.int64], device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s60 = torch.from_numpy(np.ascontiguousarray(ds.features.s60[seqs])).to(device)
    vp = torch.from_numpy(np.ascontiguousarray(ds.features.vp[seqs])).to(device)
    y = torch.from_numpy(ds.labels[seqs].astype(np.int64)).to(device)
    return s60, vp, y


def _counts(y: NDArray[np.integer]) -> list[int]:
    return [int(c) for c in np.bincount(np.asarray(y, dtype=np.int64), minlength=len(CLASSES))]


def _mean_loss(model: PatternDetectorCNN, loss_fn: FocalLoss, s60: torch.Tensor,
               vp: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, y.shape[0], batch):
            out = model(s60[i : i + batch], vp[i : i + batch])
            total += float(loss_fn(out, y[i : i + batch])) * out.shape[0]
    return total / max(int(y.shape[0]), 1)


def fit(cfg: TrainConfig, ds: Dataset, train_seqs: NDArray[np.int64],
        val_seqs: NDArray[np.int64], device: torch.device,
        on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Fit one model with early stopping on the validation loss; return the best epoch's model.

    Raises:
        ConfigError: a part has no samples.
    """
    o = cfg.training
    if train_seqs.size < 2 or val_seqs.size < 1:
        raise ConfigError(f"not enough samples to train ({train_seqs.size} train, "
                          f"{val_seqs.size} validation); use more data")
    torch.manual_seed(o.seed)
    np.random.seed(o.seed)  # noqa: NPY002 - nothing else here draws from numpy; torch seeds all
    gen = torch.Generator(device="cpu").manual_seed(o.seed)
    model = PatternDetectorCNN(cfg.model, cfg.features.window_bars, cfg.features.vp_bins).to(device)
    counts = _counts(ds.labels[train_seqs])
    alpha = class_weights(counts, o.signal_boost) if o.alpha == "balanced" else list(o.alpha)
    loss_fn = FocalLoss(alpha, o.focal_gamma).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    tr = _tensors(ds, train_seqs, device)
    va = _tensors(ds, val_seqs, device)
    use_amp = o.amp and device.type == "cuda"
    best = math.inf
    best_state: dict[str, torch.Tensor] = {}
    best_epoch = 0
    history: list[dict[str, float]] = []
    n = int(tr[2].shape[0])
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(1, o.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        run_loss, seen = 0.0, 0
        for i in range(0, n, o.batch_size):
            idx = order[i : i + o.batch_size]
            if idx.shape[0] < 2:  # BatchNorm cannot train on a batch of one
                continue
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(tr[0][idx], tr[1][idx])
            loss = loss_fn(out, tr[2][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item() * idx.shape[0]
            seen += int(idx.shape[0])
        val_loss = _mean_loss(model, loss_fn, *va)
        row = {"epoch": float(epoch), "train_loss": run_loss / max(seen, 1), "val_loss": val_loss}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if val_loss < best:
            best, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= o.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, best_epoch, epoch, history, alpha, time.perf_counter() - t0)


def _evaluate(model: PatternDetectorCNN, ds: Dataset, seqs: NDArray[np.int64],
              alpha: list[float], gamma: float, device: torch.device
              ) -> tuple[ClassificationReport, NDArray[np.float64]]:
    probs = predict_proba(model, ds.features.s60[seqs], ds.features.vp[seqs], device,
                          batch_size=4096)
    y = ds.labels[seqs].astype(np.int64)
    with torch.inference_mode():
        logp = torch.from_numpy(np.log(np.clip(probs, 1e-30, 1.0)))
        # The focal loss of softmax probabilities equals that of the logits (softmax is
        # shift-invariant), so the same number as the early-stopping loss.
        loss = float(FocalLoss(alpha, gamma)(logp, torch.from_numpy(y))) if y.size else None
    return classification_report(y, probs.argmax(axis=1), loss), probs


def _part_info(ds: Dataset, part: Part, seqs: NDArray[np.int64]) -> PartInfo:
    ts = ds.bars.ts_open_ns
    counts = _counts(ds.labels[seqs])
    return PartInfo(
        start_seq=part.start, stop_seq=part.stop,
        first_sample_utc=_utc(int(ts[seqs[0]])) if seqs.size else None,
        last_sample_utc=_utc(int(ts[seqs[-1]])) if seqs.size else None,
        n_samples=int(seqs.size), class_counts=dict(zip(CLASSES, counts, strict=True)))


@dataclass
class TrainResult:
    weights: Path
    card: ModelCard
    card_path: Path


def train(cfg: TrainConfig, *, data_label: str | None = None, progress: bool = False,
          out_dir: Path | None = None, bars: Bars | None = None) -> TrainResult:
    """Run the whole pipeline (module docstring) and write weights and card.

    Args:
        cfg: the validated config.
        data_label: how to name the data file in the card (default: the configured path).
        progress: show a progress bar over epochs on stderr.
        out_dir: overrides ``cfg.output.dir``.
        bars: train on exactly these bars (bars of ``cfg.data.file``, e.g. a sweep's
            walk-forward train window) instead of loading ``cfg.data``.

    Raises:
        ConfigError, DataError: bad config or data (messages name the key or file).
    """
    from tqdm.auto import tqdm

    o = cfg.training
    prev_threads = torch.get_num_threads()
    prev_det = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(o.threads)
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        device = pick_device(o.device)
        if bars is None:
            bars = load_training_bars(cfg.data)
        ds = build_dataset(bars, cfg.features, cfg.labels, o.sample_step)
        logger.info("built %d samples from %d bars in %.2f s", int(ds.usable.sum()), len(bars),
                    ds.build_seconds)
        split = time_split(len(bars), cfg.split, cfg.features.lookback_bars,
                           cfg.labels.horizon_bars)
        seqs = {p.name: p.seqs(ds.usable) for p in split.parts()}
        bar = tqdm(total=o.epochs, desc="train", unit="epoch", disable=not progress)

        def tick(row: dict[str, float]) -> None:
            bar.update(1)
            bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}")

        fitted = fit(cfg, ds, seqs["train"], seqs["val"], device, tick)
        bar.close()
        metrics: dict[str, ClassificationReport] = {}
        signals = {}
        for name in ("val", "test"):
            rep, probs = _evaluate(fitted.model, ds, seqs[name], fitted.alpha, o.focal_gamma,
                                   device)
            metrics[name] = rep
            rows = seqs[name]
            setups = None if ds.setups is None else (ds.setups[0][rows], ds.setups[1][rows])
            per_t = [signal_scores(probs, ds.labels[rows].astype(np.int64), ds.fwd_return[rows],
                                   t, setups) for t in cfg.evaluation.signal_thresholds]
            signals[name] = {side: [d[side] for d in per_t] for side in ("buy", "sell")}
        folds = _walk_forward(cfg, ds, split, device, progress)
        dest = out_dir or cfg.output.dir
        return _write(cfg, ds, split, seqs, fitted, metrics, signals, folds, device, dest,
                      data_label or str(cfg.data.file))
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det[0], warn_only=prev_det[1])


def _walk_forward(cfg: TrainConfig, ds: Dataset, split: Split, device: torch.device,
                  progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    out: list[dict[str, Any]] = []
    for tr, va in tqdm(split.folds, desc="walk-forward", disable=not progress or not split.folds):
        tr_seqs, va_seqs = tr.seqs(ds.usable), va.seqs(ds.usable)
        fitted = fit(cfg, ds, tr_seqs, va_seqs, device)
        rep, _ = _evaluate(fitted.model, ds, va_seqs, fitted.alpha, cfg.training.focal_gamma,
                           device)
        out.append({"train": _part_info(ds, tr, tr_seqs).model_dump(),
                    "val": _part_info(ds, va, va_seqs).model_dump(),
                    "best_epoch": fitted.best_epoch, "report": rep.model_dump()})
    return out


def _write(cfg: TrainConfig, ds: Dataset, split: Split, seqs: dict[str, NDArray[np.int64]],
           fitted: FitResult, metrics: dict[str, ClassificationReport],
           signals: dict[str, Any], folds: list[dict[str, Any]], device: torch.device,
           dest: Path, data_label: str) -> TrainResult:
    dest.mkdir(parents=True, exist_ok=True)
    weights = dest / f"{cfg.output.name}.pt"
    # A plain state_dict of tensors: loadable with torch.load(weights_only=True), no pickle code.
    state = {k: v.detach().cpu().contiguous() for k, v in fitted.model.state_dict().items()}
    torch.save(state, weights)
    bars = ds.bars
    parts = {p.name: _part_info(ds, p, seqs[p.name]) for p in split.parts()}
    card = ModelCard(
        name=cfg.output.name,
        created_utc=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
        model=cfg.model, features=cfg.features, feature_version=FEATURE_VERSION,
        feature_hash=cfg.features.digest(), labels=cfg.labels, label_version=LABEL_VERSION,
        label_hash=label_digest(cfg.labels, cfg.features),
        data=DataInfo(file=data_label, sha256=sha256_file(Path(cfg.data.file)),
                      symbol=bars.symbol, timeframe=bars.timeframe, n_bars=len(bars),
                      first_open_utc=_utc(int(bars.ts_open_ns[0])),
                      last_open_utc=_utc(int(bars.ts_open_ns[-1]))),
        purge_bars=split.purge_bars, parts=parts,
        training=TrainingInfo(
            seed=cfg.training.seed, device=str(device), threads=cfg.training.threads,
            max_epochs=cfg.training.epochs, patience=cfg.training.patience,
            epochs_run=fitted.epochs_run, best_epoch=fitted.best_epoch,
            sample_step=cfg.training.sample_step, batch_size=cfg.training.batch_size,
            lr=cfg.training.lr,
            weight_decay=cfg.training.weight_decay, focal_gamma=cfg.training.focal_gamma,
            alpha=fitted.alpha, seconds=round(fitted.seconds, 2),
            build_seconds=round(ds.build_seconds, 3), history=fitted.history),
        metrics=metrics, signals=signals, folds=folds,
        weights=WeightsInfo(file=weights.name, sha256=sha256_file(weights),
                            bytes=weights.stat().st_size,
                            n_parameters=n_parameters(fitted.model)),
        versions=library_versions(),
        notes=cfg.notes,
    )
    card_file = weights.with_suffix(".json")
    tmp = card_file.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2) + "\n")
    tmp.replace(card_file)  # atomic: a reader never sees half a card
    return TrainResult(weights, card, card_file)


class WindowTrainer:
    """Entry point ``cnn`` of ``tradebot.model_trainers``: how ``tradebot sweep`` retrains the
    CNN on each walk-forward train window (``walk_forward.retrain_model``; engine/ cannot import
    models/, so the sweep finds this through the entry point, as the engine finds ``CnnHandler``).

    The training config's own ``data`` and ``output`` sections are replaced: the model sees
    exactly the bars it is given (its purged train / validation / test split is cut inside
    them) and is written where the sweep says.
    """

    @staticmethod
    def validate(raw: dict[str, Any], where: str) -> dict[str, Any]:
        """The training config, validated (data and output left out); JSON-able.

        Raises:
            ConfigError: unknown keys or bad values, named by key path.
        """
        body = {k: v for k, v in raw.items() if k not in ("data", "output")}
        cfg = validate_config(TrainConfig, {**body, "data": {"file": "window.csv"}}, where,
                              "training config")
        return cfg.model_dump(mode="json", exclude={"data", "output"})

    @staticmethod
    def check_bars(config: dict[str, Any], n_bars: int, where: str) -> None:
        """Refuse a train window too short for the config's purged split, before any run.

        Raises:
            ConfigError: a part of the split would be empty.
        """
        cfg = TrainConfig.model_validate({**config, "data": {"file": "window.csv"}})
        try:
            time_split(n_bars, cfg.split, cfg.features.lookback_bars, cfg.labels.horizon_bars)
        except ConfigError as exc:
            raise ConfigError(f"{where}: a train window of {n_bars} bars is too short for the "
                              f"training config's split ({exc}); raise walk_forward.train_bars "
                              "or change split in the training config") from None

    @staticmethod
    def train(config: dict[str, Any], bars: Bars, out_dir: str | Path, name: str,
              data_file: str) -> dict[str, Any]:
        """Train on ``bars`` only; write ``out_dir/name.pt`` and its card.

        Returns:
            ``weights`` (path), ``sha256``, ``handler_params`` (the ``cnn`` feature handler's
            params that load this model), the bars seen (``n_bars``, ``first_ns``,
            ``last_ns``), ``samples`` per part, ``best_epoch``, ``epochs_run``, ``val_loss``,
            ``test_accuracy``, ``seconds``.
        """
        cfg = TrainConfig.model_validate(
            {**config, "data": {"file": data_file}, "output": {"dir": str(out_dir), "name": name}})
        t0 = time.perf_counter()
        res = train(cfg, out_dir=Path(out_dir), bars=bars)
        card = res.card
        return {
            "weights": str(res.weights), "sha256": card.weights.sha256,
            "handler_params": {"model": str(res.weights),
                               "features": cfg.features.model_dump(mode="json")},
            "n_bars": len(bars), "first_ns": int(bars.ts_open_ns[0]),
            "last_ns": int(bars.ts_open_ns[-1]),
            "samples": {k: v.n_samples for k, v in card.parts.items()},
            "best_epoch": card.training.best_epoch, "epochs_run": card.training.epochs_run,
            "val_loss": card.metrics["val"].loss, "test_accuracy": card.metrics["test"].accuracy,
            "seconds": round(time.perf_counter() - t0, 3)}
