"""Test-time views: the rot90 group (4 views) or the dihedral group (8: rot90 x horizontal flip).

View k of a batch [B, C, H, W] is rot90 by k % 4 quarter turns, flipped first when k >= 4. The
labels (which letters are present) do not change under any of them.
"""

from __future__ import annotations

import numpy as np
import torch

from multimnist.decode import sigmoid

VALID_VIEWS = (1, 2, 4, 8)


def view(x: torch.Tensor, k: int) -> torch.Tensor:
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def check_views(n_views: int) -> int:
    if n_views not in VALID_VIEWS:
        raise ValueError(f"tta views must be one of {VALID_VIEWS} (identity, rot180, rot90 group, dihedral)")
    return n_views


def view_ids(n_views: int) -> list[int]:
    """Which views a count means: 1 = identity, 2 = identity + rot180, 4 = rot90 group, 8 = + flips."""
    check_views(n_views)
    return [0, 2] if n_views == 2 else list(range(n_views))


AGGREGATIONS = ("prob_mean", "logit_mean")


def aggregate(
    logits: np.ndarray,
    how: str,
    views: list[int] | None = None,
    weights: np.ndarray | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """Combine logits [N, K, V, 26] (K models, V views) into probabilities [N, 26].

    prob_mean averages sigmoid(logit / T) (the seed solution); logit_mean averages logits, then applies
    the sigmoid (1st place). `views` picks view columns; `weights` (K) weighs the models.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    z = logits if views is None else logits[:, :, views]
    z = z.astype(np.float64) / temperature
    w = np.ones(z.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    if how == "prob_mean":
        return np.einsum("nkvc,k->nc", sigmoid(z), w) / z.shape[2]
    return sigmoid(np.einsum("nkvc,k->nc", z, w) / z.shape[2])
