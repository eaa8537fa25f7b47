"""The compositor's knobs as a plain dataclass: the `compositor` config group's schema, importable
without the generator's image libraries (multimnist.config reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from multimnist.labels import NUM_CLASSES


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
    spread: float = 1.0  # letters' centres lie in the central `spread` x `spread` share of the image
    # (1: anywhere a letter fits; smaller clusters them); distractors go anywhere
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
            (0 < self.spread <= 1, "spread must be in (0, 1]"),
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
