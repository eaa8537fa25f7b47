"""albumentations pipelines built from plain config: a list of single-key mappings.

    [{"RandomRotate90": {"p": 1.0}},
     {"OneOf": {"p": 0.5, "transforms": [{"GridDistortion": {}}, {"ElasticTransform": {}}]}}]

Each key is an albumentations class name, its value the keyword arguments; a `transforms` argument
is built recursively (for OneOf, SomeOf, Sequential).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A  # multimnist/__init__ has set NO_ALBUMENTATIONS_UPDATE by now


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
