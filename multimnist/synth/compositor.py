"""Compose one competition-like image: distinct letters, scaled and rotated, saturated on uniform noise.

What the defaults reproduce (measured on real competition images): uniform 0..255 background,
10..14 distinct letters, letters 20..60 px at any angle, ink saturating to exactly 255 inside strokes
with soft edges added (saturating) to the noise, a few Hangul-like distractors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from multimnist.labels import NUM_CLASSES
from multimnist.synth.glyphs import _BOX, GLYPH_SIZE, GlyphBank
from multimnist.synth.options import CompositorConfig

__all__ = ["Composition", "Compositor", "CompositorConfig"]

_KERNEL = np.ones((2, 2), np.uint8)


@dataclass
class Composition:
    """One composed image and what was drawn on it."""

    image: np.ndarray  # uint8 [S, S]
    letters: list[int] = field(default_factory=list)  # classes placed (the label)
    glyph_ids: list[int] = field(default_factory=list)  # bank ids of the placed letters
    dropped: list[int] = field(default_factory=list)  # classes chosen but not placeable (not labelled)


def _corners(size: int, extent: int, spread: float) -> tuple[int, int]:
    """First and last top-left coordinate of a mark `extent` pixels long on a `size`-pixel canvas:
    anywhere it fits, or (spread < 1) where its centre lies in the central `spread` share."""
    last = size - extent
    if spread >= 1:
        return 0, last
    lo, hi = size * (1 - spread) / 2 - extent / 2, size * (1 + spread) / 2 - extent / 2
    return min(max(0, int(lo)), last), max(0, min(last, int(hi)))


class Compositor:
    """Draws images from a glyph bank; `compose(rng)` is deterministic given the generator state."""

    def __init__(self, config: CompositorConfig, glyphs: GlyphBank, distractors: np.ndarray, seed: int = 0):
        self.cfg = config
        self.glyphs = glyphs
        self.distractors = distractors
        # Glyph families are dealt into groups by a seeded permutation; pools[g][letter] -> row numbers.
        families = np.unique(glyphs.families)
        if config.glyph_groups > len(families):
            raise ValueError(f"glyph_groups={config.glyph_groups} exceeds the {len(families)} glyph families")
        order = np.random.default_rng([seed, 13]).permutation(len(families))
        group_of_family = dict(
            zip(
                families[order].tolist(),
                (np.arange(len(families)) % config.glyph_groups).tolist(),
                strict=True,
            )
        )
        group = np.array([group_of_family[f] for f in glyphs.families.tolist()])
        self.pools = [
            [np.flatnonzero((group == g) & (glyphs.letters == c)) for c in range(NUM_CLASSES)]
            for g in range(config.glyph_groups)
        ]
        for g, pools in enumerate(self.pools):
            empty = [c for c, p in enumerate(pools) if len(p) == 0]
            if empty:
                raise ValueError(f"glyph group {g} has no glyph for class {empty[0]}; use fewer glyph_groups")

    def patch(self, ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scale, rotate and thicken one 28x28 glyph into a tight uint8 patch of composited intensity."""
        cfg = self.cfg
        width = int(rng.integers(cfg.thickness_min, cfg.thickness_max + 1))
        if width > 0:
            ink = cv2.dilate(ink, _KERNEL, iterations=width)
        elif width < 0:
            thinner = cv2.erode(ink, _KERNEL, iterations=-width)
            ink = thinner if thinner.any() else ink
        f = rng.uniform(cfg.size_min, cfg.size_max) / _BOX
        sx, sy = (
            f * rng.uniform(1 - cfg.stretch, 1 + cfg.stretch),
            f * rng.uniform(1 - cfg.stretch, 1 + cfg.stretch),
        )
        theta = math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
        c, s = math.cos(theta), math.sin(theta)
        side = int(math.ceil(GLYPH_SIZE * max(sx, sy) * math.sqrt(2))) + 2
        lin = np.array([[c * sx, -s * sy], [s * sx, c * sy]])
        half = GLYPH_SIZE / 2
        m = np.hstack([lin, (np.array([side / 2, side / 2]) - lin @ np.array([half, half]))[:, None]])
        patch = cv2.warpAffine(ink, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
        patch = cv2.convertScaleAbs(
            patch, alpha=rng.uniform(cfg.ink_gain_min, cfg.ink_gain_max)
        )  # saturating multiply
        ys, xs = np.nonzero(patch)
        if len(ys) == 0:
            return patch[:1, :1]
        return patch[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]

    def _place(
        self,
        canvas: np.ndarray,
        occupied: np.ndarray,
        patch: np.ndarray,
        rng: np.random.Generator,
        spread: float = 1.0,
    ) -> bool:
        size = canvas.shape[0]
        h, w = patch.shape
        if h > size or w > size:
            return False
        mask = patch >= 128
        area = max(1, int(mask.sum()))
        ys, xs = _corners(size, h, spread), _corners(size, w, spread)
        for _ in range(self.cfg.placement_tries):
            y, x = int(rng.integers(ys[0], ys[1] + 1)), int(rng.integers(xs[0], xs[1] + 1))
            region = occupied[y : y + h, x : x + w]
            if (region & mask).sum() <= self.cfg.max_overlap * area:
                target = canvas[y : y + h, x : x + w]
                target[:] = cv2.add(target, patch)  # saturating: noise shows through faint ink
                region |= mask
                return True
        return False

    def compose(self, rng: np.random.Generator) -> Composition:
        cfg = self.cfg
        s = cfg.image_size
        if cfg.noise:
            canvas = rng.integers(0, 256, (s, s), dtype=np.uint8)
        else:
            canvas = np.zeros((s, s), np.uint8)
        occupied = np.zeros((s, s), bool)
        pools = self.pools[int(rng.integers(cfg.glyph_groups))]
        k = int(rng.integers(cfg.letters_min, cfg.letters_max + 1))
        out = Composition(canvas)
        for letter in rng.choice(
            NUM_CLASSES, size=k, replace=False
        ).tolist():  # random order: no letter favoured
            row = int(rng.choice(pools[letter]))
            if self._place(canvas, occupied, self.patch(self.glyphs.images[row], rng), rng, cfg.spread):
                out.letters.append(letter)
                out.glyph_ids.append(int(self.glyphs.ids[row]))
            else:
                out.dropped.append(letter)
        for _ in range(int(rng.integers(cfg.distractors_min, cfg.distractors_max + 1))):
            mark = self.distractors[int(rng.integers(len(self.distractors)))]
            self._place(canvas, occupied, self.patch(mark, rng), rng)
        return out
