"""Backbones through timm's `create_model`, with a 26-way multi-label head.

Two small CNNs are registered with timm so every backbone, tiny or B7, goes through one factory:
``multimnist_tiny`` (a few thousand parameters, for tests) and ``multimnist_small`` (a BatchNorm CNN
that learns the eased CPU demo task in minutes).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models import register_model
from torch import nn

from multimnist.labels import NUM_CLASSES


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """Plain conv-BN-ReLU stages, global average pooling, dropout, linear head."""

    def __init__(
        self,
        widths: tuple[int, ...],
        in_chans: int = 1,
        num_classes: int = NUM_CLASSES,
        drop_rate: float = 0.0,
        double: bool = False,
    ):
        super().__init__()
        layers, cin = [], in_chans
        for w in widths:
            layers.append(_conv_bn(cin, w, 2))
            if double:
                layers.append(_conv_bn(w, w, 1))
            cin = w
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(cin, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head_drop(self.features(x).mean((2, 3))))


def _small_model(widths: tuple[int, ...], double: bool, pretrained: bool, **kwargs) -> SmallCNN:
    if pretrained:
        raise ValueError("multimnist_* backbones have no pretrained weights (use backbone.weights=FILE)")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "drop_path_rate"):
        kwargs.pop(key, None)
    return SmallCNN(widths, double=double, **kwargs)


@register_model
def multimnist_tiny(pretrained: bool = False, **kwargs) -> SmallCNN:
    """~7k parameters: for tests, not for learning."""
    return _small_model((8, 16, 32), False, pretrained, **kwargs)


@register_model
def multimnist_small(pretrained: bool = False, **kwargs) -> SmallCNN:
    """~0.3M parameters, 4 stages of two 3x3 convs: learns the eased demo task on a CPU."""
    return _small_model((32, 48, 64, 96), True, pretrained, **kwargs)


def build_model(
    name: str,
    pretrained: bool = False,
    weights: str | Path | None = None,
    in_chans: int = 1,
    drop_rate: float = 0.0,
    drop_path_rate: float | None = None,
    num_classes: int = NUM_CLASSES,
) -> nn.Module:
    """`timm.create_model` with a `num_classes`-way head.

    `pretrained` downloads timm's weights when reachable; `weights` loads a local timm checkpoint file
    instead (adapted to `in_chans` and the new head by timm). Neither happens by default.
    """
    kwargs = {
        "num_classes": num_classes,
        "in_chans": in_chans,
        "drop_rate": drop_rate,
        "drop_path_rate": drop_path_rate,
    }
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: backbone weights file not found")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    return timm.create_model(name, pretrained=pretrained, **kwargs)
