"""The CNN on the bus: ``p_hold``, ``p_buy``, ``p_sell`` per bar into the feature store.

``CnnHandler`` (entry point ``cnn`` in ``tradebot.feature_handlers``) loads a weights file and its
model card, refuses it when the card does not match the features this engine computes
(``models.card.check_card``), and then writes three columns, ``{id}_p_hold``, ``{id}_p_buy`` and
``{id}_p_sell`` (softmax probabilities, NaN where the sample is invalid or still warming up):

- ``on_bar_closed`` (paper/live): the bar's features from ``models.features.FeatureStream``
  (bars <= the bar only) through the model as a batch of one;
- ``precompute`` (backtest): every bar's features from ``models.features.build_features`` (the
  same kernels, proven bit-identical) through the model in batches.

**Exactness.** Float32 matrix products on CPU round differently for different batch shapes
(about 1e-8 here), so by default the model runs in float64 (``precision: float64``): batch and
per-bar probabilities then agree to ~1e-16. The batch pass also runs fixed, aligned chunks
(rows ``[c * batch_size, (c + 1) * batch_size)``, the last one padded), so a bar's probabilities
never depend on how much data follows it: the prefix (lookahead) check compares them exactly.
``precision: float32`` is faster and agrees to ~1e-8.

**Latency.** The per-bar pass runs on ``threads`` torch threads (default 1): a batch of one gains
little from more, and a second thread waiting on a core that other work holds turned a ~1 ms
forward pass into ~50-100 ms spikes. The reference-size network needs ``precision: float32`` for
a per-bar p99 under 5 ms on two cores (``bench/bench_models.py``, ``docs/model.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from engine.bars import BarStore
from engine.events import BarClosed
from engine.features import FeatureStore
from indicators.bar_order import BarOrder
from models.card import ModelCard, ModelMismatchError, card_path, check_card, load_card
from models.cnn import CLASSES, PatternDetectorCNN
from models.features import FeatureSpec, FeatureStream, build_features_from_columns, warm_up

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "cnn_small.pt"

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["float64", "float32"]


def pick_device(choice: Device = "auto") -> torch.device:
    """CUDA when asked for or (``auto``) when present, else CPU.

    Raises:
        ModelMismatchError: ``cuda`` was asked for and none is available.
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise ModelMismatchError("device 'cuda' was asked for but torch sees no CUDA device; "
                                 "use device: auto or cpu")
    if choice == "cpu":
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_model_path(model: str) -> Path:
    """``default`` -> the shipped model; otherwise the given path."""
    return DEFAULT_MODEL if model == "default" else Path(model)


class LoadedModel:
    """A model in eval mode, with its card, on one device and in one precision."""

    def __init__(self, net: PatternDetectorCNN, card: ModelCard, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.net = net
        self.card = card
        self.device = device
        self.dtype = dtype


def load_model(weights: Path, engine_features: FeatureSpec, device: Device = "auto",
               precision: Precision = "float64") -> LoadedModel:
    """Load weights with ``torch.load(weights_only=True)`` after checking the card.

    Args:
        weights: the ``.pt`` file; its card is the ``.json`` beside it.
        engine_features: the features this engine computes; the card's must be equal.
        device: where to run.
        precision: float64 (exact batch/per-bar parity) or float32.

    Raises:
        ModelMismatchError: missing or mismatched card, weights that do not fit the architecture.
    """
    card = load_card(card_path(weights))
    check_card(card, weights, engine_features)
    dev = pick_device(device)
    try:
        state = torch.load(weights, map_location=dev, weights_only=True)
    except Exception as exc:  # any unreadable file: say which and why
        raise ModelMismatchError(f"model {weights}: torch.load failed: {exc}") from exc
    # Weights saved from a torch.compile'd module carry this prefix (the reference loader's fix).
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    net = PatternDetectorCNN(card.model, card.features.window_bars, card.features.vp_bins)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelMismatchError(
            f"model {weights}: its weights do not fit the architecture in its card "
            f"({card.model.preset}): {exc}") from exc
    dtype = torch.float64 if precision == "float64" else torch.float32
    net = net.to(device=dev, dtype=dtype).eval()
    return LoadedModel(net, card, dev, dtype)


def predict_proba(net: PatternDetectorCNN, s60: NDArray[np.float32], vp: NDArray[np.float32],
                  device: torch.device, batch_size: int = 1024,
                  dtype: torch.dtype = torch.float32) -> NDArray[np.float64]:
    """Softmax probabilities ``[n, 3]`` of finite feature rows, in consecutive batches."""
    net.eval()
    out = np.empty((s60.shape[0], len(CLASSES)))
    with torch.inference_mode():
        for i in range(0, s60.shape[0], batch_size):
            a = torch.from_numpy(np.ascontiguousarray(s60[i : i + batch_size]))
            b = torch.from_numpy(np.ascontiguousarray(vp[i : i + batch_size]))
            logits = net(a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype))
            out[i : i + batch_size] = torch.softmax(logits, dim=1).double().cpu().numpy()
    return out


