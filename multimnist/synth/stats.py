"""Realism statistics of a dataset root, an image folder or image files, side by side.

    python -m multimnist.synth.stats data/synth path/to/real/images

Image figures come from saturated-pixel blobs (pixels at 255, opened 2x2 to drop isolated noise
pixels, closed 3x3, components of >= 30 px): the same measure for real and synthetic images, so the
columns compare even though blobs merge touching letters. Label figures come from the answer CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from multimnist.data.dacon import DaconLayout, DatasetError, decode_gray, read_label_csv

MIN_BLOB = 30  # px; smaller 255-components are noise or fragments
_OPEN = np.ones((2, 2), np.uint8)
_CLOSE = np.ones((3, 3), np.uint8)
_RING = np.ones((5, 5), np.uint8)


def image_stats(img: np.ndarray) -> dict[str, float | list[int]]:
    """Per-image figures: saturation, blob sizes and the background outside the blobs."""
    sat = (img == 255).astype(np.uint8)
    blobs = cv2.morphologyEx(cv2.morphologyEx(sat, cv2.MORPH_OPEN, _OPEN), cv2.MORPH_CLOSE, _CLOSE)
    n, lab, st, _ = cv2.connectedComponentsWithStats(blobs)
    keep = [i for i in range(1, n) if st[i, cv2.CC_STAT_AREA] >= MIN_BLOB]
    inside = np.isin(lab, keep)
    background = img[~cv2.dilate(inside.astype(np.uint8), _RING).astype(bool)]
    return {
        "frac255": float(sat.mean()),
        "inside255": float((img[inside] == 255).mean()) if inside.any() else float("nan"),
        "blob_area": float(inside.mean()),
        "bg_mean": float(background.mean()),
        "bg_sd": float(background.std()),
        "blob_sizes": [int(max(st[i, cv2.CC_STAT_WIDTH], st[i, cv2.CC_STAT_HEIGHT])) for i in keep],
    }


def _find_inputs(path: Path) -> tuple[list[Path], Path | None]:
    """Images and (if any) the label CSV of a dataset root, an image folder or one image."""
    if path.is_file():
        return [path], None
    if not path.is_dir():
        raise DatasetError(f"{path}: not found")
    layout = DaconLayout(path)
    if layout.path("train_dir").is_dir():
        images = sorted(layout.path("train_dir").glob("*.png"))
    else:
        images = sorted(path.glob("*.png"))
    csv = layout.path("train_csv")
    return images, csv if csv.is_file() else None


def dataset_stats(path: Path | str, max_images: int = 200, seed: int = 0) -> dict[str, float]:
    """Summary figures of up to `max_images` images (a seeded sample) and all labels of one input."""
    images, csv = _find_inputs(Path(path))
    if not images:
        raise DatasetError(f"{path}: no PNG images found")
    if len(images) > max_images:
        pick = np.random.default_rng(seed).choice(len(images), max_images, replace=False)
        images = [images[i] for i in sorted(pick)]
    per = [image_stats(decode_gray(p)) for p in images]
    sizes = np.concatenate([np.asarray(s["blob_sizes"], dtype=float) for s in per]) if per else np.zeros(0)
    out: dict[str, float] = {"images measured": float(len(per))}
    for key in ("bg_mean", "bg_sd", "frac255", "inside255", "blob_area"):
        out[key] = float(np.nanmean([s[key] for s in per]))
    out["blobs per image"] = float(len(sizes) / len(per))
    out["blob size p10"] = float(np.percentile(sizes, 10)) if sizes.size else float("nan")
    out["blob size median"] = float(np.median(sizes)) if sizes.size else float("nan")
    out["blob size p90"] = float(np.percentile(sizes, 90)) if sizes.size else float("nan")
    if csv is not None:
        labels = read_label_csv(csv).to_numpy()
        counts = labels.sum(1)
        out["labelled images"] = float(len(labels))
        out["letters/image mean"] = float(counts.mean())
        out["letters/image min"] = float(counts.min())
        out["letters/image max"] = float(counts.max())
        prevalence = labels.mean(0)
        out["prevalence mean"] = float(prevalence.mean())
        out["prevalence min"] = float(prevalence.min())
        out["prevalence max"] = float(prevalence.max())
    return out


ROWS = {
    "images measured": ("{:.0f}", "images measured (sampled)"),
    "bg_mean": ("{:.1f}", "background mean (outside blobs)"),
    "bg_sd": ("{:.1f}", "background sd"),
    "frac255": ("{:.2%}", "pixels exactly 255"),
    "inside255": ("{:.1%}", "255 share inside blobs"),
    "blob_area": ("{:.2%}", "image area in blobs"),
    "blobs per image": ("{:.1f}", "blobs (>= 30 px) per image"),
    "blob size p10": ("{:.0f}", "blob size p10 (px, longer side)"),
    "blob size median": ("{:.0f}", "blob size median"),
    "blob size p90": ("{:.0f}", "blob size p90"),
    "labelled images": ("{:.0f}", "labelled images (CSV)"),
    "letters/image mean": ("{:.2f}", "letters per image mean"),
    "letters/image min": ("{:.0f}", "letters per image min"),
    "letters/image max": ("{:.0f}", "letters per image max"),
    "prevalence mean": ("{:.3f}", "per-letter prevalence mean"),
    "prevalence min": ("{:.3f}", "per-letter prevalence min"),
    "prevalence max": ("{:.3f}", "per-letter prevalence max"),
}


def format_table(columns: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per figure, one column per input."""
    names = list(columns)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':34}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for key, (fmt, label) in ROWS.items():
        cells = []
        for n in names:
            value = columns[n].get(key)
            cells.append("-" if value is None or value != value else fmt.format(value))
        lines.append(f"{label:34}" + "".join(f"{c:>{width + 2}}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m multimnist.synth.stats", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="dataset roots, image folders or PNG files")
    parser.add_argument("--max-images", type=int, default=200, help="images sampled per input (default 200)")
    args = parser.parse_args(argv)
    try:
        columns = {str(p): dataset_stats(p, args.max_images) for p in args.inputs}
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
