"""What identifies a dataset whatever folder it sits in: its label files' contents and its images.

Each fold run stores the fingerprint of the data it trained on (`dataset.json`). Resuming, skipping
and ensembling compare it with the data they are given: the same data moved or copied elsewhere is
accepted, different data at the same path (regenerated with another seed, say) is refused.

Images are identified by every file's name and size plus the full bytes of an evenly spaced sample,
so a 50,000-image root costs a directory listing and a few dozen reads, not gigabytes.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from multimnist.data.dacon import DaconLayout, DatasetError

SAMPLED_IMAGES = 32  # per split: read in full
LABEL_FILES = ("train_csv", "sample_submission", "test_answer")


def _label_hash(layout: DaconLayout) -> str:
    h = hashlib.sha1(b"labels-v1")
    for name in LABEL_FILES:
        path = layout.path(name)
        h.update(f"|{name}:".encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _image_hash(layout: DaconLayout) -> tuple[str, dict[str, int]]:
    h = hashlib.sha1(b"images-v1")
    counts = {}
    for name in ("train_dir", "test_dir"):
        folder = layout.path(name)
        entries = sorted((e.name, e.stat().st_size) for e in os.scandir(folder) if e.name.endswith(".png"))
        counts[name] = len(entries)
        h.update(f"|{name}:{len(entries)}".encode())
        for file_name, size in entries:
            h.update(f"|{file_name}:{size}".encode())
        if entries:
            picks = np.unique(np.linspace(0, len(entries) - 1, SAMPLED_IMAGES).astype(int))
            for i in picks:
                h.update((folder / entries[i][0]).read_bytes())
    return h.hexdigest()[:16], counts


def dataset_fingerprint(layout: DaconLayout) -> dict:
    """{"labels", "images"} hashes and the image counts of a dataset root; DatasetError if it is absent."""
    if not layout.root.is_dir():
        raise DatasetError(
            f"{layout.root}: dataset root not found (set data.root to an unzipped Dacon folder)"
        )
    for folder in (layout.path("train_dir"), layout.path("test_dir")):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: image folder not found")
    images, counts = _image_hash(layout)
    return {"labels": _label_hash(layout), "images": images, **counts}


def fingerprint_difference(old: dict, new: dict) -> str | None:
    """In words, how two fingerprints differ; None when they name the same data."""
    parts = []
    if old.get("labels") != new.get("labels"):
        parts.append("its label CSVs differ")
    if old.get("images") != new.get("images"):
        counts = [
            f"{what} images {old.get(k)} -> {new.get(k)}"
            for what, k in (("train", "train_dir"), ("test", "test_dir"))
            if old.get(k) != new.get(k)
        ]
        parts.append(f"its images differ ({', '.join(counts) or 'same file names and sizes, other pixels'})")
    return " and ".join(parts) or None
