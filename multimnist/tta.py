"""Test-time views: the rot90 group (4 views) or the dihedral group (8: rot90 x horizontal flip).

View k of a batch [B, C, H, W] is rot90 by k % 4 quarter turns, flipped first when k >= 4. The
labels (which letters are present) do not change under any of them.
"""

from __future__ import annotations

import torch

from multimnist.choices import TTA_VIEWS


def view(x: torch.Tensor, k: int) -> torch.Tensor:
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def check_views(n_views: int) -> int:
    if n_views not in TTA_VIEWS:
        raise ValueError(f"tta views must be one of {TTA_VIEWS} (identity, rot180, rot90 group, dihedral)")
    return n_views


def view_ids(n_views: int) -> list[int]:
    """Which views a count means: 1 = identity, 2 = identity + rot180, 4 = rot90 group, 8 = + flips."""
    check_views(n_views)
    return [0, 2] if n_views == 2 else list(range(n_views))
