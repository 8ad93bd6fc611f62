"""``PatternDetectorCNN``: the reference bot's two-branch signal network, with configurable sizes.

Branch A reads the S60 stochastic window (``[B, 1, window_bars]``, 0-1 scale) through three
Conv1d -> BatchNorm -> LeakyReLU(0.2) blocks (max-pooling by 2 after the first two) and an
adaptive average pool to ``pool_out`` positions. Branch B reads the volume profile normalised by
its maximum (``[B, vp_bins]``) through two Linear -> ReLU layers. The head concatenates both and
ends in three logits: 0 HOLD, 1 BUY, 2 SELL.

``CnnSpec.reference()`` is the reference bot's architecture (channels 128/256/512, kernels
11/7/5, pool 4, VP 128/64, head 1024/256, dropout 0.4: about 3.33 M parameters).
``CnnSpec.small()`` keeps the shape with a fraction of the width (about 0.2 M parameters, under
1 MB of float32 weights) so it trains in minutes on two CPU cores and fits in the repository.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

CLASSES: tuple[str, str, str] = ("hold", "buy", "sell")
HOLD, BUY, SELL = 0, 1, 2


class CnnSpec(BaseModel):
    """Architecture of a ``PatternDetectorCNN`` (stored in the model card to rebuild it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["reference", "small", "custom"] = "custom"
    conv_channels: tuple[int, int, int] = (128, 256, 512)
    conv_kernels: tuple[int, int, int] = (11, 7, 5)
    pool_out: int = Field(default=4, ge=1, le=64)
    vp_hidden: tuple[int, int] = (128, 64)
    head_hidden: tuple[int, int] = (1024, 256)
    dropout: float = Field(default=0.4, ge=0.0, lt=1.0)
    leaky_slope: float = Field(default=0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _positive_and_odd(self) -> CnnSpec:
        sizes = (*self.conv_channels, *self.vp_hidden, *self.head_hidden)
        if min(sizes) < 1:
            raise ValueError(f"layer sizes must be >= 1, got {sizes}")
        even = [k for k in self.conv_kernels if k < 1 or k % 2 == 0]
        if even:
            # "same" padding of k // 2 keeps the length only for odd kernels; the pooling
            # arithmetic (100 -> 50 -> 25) assumes it.
            raise ValueError(f"conv_kernels must be odd and >= 1, got {self.conv_kernels}")
        return self

    @classmethod
    def reference(cls) -> CnnSpec:
        """The reference bot's sizes (about 3.33 M parameters)."""
        return cls(preset="reference")

    @classmethod
    def small(cls) -> CnnSpec:
        """A narrow variant of the same shape that trains in minutes on two CPU cores."""
        return cls(preset="small", conv_channels=(32, 64, 128), pool_out=4, vp_hidden=(64, 32),
                   head_hidden=(256, 64), dropout=0.3)

    @classmethod
    def from_preset(cls, name: Literal["reference", "small"]) -> CnnSpec:
        return cls.reference() if name == "reference" else cls.small()

    def digest(self) -> str:
        """Short hash of the architecture (the preset name excluded)."""
        blob = json.dumps(self.model_dump(mode="json", exclude={"preset"}), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class PatternDetectorCNN(nn.Module):
    """Two-branch CNN over the S60 window and the normalised volume profile.

    Args:
        spec: layer sizes.
        window_bars: length of the S60 input (only checked at call time; the adaptive pool makes
            the head independent of it).
        vp_bins: number of volume-profile bins (the VP branch's input width).
    """

    def __init__(self, spec: CnnSpec, window_bars: int = 100, vp_bins: int = 80) -> None:
        super().__init__()
        self.spec = spec
        self.window_bars = window_bars
        self.vp_bins = vp_bins
        c1, c2, c3 = spec.conv_channels
        k1, k2, k3 = spec.conv_kernels
        slope = spec.leaky_slope
        self.stoch_branch = nn.Sequential(
            nn.Conv1d(1, c1, k1, padding=k1 // 2), nn.BatchNorm1d(c1), nn.LeakyReLU(slope),
            nn.MaxPool1d(2),
            nn.Conv1d(c1, c2, k2, padding=k2 // 2), nn.BatchNorm1d(c2), nn.LeakyReLU(slope),
            nn.MaxPool1d(2),
            nn.Conv1d(c2, c3, k3, padding=k3 // 2), nn.BatchNorm1d(c3), nn.LeakyReLU(slope),
            nn.AdaptiveAvgPool1d(spec.pool_out),
            nn.Flatten(),
        )
        v1, v2 = spec.vp_hidden
        self.vp_branch = nn.Sequential(nn.Linear(vp_bins, v1), nn.ReLU(), nn.Linear(v1, v2),
                                       nn.ReLU())
        h1, h2 = spec.head_hidden
        self.head = nn.Sequential(
            nn.Linear(c3 * spec.pool_out + v2, h1), nn.ReLU(), nn.Dropout(spec.dropout),
            nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, len(CLASSES)),
        )

    def forward(self, s60: torch.Tensor, vp: torch.Tensor) -> torch.Tensor:
        """Return logits ``[B, 3]`` of S60 windows ``[B, window_bars]``, profiles ``[B, bins]``."""
        a = self.stoch_branch(s60.unsqueeze(1))
        b = self.vp_branch(vp)
        return self.head(torch.cat((a, b), dim=1))


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
