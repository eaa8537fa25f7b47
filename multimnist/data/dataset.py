"""A split's images as a torch Dataset: uint8 images, 26-vector labels, dataset indices."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from multimnist.data.dacon import Split, decode_gray, preprocess
from multimnist.labels import LETTERS


class DaconImages(Dataset):
    """Images of one split as (uint8 1xHxW, float 26-vector label, dataset index).

    Images stay uint8 until they reach the device (a quarter of the bytes through the DataLoader
    and the host-to-GPU copy); `multimnist.engine.Batching` turns them into floats in [0, 1] there.

    `images` (optional) is a pre-decoded, pre-processed uint8 array [n,H,W] (e.g. the memmap cache of
    `multimnist.data.cache`); without it each item is decoded from disk. `transform` is an
    albumentations-style callable (`transform(image=arr)["image"]`) applied to the uint8 image; with
    `seed` set, its randomness is re-seeded per item from (seed, epoch, index), so an augmented epoch is
    the same whatever the worker count or a resume in between (call `set_epoch` each epoch).
    Unknown labels (test split without answers) come back as NaN so they cannot be mistaken for zeros.
    """

    def __init__(
        self,
        split: Split,
        img_size: int | None = None,
        denoise: bool = False,
        images: np.ndarray | None = None,
        transform: Callable[..., dict] | None = None,
        rows: Sequence[int] | None = None,
        seed: int | None = None,
    ) -> None:
        self.split = split
        self.img_size = img_size
        self.denoise = denoise
        self.images = images
        self.transform = transform
        self.rows = np.arange(len(split)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.seed = seed
        self.epoch = 0
        if images is not None and len(images) != len(split):
            raise ValueError(f"cached images hold {len(images)} rows, split {split.name} has {len(split)}")

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def image(self, i: int) -> np.ndarray:
        """The preprocessed uint8 image of item i (before the transform)."""
        row = int(self.rows[i])
        if self.images is not None:
            return np.array(self.images[row])  # a writable copy out of the read-only memmap
        return preprocess(decode_gray(self.split.paths[row]), self.img_size, self.denoise)

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """The items of one batch (DataLoader calls this instead of one `__getitem__` per item).

        From the cache without a transform it is one fancy-indexed read and one conversion instead of
        a copy and conversion per item: on a CPU that per-item work costs ~4% of a small model's step.
        """
        if self.images is None or self.transform is not None:
            return [self[i] for i in items]
        rows = self.rows[np.asarray(items, dtype=np.int64)]
        x = torch.from_numpy(self.images[rows]).unsqueeze(1)  # uint8: Batching converts on the device
        if self.split.labels is None:
            y = torch.full((len(rows), len(LETTERS)), float("nan"))
        else:
            y = torch.from_numpy(self.split.labels[rows].astype(np.float32))
        return list(zip(x.unbind(0), y.unbind(0), self.split.indices[rows].tolist(), strict=True))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        img = self.image(i)
        row = int(self.rows[i])
        if self.transform is not None:
            if self.seed is not None:
                self.transform.set_random_seed(
                    int(
                        np.random.SeedSequence(
                            [self.seed, self.epoch, int(self.split.indices[row])]
                        ).generate_state(1)[0]
                    )
                )
            img = self.transform(image=img)["image"]
        x = torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0)  # uint8: Batching converts on the device
        if self.split.labels is None:
            y = torch.full((len(LETTERS),), float("nan"))
        else:
            y = torch.from_numpy(self.split.labels[row].astype(np.float32))
        return x, y, int(self.split.indices[row])


class ConcatImages(ConcatDataset):
    """Several `DaconImages` as one training set (a fold's images and pseudo-labelled test images):
    `set_epoch` reaches each, and a batch is read with each part's own `__getitems__`."""

    def set_epoch(self, epoch: int) -> None:
        for ds in self.datasets:
            ds.set_epoch(epoch)

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        part = np.searchsorted(self.cumulative_sizes, items, side="right")
        out: list = [None] * len(items)
        for k, ds in enumerate(self.datasets):
            where = np.flatnonzero(part == k).tolist()
            start = self.cumulative_sizes[k - 1] if k else 0
            if where:
                for j, item in zip(where, ds.__getitems__([items[j] - start for j in where]), strict=True):
                    out[j] = item
        return out
