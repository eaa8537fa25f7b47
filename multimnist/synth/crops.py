"""Single-glyph crops rendered on the fly, for glyph pretraining (`python -m multimnist.pretrain`).

A crop is a small square of the competition's image at its native scale: uniform noise, one letter
drawn exactly as the compositor draws it (size, stretch, any rotation, stroke width, saturating ink),
truncated neighbour letters cut by the crop's borders, and sometimes a Hangul-like distractor. A share
of crops hold no centred letter at all: class 26, "nothing". The crop then goes through the training
preprocessing (keep-255 denoise, resize by the same factor as full images), so a backbone pretrained
on crops sees letters as fold training will.

Item i of epoch e is a function of (seed, e, i) alone, whatever the worker count.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from multimnist.data.dacon import preprocess
from multimnist.labels import NUM_CLASSES
from multimnist.synth.compositor import Compositor

NOTHING = NUM_CLASSES  # the 27th class: no letter in the middle of the crop


class GlyphCrops(Dataset):
    """(float 1xSxS in [0,1], class 0..26, item index) crops; `len` items per epoch."""

    def __init__(
        self,
        compositor: Compositor,
        rows: np.ndarray,
        length: int,
        crop: int = 64,
        img_size: int = 32,
        denoise: bool = True,
        nothing: float = 0.2,
        neighbours: int = 2,
        distractor: float = 0.3,
        seed: int = 0,
    ) -> None:
        if len(rows) == 0:
            raise ValueError("no glyphs to draw crops from")
        letters = compositor.glyphs.letters[rows]
        missing = sorted(set(range(NUM_CLASSES)) - set(np.unique(letters).tolist()))
        if missing:
            raise ValueError(f"the glyph rows lack classes {missing}; hold out fewer glyphs")
        self.compositor, self.rows, self.length = compositor, np.asarray(rows), length
        self.by_letter = [self.rows[letters == c] for c in range(NUM_CLASSES)]
        self.crop, self.img_size, self.denoise = crop, img_size, denoise
        self.nothing, self.neighbours, self.distractor = nothing, neighbours, distractor
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _paste(self, canvas: np.ndarray, patch: np.ndarray, cy: int, cx: int) -> None:
        """Add `patch` centred at (cy, cx), clipped by the canvas borders (saturating, as composed)."""
        h, w = patch.shape
        y0, x0 = cy - h // 2, cx - w // 2
        ya, xa = max(0, y0), max(0, x0)
        yb, xb = min(canvas.shape[0], y0 + h), min(canvas.shape[1], x0 + w)
        if ya < yb and xa < xb:
            target = canvas[ya:yb, xa:xb]
            target[:] = cv2.add(target, np.ascontiguousarray(patch[ya - y0 : yb - y0, xa - x0 : xb - x0]))

    def render(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """One crop (uint8, native scale) and its class."""
        comp, s = self.compositor, self.crop
        canvas = (
            rng.integers(0, 256, (s, s), dtype=np.uint8) if comp.cfg.noise else np.zeros((s, s), np.uint8)
        )
        label = NOTHING if rng.random() < self.nothing else int(rng.integers(NUM_CLASSES))
        # Neighbours first, centred outside the middle half: only their fragments reach the crop.
        for _ in range(int(rng.integers(0, self.neighbours + 1))):
            row = int(rng.choice(self.rows))
            angle = rng.uniform(0, 2 * np.pi)
            r = rng.uniform(0.55, 0.8) * s
            self._paste(
                canvas,
                comp.patch(comp.glyphs.images[row], rng),
                int(s / 2 + r * np.sin(angle)),
                int(s / 2 + r * np.cos(angle)),
            )
        if rng.random() < self.distractor:
            mark = comp.distractors[int(rng.integers(len(comp.distractors)))]
            self._paste(canvas, comp.patch(mark, rng), *rng.integers(0, s, 2).tolist())
        if label != NOTHING:
            row = int(rng.choice(self.by_letter[label]))
            jitter = rng.integers(-s // 10, s // 10 + 1, 2)
            self._paste(canvas, comp.patch(comp.glyphs.images[row], rng), *(s // 2 + jitter).tolist())
        return canvas, label

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img, label = self.render(rng)
        img = preprocess(img, self.img_size, self.denoise)
        return torch.from_numpy(img).unsqueeze(0), label, i  # uint8: Batching converts on the device


class MixedCrops(Dataset):
    """Rendered crops with a `share` of them replaced by harvested ones (`multimnist.harvest`): a
    letter drawn uniformly among those harvested, one of its crops, shifted within the harvest's margin
    and turned by a random quarter turn (letters come at any angle), then the same preprocessing."""

    def __init__(
        self, rendered: GlyphCrops, crops: np.ndarray, letters: np.ndarray, margin: int, share: float
    ) -> None:
        self.rendered, self.crops, self.margin, self.share = rendered, crops, margin, share
        self.by_letter = [np.flatnonzero(letters == c) for c in range(NUM_CLASSES)]
        self.harvested = [c for c in range(NUM_CLASSES) if len(self.by_letter[c])]
        self.side = crops.shape[1] - 2 * margin

    def __len__(self) -> int:
        return len(self.rendered)

    def set_epoch(self, epoch: int) -> None:
        self.rendered.set_epoch(epoch)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        r = self.rendered
        rng = np.random.default_rng([r.seed, r.epoch, i, 3])
        if rng.random() >= self.share:
            return r[i]
        letter = self.harvested[int(rng.integers(len(self.harvested)))]
        crop = self.crops[int(rng.choice(self.by_letter[letter]))]
        dy, dx = rng.integers(0, 2 * self.margin + 1, 2).tolist()
        img = np.rot90(crop[dy : dy + self.side, dx : dx + self.side], int(rng.integers(4)))
        img = preprocess(np.ascontiguousarray(img), r.img_size, r.denoise)
        return torch.from_numpy(img).unsqueeze(0), letter, i
