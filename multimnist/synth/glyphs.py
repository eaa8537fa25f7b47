"""Glyph sources for the generator: 28x28 uint8 ink images (0 = paper, 255 = full ink) with their letter.

- ``procedural`` (default, needs no files): the TrueType fonts that ship with matplotlib and OpenCV's
  Hershey fonts, upper and lower case, each drawn in several variants made handwriting-like by random
  elastic and affine distortion and stroke width (albumentations).
- ``dacon7``: Dacon-7 ``mnist_data`` CSVs (``id,digit,letter,0..783``), the real source of the
  competition's letters (a digit is drawn brighter inside each letter; all of it is ink here).
- ``emnist``: the EMNIST letters IDX files (``*-images-idx3-ubyte[.gz]`` + ``*-labels-idx1-ubyte[.gz]``).
"""

from __future__ import annotations

import gzip
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from multimnist.choices import GLYPH_SOURCES
from multimnist.data.dacon import DatasetError
from multimnist.labels import LETTERS

GLYPH_SIZE = 28  # the EMNIST / Dacon-7 resolution; the compositor scales glyphs up from here
_RENDER = 56  # procedural glyphs are drawn at twice that and area-downsampled, for smooth edges
_BOX = 22  # a glyph's longer side inside its 28x28 square, as in EMNIST and Dacon-7


# matplotlib's bundled fonts that hold plain Latin letters (display, symbol and math fonts left out).
MATPLOTLIB_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
    "cmb10.ttf",
)
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)