class CnnParams(BaseModel):
    """Params of the ``cnn`` feature handler."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = Field(default="default", description="weights .pt (card beside it); default = "
                       "the shipped models/weights/cnn_small.pt")
    features: FeatureSpec = Field(
        default=FeatureSpec(), description="the features this engine computes; the model's "
        "card must match them exactly or loading is refused")
    device: Device = "auto"
    precision: Precision = "float64"
    batch_size: int = Field(default=1024, ge=1, le=65_536, description="batch (backtest) pass")
    threads: int = Field(
        default=1, ge=1, le=256, description="torch CPU threads of the per-bar pass: one keeps "
        "the latency steady when other work shares the cores (a batch of one gains little from "
        "more)")
    batch_threads: int | None = Field(
        default=None, ge=1, le=256, description="torch CPU threads of the backtest pass; "
        "None = torch's default (one per core)")


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (None: unchanged), then restore the setting."""
    prev = torch.get_num_threads()
    if n is None or n == prev:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


class CnnHandler:
    """Feature handler: the CNN's class probabilities per bar (module docstring)."""

    Params: ClassVar[type[BaseModel]] = CnnParams
    SUFFIXES: ClassVar[tuple[str, ...]] = tuple(f"p_{c}" for c in CLASSES)

    def __init__(self, id: str, params: CnnParams, bars: BarStore,
                 features: FeatureStore) -> None:
        self.id = id
        self.p = params
        self.bars = bars
        self.features = features
        self.model = load_model(resolve_model_path(params.model), params.features, params.device,
                                params.precision)
        self.spec = params.features
        self.outputs = tuple(f"{id}_{s}" for s in self.SUFFIXES)
        for col in self.outputs:
            features.add(col)
        self.warmup_bars = self.spec.first_valid_bar
        self._stream = FeatureStream(self.spec)
        self._order = BarOrder(id, bars)  # each bar once, in order; missed bars replayed
        warm_up()

    def _run(self, s60: NDArray[np.float32], vp: NDArray[np.float32]) -> NDArray[np.float64]:
        m = self.model
        return predict_proba(m.net, s60, vp, m.device, batch_size=max(s60.shape[0], 1),
                             dtype=m.dtype)

    def on_bar_closed(self, bar: BarClosed) -> None:
        """Score ``bar.seq`` from bars up to it (the live path).

        Bars revealed without reaching this handler (it started on a store that already held
        history) are replayed from the store first, as the indicator handlers do.

        Raises:
            DataError: ``bar.seq`` is older than a bar already scored.
        """
        seq = bar.seq
        if seq != self._order.next:
            self._order.replay(seq, self._score)
        self._score(seq, bar.high, bar.low, bar.close)

    def _score(self, seq: int, high: float, low: float, close: float) -> None:
        self._stream.push(high, low, close)
        self._order.done(seq)
        x = self._stream.current(self.bars, seq)
        if x is None:
            return  # columns stay NaN: warm-up or an empty profile
        with torch_threads(self.p.threads):
            probs = self._run(x[0][None, :], x[1][None, :])[0]
        for col, v in zip(self.outputs, probs, strict=True):
            self.features.set(col, seq, float(v))

    def precompute(self) -> None:
        """Score every preloaded bar in fixed, aligned, padded chunks (backtest path)."""
        b = self.bars
        n = b.loaded
        fs = build_features_from_columns(b.raw_column("high"), b.raw_column("low"),
                                         b.raw_column("close"), b.raw_column("volume"), self.spec)
        cols = [self.features.backing(c) for c in self.outputs]
        size = self.p.batch_size
        s60 = np.zeros((size, self.spec.window_bars), dtype=np.float32)
        vp = np.zeros((size, self.spec.vp_bins), dtype=np.float32)
        for start in range(0, n, size):
            stop = min(start + size, n)
            ok = fs.valid[start:stop]
            if not ok.any():
                continue
            # Invalid and padding rows are zeros: they are computed and thrown away, so every
            # chunk has the same shape whatever the data length (exact prefix invariance).
            s60[:] = 0.0
            vp[:] = 0.0
            s60[: stop - start][ok] = fs.s60[start:stop][ok]
            vp[: stop - start][ok] = fs.vp[start:stop][ok]
            with torch_threads(self.p.batch_threads):
                probs = self._run(s60, vp)[: stop - start]
            for c, col in enumerate(cols):
                seg = col[start:stop]
                seg[ok] = probs[ok, c]
                seg[~ok] = np.nan


def check_model(weights: Path, engine_features: FeatureSpec | None = None) -> ModelCard:
    """Load-check a model without running it (CLI and tests); return its card."""
    lm = load_model(weights, engine_features or FeatureSpec(), device="cpu")
    return lm.card
