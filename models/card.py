"""The model card: a JSON file beside the weights saying what the model is and how it did.

It records everything needed to rebuild and to trust a model: the architecture, the feature and
label specs with their hashes, the data file (hash, date range of each split part), class counts,
per-class precision / recall / F1 and confusion matrices on validation and on the untouched test
part, the precision of thresholded BUY / SELL signals, the training history, and library
versions. The inference handler refuses a model whose card does not match (:func:`check_card`).
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.config import format_validation_error
from engine.errors import ConfigError
from models.cnn import CLASSES, CnnSpec
from models.features import FEATURE_VERSION, FeatureSpec
from models.labels import LABEL_VERSION, BarrierLabel, LabelSpec, PointReturnLabel, label_digest

CARD_FORMAT = 1
_STRICT = ConfigDict(extra="forbid", frozen=True)


class ModelMismatchError(ConfigError):
    """A model's card does not match the weights file or the features this engine computes."""


class ClassScores(BaseModel):
    model_config = _STRICT
    precision: float | None  # None where the class was never predicted
    recall: float | None  # None where the class never occurs
    f1: float | None
    support: int


class ClassificationReport(BaseModel):
    """Scores of argmax predictions on one part. ``confusion[t][p]``: true t predicted p."""

    model_config = _STRICT
    n: int
    loss: float | None = None
    accuracy: float | None
    macro_f1: float | None
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]


class SignalScores(BaseModel):
    """Bars where ``p_side > threshold``: how often the label agreed and what price did next."""

    model_config = _STRICT
    threshold: float
    n_signals: int
    precision: float | None  # share of signals whose label is that side
    base_rate: float | None  # share of all bars labelled that side (what chance gives)
    mean_fwd_return: float | None  # mean return over the label horizon, sign-adjusted for SELL
    all_bars_fwd_return: float | None  # the same over every bar of the part
    # The rule without the model: signal on every bar where the label's setup holds (None when
    # the label has no setup). The model helps only if it beats this precision.
    setup_signals: int | None = None
    setup_precision: float | None = None


class PartInfo(BaseModel):
    model_config = _STRICT
    start_seq: int
    stop_seq: int
    first_sample_utc: str | None
    last_sample_utc: str | None
    n_samples: int
    class_counts: dict[str, int]


class DataInfo(BaseModel):
    model_config = _STRICT
    file: str
    sha256: str
    symbol: str
    timeframe: str
    n_bars: int
    first_open_utc: str
    last_open_utc: str


class TrainingInfo(BaseModel):
    model_config = _STRICT
    seed: int
    device: str
    threads: int
    max_epochs: int
    patience: int
    epochs_run: int
    best_epoch: int
    sample_step: int
    batch_size: int
    lr: float
    weight_decay: float
    focal_gamma: float
    alpha: list[float]
    seconds: float
    build_seconds: float
    history: list[dict[str, float]]


class WeightsInfo(BaseModel):
    model_config = _STRICT
    file: str
    sha256: str
    bytes: int
    n_parameters: int


