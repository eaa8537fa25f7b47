"""albumentations pipelines built from plain config: a list of single-key mappings.

    [{"RandomRotate90": {"p": 1.0}},
     {"OneOf": {"p": 0.5, "transforms": [{"GridDistortion": {}}, {"ElasticTransform": {}}]}}]

Each key is an albumentations class name, its value the keyword arguments; a `transforms` argument
is built recursively (for OneOf, SomeOf, Sequential).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A  # multimnist/__init__ has set NO_ALBUMENTATIONS_UPDATE by now
import torch


def build_transform(spec: Mapping[str, Any]) -> A.BasicTransform:
    if len(spec) != 1:
        raise ValueError(f"each augmentation step is one {{ClassName: {{args}}}} mapping, got {dict(spec)}")
    ((name, args),) = spec.items()
    cls = getattr(A, name, None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(f"augmentation {name!r} is not an albumentations transform")
    args = dict(args or {})
    if "transforms" in args:
        args["transforms"] = [build_transform(s) for s in args["transforms"]]
    try:
        return cls(**args)
    except (TypeError, ValueError) as err:  # pydantic's ValidationError is a ValueError: one line of it
        detail = "; ".join(line.strip() for line in str(err).splitlines()[1:3]) or str(err)
        raise ValueError(f"augmentation {name}: {detail}") from None


def build_pipeline(steps: Sequence[Mapping[str, Any]] | None, seed: int | None = None) -> A.Compose | None:
    """The training pipeline, or None when there are no steps (no augmentation)."""
    if not steps:
        return None
    return A.Compose([build_transform(s) for s in steps], seed=seed)


# Steps that map a square image to another element of its rot90/flip group: on a GPU they run on
# the whole batch on the device (`BatchFlips`) instead of per image in the CPU workers.
DEVICE_STEPS = ("RandomRotate90", "HorizontalFlip", "VerticalFlip")


@dataclass(frozen=True)
class BatchFlips:
    """RandomRotate90, HorizontalFlip and VerticalFlip (in that order, each with its p) applied per
    image to a whole [B, C, H, W] batch on its device, with no host sync: every image's choice is
    drawn on the device and applied with `torch.where` over the four rotations and the flips.
    The draws come from a generator seeded per batch, so a seed gives the same epoch on one device."""

    rot90_p: float = 0.0
    hflip_p: float = 0.0
    vflip_p: float = 0.0

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator(device=x.device).manual_seed(seed)
        n, shape = len(x), (len(x), 1, 1, 1)
        if self.rot90_p:
            k = torch.randint(0, 4, (n,), generator=g, device=x.device)
            k = torch.where(torch.rand(n, generator=g, device=x.device) < self.rot90_p, k, 0)
            out = x
            for r in (1, 2, 3):
                out = torch.where((k == r).view(shape), torch.rot90(x, r, dims=(2, 3)), out)
            x = out
        for p, dim in ((self.hflip_p, 3), (self.vflip_p, 2)):
            if p:
                flip = torch.rand(n, generator=g, device=x.device) < p
                x = torch.where(flip.view(shape), x.flip(dim), x)
        return x


def batch_flips(steps: Sequence[Mapping[str, Any]] | None) -> BatchFlips | None:
    """The steps as one BatchFlips when every step is a rot90 or a flip (at most one of each, in
    albumentations' order), else None: other transforms stay in albumentations."""
    names = [next(iter(s)) for s in steps or [] if len(s) == 1]
    if not steps or len(names) != len(steps) or any(n not in DEVICE_STEPS for n in names):
        return None
    if len(set(names)) != len(names) or names != sorted(names, key=DEVICE_STEPS.index):
        return None
    p = {
        n: float((s[n] or {}).get("p", 1.0 if n == "RandomRotate90" else 0.5))
        for s, n in zip(steps, names, strict=True)
    }
    return BatchFlips(p.get("RandomRotate90", 0.0), p.get("HorizontalFlip", 0.0), p.get("VerticalFlip", 0.0))
