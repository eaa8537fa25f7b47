"""Training images composed on the fly from a glyph source: the synthetic stream (`data.synthetic`).

Every epoch, `per_epoch` freshly composed images join a fold's training images (never its
validation or test images), drawn by the generator's compositor from a glyph bank (the competition's
own `mnist_data` letters, or any other source). Image i of epoch e is a function of
(seed, fold, e, i) alone, so the stream is the same whatever the loader's worker count, and a fold
resumed mid-run sees the images it would have seen. Images are rendered where the dataset is read:
in the DataLoader's workers (forked, so the glyph bank is shared, not pickled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from multimnist.data.dacon import preprocess
from multimnist.labels import NUM_CLASSES

if TYPE_CHECKING:  # the compositor's image libraries load with the glyph bank, not with this module
    from multimnist.synth.compositor import Compositor

STREAM = 7  # a constant in every item's seed: the stream's draws never repeat the generator's own


class SyntheticImages(Dataset):
    """(uint8 1xHxW, float 26-vector label, index) items composed on the fly; `length` per epoch.

    The index of item i is -(i + 1): a stream image has no dataset index, and a negative one can
    never be mistaken for one. `transform` (the fold's augmentation) is re-seeded from the item's own
    generator, as `DaconImages` re-seeds it per item.
    """

    def __init__(
        self,
        compositor: Compositor,
        length: int,
        img_size: int,
        denoise: bool = False,
        transform: Callable[..., dict] | None = None,
        seed: int = 0,
        fold: int = 0,
    ) -> None:
        if length < 1:
            raise ValueError(f"data.synthetic.per_epoch must be >= 1 for a stream, got {length}")
        self.compositor, self.length = compositor, length
        self.img_size, self.denoise, self.transform = img_size, denoise, transform
        self.seed, self.fold, self.epoch = seed, fold, 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def render(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item i of this epoch before preprocessing: the composed uint8 image and its 0/1 labels."""
        rng = np.random.default_rng([self.seed, self.fold, self.epoch, i, STREAM])
        comp = self.compositor.compose(rng)
        labels = np.zeros(NUM_CLASSES, np.float32)
        labels[comp.letters] = 1
        return comp.image, labels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        image, labels = self.render(i)
        image = preprocess(image, self.img_size, self.denoise)
        if self.transform is not None:
            aug_seed = np.random.SeedSequence([self.seed, self.fold, self.epoch, i, STREAM, 1])
            self.transform.set_random_seed(int(aug_seed.generate_state(1)[0]))
            image = self.transform(image=image)["image"]
        x = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0)  # uint8 until the device
        return x, torch.from_numpy(labels), -(i + 1)

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        return [self[i] for i in items]
