"""Handwriting-like Hangul syllables, the competition's distractors (drawn, never labelled).

No Hangul font ships with our dependencies, so syllables are built the way Hangul is: an initial
consonant beside or above a vowel, sometimes a final consonant below, each jamo a few jittered strokes.
"""

from __future__ import annotations

import cv2
import numpy as np

from multimnist.synth.glyphs import GLYPH_SIZE, fit_square

# Jamo as strokes in a unit box (x right, y down); each stroke is a polyline, "o" is a circle.
_CONSONANTS = {
    "g": [[(0.1, 0.15), (0.9, 0.15), (0.9, 0.9)]],
    "n": [[(0.1, 0.1), (0.1, 0.85), (0.9, 0.85)]],
    "d": [[(0.9, 0.15), (0.1, 0.15), (0.1, 0.85), (0.9, 0.85)]],
    "m": [[(0.15, 0.15), (0.85, 0.15), (0.85, 0.85), (0.15, 0.85), (0.15, 0.15)]],
    "b": [[(0.15, 0.1), (0.15, 0.9), (0.85, 0.9), (0.85, 0.1)], [(0.15, 0.5), (0.85, 0.5)]],
    "s": [[(0.5, 0.1), (0.1, 0.9)], [(0.45, 0.35), (0.9, 0.9)]],
    "o": "o",
    "j": [[(0.1, 0.15), (0.9, 0.15)], [(0.5, 0.15), (0.1, 0.9)], [(0.45, 0.45), (0.9, 0.9)]],
    "h": [[(0.3, 0.05), (0.7, 0.05)], [(0.1, 0.25), (0.9, 0.25)], "o"],
}
_VERTICAL_VOWELS = {  # stand to the right of the consonant
    "a": [[(0.4, 0.0), (0.4, 1.0)], [(0.4, 0.5), (0.9, 0.5)]],
    "eo": [[(0.6, 0.0), (0.6, 1.0)], [(0.1, 0.5), (0.6, 0.5)]],
    "i": [[(0.5, 0.0), (0.5, 1.0)]],
    "ae": [[(0.3, 0.0), (0.3, 1.0)], [(0.3, 0.5), (0.6, 0.5)], [(0.75, 0.0), (0.75, 1.0)]],
}
_HORIZONTAL_VOWELS = {  # sit below the consonant
    "o": [[(0.5, 0.1), (0.5, 0.5)], [(0.0, 0.5), (1.0, 0.5)]],
    "u": [[(0.0, 0.4), (1.0, 0.4)], [(0.5, 0.4), (0.5, 0.9)]],
    "eu": [[(0.0, 0.5), (1.0, 0.5)]],
}


def _draw_jamo(
    canvas: np.ndarray, jamo, box: tuple[float, float, float, float], rng: np.random.Generator, thickness: int
) -> None:
    x0, y0, x1, y1 = box
    size = canvas.shape[0]
    strokes = [jamo] if isinstance(jamo, str) else jamo
    for stroke in strokes:
        if stroke == "o":
            cx, cy = (x0 + x1) / 2 * size, (y0 + y1) / 2 * size
            rx, ry = (
                (x1 - x0) / 2 * size * rng.uniform(0.6, 0.9),
                (y1 - y0) / 2 * size * rng.uniform(0.6, 0.9),
            )
            cv2.ellipse(
                canvas,
                (int(cx), int(cy)),
                (max(2, int(rx)), max(2, int(ry))),
                float(rng.uniform(0, 180)),
                0,
                360,
                255,
                thickness,
                cv2.LINE_AA,
            )
            continue
        pts = np.asarray(stroke, dtype=np.float64) + rng.normal(0, 0.05, (len(stroke), 2))
        pts[:, 0] = (x0 + pts[:, 0] * (x1 - x0)) * size
        pts[:, 1] = (y0 + pts[:, 1] * (y1 - y0)) * size
        cv2.polylines(canvas, [pts.round().astype(np.int32)], False, 255, thickness, cv2.LINE_AA)


def hangul_like(rng: np.random.Generator, render: int = 56) -> np.ndarray:
    """One handwriting-like syllable as a 28x28 ink image."""
    canvas = np.zeros((render, render), np.uint8)
    thickness = int(rng.integers(3, 7))
    initial = _CONSONANTS[rng.choice(list(_CONSONANTS))]
    final = _CONSONANTS[rng.choice(list(_CONSONANTS))] if rng.random() < 0.4 else None
    bottom = 0.62 if final is not None else 1.0
    if rng.random() < 0.6:
        vowel = _VERTICAL_VOWELS[rng.choice(list(_VERTICAL_VOWELS))]
        _draw_jamo(canvas, initial, (0.05, 0.05, 0.55, bottom - 0.05), rng, thickness)
        _draw_jamo(canvas, vowel, (0.55, 0.0, 0.95, bottom), rng, thickness)
    else:
        vowel = _HORIZONTAL_VOWELS[rng.choice(list(_HORIZONTAL_VOWELS))]
        _draw_jamo(canvas, initial, (0.2, 0.02, 0.8, bottom * 0.5), rng, thickness)
        _draw_jamo(canvas, vowel, (0.05, bottom * 0.5, 0.95, bottom), rng, thickness)
    if final is not None:
        _draw_jamo(canvas, final, (0.2, 0.66, 0.8, 0.98), rng, thickness)
    return fit_square(canvas, GLYPH_SIZE)


def distractor_bank(seed: int, n: int = 512) -> np.ndarray:
    """`n` syllables, uint8 [n, 28, 28]."""
    rng = np.random.default_rng([seed, 11])
    return np.stack([hangul_like(rng) for _ in range(n)])
