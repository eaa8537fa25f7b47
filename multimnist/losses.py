"""Multi-label losses on logits [B, 26] against 0/1 targets."""

from __future__ import annotations

import torch
from timm.loss import AsymmetricLossMultiLabel
from torch import nn

LOSSES = ("soft_margin", "bce", "asymmetric")


class SmoothedBCE(nn.Module):
    """BCE-with-logits whose targets are pulled towards 0.5 by `smoothing` (0 = plain BCE)."""

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target * (1 - self.smoothing) + 0.5 * self.smoothing
        return nn.functional.binary_cross_entropy_with_logits(logits, target)


def build_loss(
    name: str, smoothing: float = 0.0, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05
) -> nn.Module:
    """soft_margin (the seed's MultiLabelSoftMarginLoss), bce (+ smoothing) or asymmetric (ASL, timm)."""
    if name == "soft_margin":
        return nn.MultiLabelSoftMarginLoss()
    if name == "bce":
        return SmoothedBCE(smoothing)
    if name == "asymmetric":
        return AsymmetricLossMultiLabel(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip)
    raise ValueError(f"loss.name must be one of {LOSSES}, got {name!r}")
