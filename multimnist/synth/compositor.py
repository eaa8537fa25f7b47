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

_KERNEL = np.ones((2, 2), np.uint8)


@dataclass
class CompositorConfig:
    """Every knob of the compositor; defaults are the realistic ones (preset `real`)."""

    image_size: int = 256
    letters_min: int = 10  # distinct letters per image, uniform on [min, max]
    letters_max: int = 14
    size_min: float = 14.0  # a glyph's longer side in pixels before rotation, uniform on [min, max];
    size_max: float = 42.0  # rotated and blurred, these measure as the real images' 20..60 px letters
    rotation: float = 180.0  # angle uniform on [-rotation, +rotation] degrees
    stretch: float = 0.15  # aspect jitter: x and y scaled independently by 1 +- stretch
    thickness_min: int = -1  # stroke width change in glyph pixels (negative = thinner)
    thickness_max: int = 1
    ink_gain_min: float = 0.5  # glyph ink x gain (uniform per mark), clipped at 255: low gains leave
    ink_gain_max: float = 1.8  # speckled strokes where noise shows through, as in real images
    max_overlap: float = 0.15  # share of a new mark's ink allowed on ink already drawn
    placement_tries: int = 40  # random positions tried before a letter is dropped (and not labelled)
    distractors_min: int = 2  # Hangul-like marks per image (never labelled)
    distractors_max: int = 5
    glyph_groups: int = 1  # >1: each image draws glyphs from one of this many disjoint glyph families
    noise: bool = True  # uniform 0..255 background; false gives a black background (debugging, demos)

    def __post_init__(self) -> None:
        checks = [
            (
                1 <= self.letters_min <= self.letters_max <= NUM_CLASSES,
                "need 1 <= letters_min <= letters_max <= 26",
            ),
            (
                0 < self.size_min <= self.size_max < self.image_size,
                "need 0 < size_min <= size_max < image_size",
            ),
            (
                0 <= self.distractors_min <= self.distractors_max,
                "need 0 <= distractors_min <= distractors_max",
            ),
            (0 <= self.max_overlap <= 1, "max_overlap must be in [0, 1]"),
            (0 <= self.stretch < 1, "stretch must be in [0, 1)"),
            (self.thickness_min <= self.thickness_max, "need thickness_min <= thickness_max"),
            (
                0 < self.ink_gain_min <= self.ink_gain_max
                and self.placement_tries >= 1
                and self.glyph_groups >= 1,
                "need 0 < ink_gain_min <= ink_gain_max; placement_tries, glyph_groups >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"compositor config: {message}")


@dataclass
class Composition:
    """One composed image and what was drawn on it."""

    image: np.ndarray  # uint8 [S, S]
    letters: list[int] = field(default_factory=list)  # classes placed (the label)
    glyph_ids: list[int] = field(default_factory=list)  # bank ids of the placed letters
    dropped: list[int] = field(default_factory=list)  # classes chosen but not placeable (not labelled)


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
        self, canvas: np.ndarray, occupied: np.ndarray, patch: np.ndarray, rng: np.random.Generator
    ) -> bool:
        size = canvas.shape[0]
        h, w = patch.shape
        if h > size or w > size:
            return False
        mask = patch >= 128
        area = max(1, int(mask.sum()))
        for _ in range(self.cfg.placement_tries):
            y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
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
            if self._place(canvas, occupied, self.patch(self.glyphs.images[row], rng), rng):
                out.letters.append(letter)
                out.glyph_ids.append(int(self.glyphs.ids[row]))
            else:
                out.dropped.append(letter)
        for _ in range(int(rng.integers(cfg.distractors_min, cfg.distractors_max + 1))):
            mark = self.distractors[int(rng.integers(len(self.distractors)))]
            self._place(canvas, occupied, self.patch(mark, rng), rng)
        return out
