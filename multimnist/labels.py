"""The 26 labels (a-z; upper and lower case share one) and conversions between letters and 0/1 vectors."""

from collections.abc import Iterable

import numpy as np

LETTERS: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz")
NUM_CLASSES: int = len(LETTERS)
#: The exact header of every Dacon label CSV (answers, sample submission, test answers).
CSV_COLUMNS: tuple[str, ...] = ("index", *LETTERS)


def letter_index(letter: str) -> int:
    """Class index of a letter, case-insensitive ('A' and 'a' are both 0)."""
    low = letter.lower()
    if len(low) != 1 or low not in LETTERS:
        raise ValueError(f"not a letter a-z: {letter!r}")
    return ord(low) - ord("a")


def letters_to_vector(letters: Iterable[str]) -> np.ndarray:
    """0/1 uint8 vector of length 26 with a 1 for every letter present."""
    vec = np.zeros(NUM_CLASSES, dtype=np.uint8)
    for letter in letters:
        vec[letter_index(letter)] = 1
    return vec


def vector_to_letters(vec: np.ndarray) -> str:
    """The letters of a 0/1 (or boolean) vector, in alphabetical order: [1,0,1,0...] -> 'ac'."""
    arr = np.asarray(vec)
    if arr.shape != (NUM_CLASSES,):
        raise ValueError(f"expected a vector of {NUM_CLASSES}, got shape {arr.shape}")
    return "".join(LETTERS[i] for i in np.flatnonzero(arr))