class ModelCard(BaseModel):
    model_config = _STRICT
    format: int = CARD_FORMAT
    name: str
    created_utc: str
    model: CnnSpec
    features: FeatureSpec
    feature_version: int
    feature_hash: str
    labels: LabelSpec
    label_version: int
    label_hash: str
    data: DataInfo
    purge_bars: int
    parts: dict[str, PartInfo]
    training: TrainingInfo
    metrics: dict[str, ClassificationReport]
    signals: dict[str, dict[str, list[SignalScores]]] = Field(
        default_factory=dict, description="part -> side -> scores at each evaluated threshold")
    folds: list[dict[str, Any]] = Field(default_factory=list)
    weights: WeightsInfo
    versions: dict[str, str]
    notes: str = ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "numba", "pydantic", "ai-trading-bot"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _safe_div(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def classification_report(y_true: NDArray[np.integer], y_pred: NDArray[np.integer],
                          loss: float | None = None) -> ClassificationReport:
    """Per-class precision / recall / F1 and the confusion matrix of 3-class predictions."""
    k = len(CLASSES)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    per: dict[str, ClassScores] = {}
    f1s: list[float] = []
    for c, name in enumerate(CLASSES):
        tp = conf[c, c]
        p = _safe_div(tp, conf[:, c].sum())
        r = _safe_div(tp, conf[c, :].sum())
        if p is not None and r is not None:
            f1: float | None = 2 * p * r / (p + r) if p + r > 0 else 0.0
        else:
            # Never predicted (precision undefined) or never present (recall undefined): no hit,
            # so F1 is 0 when either count is non-zero; undefined only when both are.
            f1 = 0.0 if (conf[:, c].sum() or conf[c, :].sum()) else None
        per[name] = ClassScores(precision=p, recall=r, f1=f1, support=int(conf[c, :].sum()))
        if f1 is not None:
            f1s.append(f1)
    n = int(conf.sum())
    return ClassificationReport(
        n=n, loss=loss, accuracy=_safe_div(np.trace(conf), n),
        macro_f1=float(np.mean(f1s)) if f1s else None, per_class=per, confusion=conf.tolist())


def signal_scores(probs: NDArray[np.floating], y_true: NDArray[np.integer],
                  fwd_return: NDArray[np.floating], threshold: float,
                  setups: tuple[NDArray[np.bool_], NDArray[np.bool_]] | None = None
                  ) -> dict[str, SignalScores]:
    """Precision of ``p_buy > threshold`` and ``p_sell > threshold`` against the labels.

    ``setups`` (BUY, SELL masks of the label's setup on the same rows) adds the rule-only
    baseline.

    Raw per-bar thresholds: the reference bot's ±30-bar peak suppression looked at future bars
    and is not reproduced here (the strategies decide how to de-duplicate signals causally).
    """
    out: dict[str, SignalScores] = {}
    finite = np.isfinite(fwd_return)
    for c, name, sign in ((1, "buy", 1.0), (2, "sell", -1.0)):
        fired = probs[:, c] > threshold
        setup = None if setups is None else setups[c - 1]
        hits = int((y_true[fired] == c).sum())
        fr = sign * fwd_return
        sel = fired & finite
        out[name] = SignalScores(
            threshold=threshold, n_signals=int(fired.sum()),
            precision=_safe_div(hits, int(fired.sum())),
            base_rate=_safe_div(int((y_true == c).sum()), y_true.shape[0]),
            mean_fwd_return=float(fr[sel].mean()) if sel.any() else None,
            all_bars_fwd_return=float(fr[finite].mean()) if finite.any() else None,
            setup_signals=None if setup is None else int(setup.sum()),
            setup_precision=None if setup is None else _safe_div(int((y_true[setup] == c).sum()),
                                                                  int(setup.sum())))
    return out


def card_path(weights: Path) -> Path:
    """The card of a weights file: the same name with ``.json``."""
    return weights.with_suffix(".json")


def load_card(path: Path) -> ModelCard:
    """Read and validate a model card.

    Raises:
        ModelMismatchError: the file is missing or not a valid card.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelMismatchError(
            f"model card {path} not found; every weights file needs its card beside it (written "
            "by `tradebot train`)") from None
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as exc:
        raise ModelMismatchError(
            f"{path} is not a valid model card (format {CARD_FORMAT}):\n"
            f"{format_validation_error(exc)}") from None


def _diff(a: BaseModel, b: BaseModel) -> str:
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    return ", ".join(f"{k} (model {da.get(k)!r}, engine {db.get(k)!r})"
                     for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k))


def check_card(card: ModelCard, weights: Path, engine_features: FeatureSpec) -> None:
    """Refuse a model that would see other features than it was trained on.

    Checks: the card's feature code version and hash, that its spec equals the features this
    engine is configured to compute, the label hash, and the weights file's hash.

    Raises:
        ModelMismatchError: with what differs and how to fix it.
    """
    where = f"model {weights}"
    if card.feature_version != FEATURE_VERSION:
        raise ModelMismatchError(
            f"{where} was trained with feature code version {card.feature_version}, this engine "
            f"computes version {FEATURE_VERSION}; retrain it (`tradebot train CONFIG`)")
    if card.feature_hash != card.features.digest():
        raise ModelMismatchError(
            f"{where}: its card's feature hash {card.feature_hash} does not match its feature "
            f"spec ({card.features.digest()}); the card was edited or corrupted: retrain")
    if card.features != engine_features:
        raise ModelMismatchError(
            f"{where} was trained on other features than this engine computes: "
            f"{_diff(card.features, engine_features)}. Set the cnn feature's params.features to "
            "the model's (see its card) or use a model trained with these features")
    labels: PointReturnLabel | BarrierLabel = card.labels
    expect = label_digest(labels, card.features)
    if card.label_version != LABEL_VERSION or card.label_hash != expect:
        raise ModelMismatchError(
            f"{where}: label rule version/hash in the card do not match its label spec; the card "
            "was edited or comes from another version: retrain")
    if not weights.is_file():
        raise ModelMismatchError(f"{where}: weights file not found")
    digest = sha256_file(weights)
    if digest != card.weights.sha256:
        raise ModelMismatchError(
            f"{where}: weights sha256 {digest[:12]}... differs from its card's "
            f"{card.weights.sha256[:12]}...; the weights and card are from different trainings")