@dataclass(frozen=True)
class GlyphBank:
    """Glyph images with their class, id (written to meta.csv) and family (the unit of glyph groups:
    a font for procedural glyphs, one handwritten sample for dacon7/emnist)."""

    images: np.ndarray  # uint8 [n, 28, 28], ink
    letters: np.ndarray  # int64 [n], 0..25
    ids: np.ndarray  # int64 [n]
    families: np.ndarray  # int64 [n]

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.letters) == len(self.ids) == len(self.families) == n):
            raise ValueError("glyph bank arrays differ in length")
        missing = sorted(set(range(len(LETTERS))) - set(np.unique(self.letters).tolist()))
        if missing:
            raise DatasetError(f"glyph source lacks letters {''.join(LETTERS[i] for i in missing)!r}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, rows: np.ndarray) -> GlyphBank:
        """The glyphs at `rows` (it must still hold all 26 letters)."""
        return GlyphBank(self.images[rows], self.letters[rows], self.ids[rows], self.families[rows])


POOL_SEED = 20260  # fixed, not the run's seed: pool A of a pretraining run and pool B of a dataset
# must be the same two halves whatever seeds those runs use


def glyph_pool(bank: GlyphBank, pool: str | None) -> GlyphBank:
    """Pool "A" or "B": two disjoint halves of the bank's glyph families (a font, or one handwritten
    sample), dealt by a fixed permutation of the family ids; None: the whole bank. Pretrain on A and
    generate from B, and the fine-tune is judged on handwriting the backbone never saw."""
    if pool is None:
        return bank
    if pool not in ("A", "B"):
        raise ValueError(f"glyphs.pool must be A, B or null, got {pool!r}")
    families = np.unique(bank.families)
    order = np.random.default_rng(POOL_SEED).permutation(families)
    half = set(order[: len(order) // 2].tolist()) if pool == "A" else set(order[len(order) // 2 :].tolist())
    rows = np.flatnonzero(np.isin(bank.families, list(half)))
    try:
        return bank.subset(rows)
    except DatasetError as err:
        raise DatasetError(f"glyphs.pool={pool}: {err} (the source is too small to halve)") from None


def split_families(families: np.ndarray, share: float, seed: int, letters: np.ndarray | None = None):
    """Rows of the kept families and of a `share` of families held out, so the two sides are different
    hands, not copies of the same hand. With `letters`, families are held out letter by letter (by
    each family's first letter: a handwritten sample is one letter, a font all of them), so both sides
    keep every letter; each letter keeps at least one family."""
    unique = np.unique(families)
    if letters is None:
        strata = [unique]
    else:
        first: dict[int, int] = {}
        for family, letter in zip(families.tolist(), letters.tolist(), strict=True):
            first[family] = min(letter, first.get(family, letter))
        firsts = np.array([first[f] for f in unique.tolist()])
        strata = [unique[firsts == k] for k in np.unique(firsts)]
    rng = np.random.default_rng([seed, 17])
    held = []
    for group in strata:
        n_held = max(1, int(round(share * len(group)))) if share > 0 else 0
        held += rng.permutation(group)[: min(n_held, max(len(group) - 1, 1))].tolist()
    is_held = np.isin(families, held)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def fit_square(ink: np.ndarray, out: int = GLYPH_SIZE, box: int = _BOX) -> np.ndarray:
    """Crop ink to its bounding box, scale its longer side to `box` and centre it in an out x out square."""
    ys, xs = np.nonzero(ink > 0)
    if len(ys) == 0:
        return np.zeros((out, out), np.uint8)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    square = np.zeros((out, out), np.uint8)
    y0, x0 = (out - nh) // 2, (out - nw) // 2
    square[y0 : y0 + nh, x0 : x0 + nw] = crop
    return square


def _render_ttf(path: Path, char: str) -> np.ndarray:
    font = ImageFont.truetype(str(path), size=_RENDER)
    canvas = Image.new("L", (_RENDER * 2, _RENDER * 2), 0)
    ImageDraw.Draw(canvas).text((_RENDER // 2, _RENDER // 4), char, fill=255, font=font)
    return np.asarray(canvas)


def _render_hershey(face: int, char: str, thickness: int) -> np.ndarray:
    canvas = np.zeros((_RENDER * 2, _RENDER * 2), np.uint8)
    scale = cv2.getFontScaleFromHeight(face, _RENDER, thickness)
    cv2.putText(canvas, char, (_RENDER // 3, int(_RENDER * 1.4)), face, scale, 255, thickness, cv2.LINE_AA)
    return canvas


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], low: float, high: float) -> np.ndarray:
    """A random field over `shape` that drifts smoothly between `low` and `high` (a 4x4 grid of uniform
    draws, bicubically upsampled and clipped)."""
    grid = rng.uniform(low, high, (4, 4)).astype(np.float32)
    field = cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return np.clip(field, min(low, high), max(low, high))


def redraw_strokes(
    ink: np.ndarray, rng: np.random.Generator, jitter: float, pen_width: float, ink_variation: float
) -> np.ndarray:
    """A glyph redrawn as a hand draws it: its strokes thinned to centre lines (scikit-image's
    skeletonize), bent by a smooth random displacement of up to `jitter` px and traced by a round pen
    whose radius drifts between 1 and 1 + `pen_width` px along the way, its ink between
    1 - `ink_variation` and full."""
    from skimage.morphology import skeletonize  # here: only redrawn glyphs need it

    h, w = ink.shape
    ys, xs = np.nonzero(skeletonize(ink > 127))
    canvas = np.zeros((h, w), np.uint8)
    if len(ys) == 0:
        return canvas
    dy, dx = (_smooth_field(rng, (h, w), -jitter, jitter)[ys, xs] for _ in range(2))
    radius = _smooth_field(rng, (h, w), 1.0, 1.0 + pen_width)[ys, xs]
    ink_level = _smooth_field(rng, (h, w), 255 * (1 - ink_variation), 255.0)[ys, xs]
    for y, x, r, v in zip(ys + dy, xs + dx, radius, ink_level, strict=True):  # 16ths of a px: shift=4
        cv2.circle(canvas, (int(x * 16), int(y * 16)), int(r * 16), int(v), -1, cv2.LINE_AA, shift=4)
    return canvas


def procedural_bank(
    seed: int = 0,
    variants: int = 3,
    elastic_alpha: float = 30.0,
    elastic_sigma: float = 6.0,
    shear: float = 12.0,
    stroke_jitter: float = 0.0,
    pen_width: float = 2.0,
    ink_variation: float = 0.0,
) -> GlyphBank:
    """Font glyphs made handwriting-like: `variants` distorted copies of every (font, case, letter).

    With `stroke_jitter` > 0 (px of a 56 px glyph) every glyph is first redrawn stroke by stroke by
    `redraw_strokes`: bent strokes, traced by a pen of drifting width (`pen_width`) and ink
    (`ink_variation`), in place of the font's even outline. 0 (the default) keeps the fonts' strokes."""
    import albumentations as A  # here: it imports torch, which the generator's other paths never need

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    distort = A.Compose(
        [
            A.Affine(shear=(-shear, shear), rotate=(-8, 8), scale=(0.9, 1.05), p=1.0),
            A.ElasticTransform(alpha=elastic_alpha, sigma=elastic_sigma, p=1.0),
        ],
        seed=seed,
    )
    rng = np.random.default_rng([seed, 7])
    hand = np.random.default_rng([seed, 11])  # the redrawn strokes' own draws: rng's stay as they were
    redraw = stroke_jitter > 0
    images, letters, families = [], [], []
    n_fonts = len(MATPLOTLIB_FONTS) + len(HERSHEY_FONTS)
    for family in range(n_fonts):
        for k, letter in enumerate(LETTERS):
            for char in (letter.upper(), letter):
                for _ in range(variants):
                    if family < len(MATPLOTLIB_FONTS):
                        ink = _render_ttf(font_dir / MATPLOTLIB_FONTS[family], char)
                        ink = fit_square(ink, _RENDER, _RENDER - 10)
                        width = int(rng.integers(-1, 3))  # stroke width change in render pixels
                        if width and not redraw:  # a redrawn glyph's pen sets its width
                            op = cv2.dilate if width > 0 else cv2.erode
                            ink = op(ink, np.ones((2, 2), np.uint8), iterations=abs(width))
                    else:
                        face = HERSHEY_FONTS[family - len(MATPLOTLIB_FONTS)] | (
                            cv2.FONT_ITALIC * int(rng.integers(2))
                        )
                        ink = _render_hershey(face, char, int(rng.integers(3, 7)))
                        ink = fit_square(ink, _RENDER, _RENDER - 10)
                    if redraw:
                        ink = redraw_strokes(ink, hand, stroke_jitter, pen_width, ink_variation)
                    ink = distort(image=ink)["image"]
                    images.append(fit_square(ink))
                    letters.append(k)
                    families.append(family)
    n = len(images)
    return GlyphBank(np.stack(images), np.asarray(letters), np.arange(n), np.asarray(families))


_DACON7_PIXELS = [str(i) for i in range(784)]


def _dacon7_frame(path: Path) -> pd.DataFrame:
    """One Dacon-7 CSV, checked: every problem is a DatasetError naming the file and the line."""
    if not path.is_file():
        raise DatasetError(f"{path}: Dacon-7 CSV not found")
    try:
        frame = pd.read_csv(path, dtype={"letter": str})
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{path}: empty file, not a Dacon-7 mnist_data CSV (id,digit,letter,0..783)"
        ) from None
    except pd.errors.ParserError as err:  # "Expected 787 fields in line 6, saw 788"
        detail = str(err).strip().split("\n")[-1].removeprefix("Error tokenizing data. C error: ")
        raise DatasetError(f"{path}: {detail} (a row longer than the header)") from None
    except UnicodeDecodeError:
        raise DatasetError(
            f"{path}: not a text CSV (a Dacon-7 mnist_data CSV is id,digit,letter,0..783)"
        ) from None
    need = ["id", "letter", *_DACON7_PIXELS]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: not a Dacon-7 mnist_data CSV (missing columns {missing[:3]}...)")
    if frame.empty:
        raise DatasetError(f"{path}: a header and no glyph rows")
    bad = ~frame["letter"].astype(str).str.fullmatch(r"[A-Za-z]")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{path}: line {row + 2}: letter {frame['letter'].iloc[row]!r} is not a-z")
    pixels = frame[_DACON7_PIXELS]
    if not all(pd.api.types.is_numeric_dtype(t) for t in pixels.dtypes):
        column = next(c for c, t in pixels.dtypes.items() if not pd.api.types.is_numeric_dtype(t))
        values = pd.to_numeric(pixels[column], errors="coerce")
        row = int(np.flatnonzero(values.isna().to_numpy() & pixels[column].notna().to_numpy())[0])
        raise DatasetError(
            f"{path}: line {row + 2}: pixel column {column} is {pixels[column].iloc[row]!r}, "
            "not a number 0..255"
        )
    values = pixels.to_numpy(np.float64)
    short = np.isnan(values).any(axis=1)
    if short.any():
        row = int(np.flatnonzero(short)[0])
        have = 3 + int(np.isfinite(values[row]).sum())
        raise DatasetError(
            f"{path}: line {row + 2}: {have} fields with a value, the header has {len(frame.columns)} "
            "(a short row, or empty pixels)"
        )
    outside = (values < 0) | (values > 255) | (values != np.round(values))
    if outside.any():
        row, col = (int(v[0]) for v in np.nonzero(outside))
        raise DatasetError(
            f"{path}: line {row + 2}: pixel column {col} is {values[row, col]:g}; "
            "pixels are whole numbers 0..255"
        )
    return frame


def read_dacon7(paths: list[Path | str], ink_floor: int = 16) -> GlyphBank:
    """Dacon-7 ``mnist_data`` CSVs (train.csv and/or test.csv): ``id,digit,letter,0..783``.

    Pixels at or below `ink_floor` (the faint background of those scans) become paper; the rest is
    stretched to full ink range so the compositor can saturate strokes as the competition did.
    """
    frame = pd.concat([_dacon7_frame(Path(p)) for p in paths], ignore_index=True)
    px = frame[_DACON7_PIXELS].to_numpy(np.float32).reshape(-1, 28, 28)
    ink = np.clip((px - ink_floor) * (255.0 / (255 - ink_floor)), 0, 255).astype(np.uint8)
    letters = frame["letter"].str.lower().map(lambda c: ord(c) - ord("a")).to_numpy(np.int64)
    ids = frame["id"].to_numpy(np.int64)
    if len(np.unique(ids)) != len(ids):  # train.csv and test.csv number their rows independently
        ids = np.arange(len(ids))
    return GlyphBank(ink, letters, ids, np.arange(len(ids)))


def _read_idx(path: Path) -> np.ndarray:
    """One IDX file (the MNIST/EMNIST format: magic, dims, big-endian uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read IDX file ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (bad magic)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: IDX header says {dims}, file holds {body.size} values")
    return body.reshape(dims)


def read_emnist(folder: Path | str, split: str = "train") -> GlyphBank:
    """EMNIST letters from `folder`: ``emnist-letters-{split}-images-idx3-ubyte[.gz]`` + ``-labels-idx1-...``.

    EMNIST stores images transposed and labels letters 1..26 (case merged).
    """
    folder = Path(folder)
    found = {}
    for kind, stem in (("images", "idx3"), ("labels", "idx1")):
        name = f"emnist-letters-{split}-{kind}-{stem}-ubyte"
        hits = [folder / (name + ext) for ext in (".gz", "") if (folder / (name + ext)).is_file()]
        if not hits:
            raise DatasetError(f"{folder / name}[.gz]: EMNIST letters file not found")
        found[kind] = _read_idx(hits[0])
    images, labels = found["images"], found["labels"].astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DatasetError(f"{folder}: EMNIST images {images.shape} do not match labels {labels.shape}")
    if labels.min() < 1 or labels.max() > 26:
        raise DatasetError(
            f"{folder}: EMNIST letters labels must be 1..26, got {labels.min()}..{labels.max()}"
        )
    n = len(labels)
    return GlyphBank(np.ascontiguousarray(images.transpose(0, 2, 1)), labels - 1, np.arange(n), np.arange(n))


def load_glyphs(
    source: str,
    path: str | os.PathLike | list | None = None,
    seed: int = 0,
    pool: str | None = None,
    **options,
) -> GlyphBank:
    """The glyph bank for a config's `glyphs` group (source + path + pool + source-specific options)."""
    return glyph_pool(_read_source(source, path, seed, **options), pool)


def _read_source(source: str, path: str | os.PathLike | list | None, seed: int, **options) -> GlyphBank:
    readers = {"procedural": procedural_bank, "dacon7": read_dacon7, "emnist": read_emnist}
    if source in readers:
        known = inspect.signature(readers[source]).parameters
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"glyphs.options.{unknown[0]}: not an option of glyphs={source}")
    if source == "procedural":
        return procedural_bank(seed=seed, **options)
    if path is None:
        raise DatasetError(f"glyphs={source} needs glyphs.path (where its files are)")
    if source == "dacon7":
        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
        expanded = []
        for p in map(Path, paths):
            found = sorted(p.glob("*.csv")) if p.is_dir() else [p]
            if not found:
                raise DatasetError(
                    f"{p}: a folder with no .csv file; glyphs.path for dacon7 is mnist_data/ "
                    "(train.csv and/or test.csv) or one CSV"
                )
            expanded += found
        if not expanded:
            raise DatasetError("glyphs.path for dacon7 names no file")
        return read_dacon7(expanded, **options)
    if source == "emnist":
        return read_emnist(path, **options)
    raise ValueError(f"glyphs.source must be one of {GLYPH_SOURCES}, got {source!r}")
