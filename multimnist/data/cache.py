"""A decoded-uint8 image cache (numpy memmap), so a second epoch or a second fold decodes nothing.

The cache file's name carries a fingerprint of the source files (name, size, mtime) and the
preprocessing (`img_size`, `denoise`): a changed image gives a new file and the stale ones are removed;
other preprocessing of the same files gets its own file. Files are written to a temporary name and
renamed, so a killed build leaves no half cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from multimnist.data.dacon import Split, decode_gray, preprocess
from multimnist.io import atomic_path
from multimnist.progress import progress as progress_bar

log = logging.getLogger(__name__)


def source_fingerprint(split: Split) -> str:
    """A short hash of the source files (name, size, mtime): it changes when any image changes."""
    h = hashlib.sha1(f"v1|{len(split)}".encode())
    for path in split.paths:
        st = path.stat()
        h.update(f"|{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached_images(
    split: Split,
    cache_dir: Path | str,
    img_size: int | None = None,
    denoise: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Return a read-only memmap [n, H, W] uint8 of the split's preprocessed images, building it if needed."""
    cache_dir = Path(cache_dir)
    source = source_fingerprint(split)
    path = cache_dir / f"{split.name}-{source}-size{img_size or 'orig'}-denoise{int(denoise)}.npy"
    if path.is_file():
        try:
            return _open(path)
        except (ValueError, OSError) as err:  # damaged outside this code (its own writes are atomic)
            log.warning("%s: damaged image cache (%s); building it again", path, err.__class__.__name__)
            path.unlink()
    first = preprocess(decode_gray(split.paths[0]), img_size, denoise)
    shape = (len(split), *first.shape)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        with open(tmp, "r+b") as handle:  # reserve the blocks now: a memmap write to a full disk is a SIGBUS
            os.posix_fallocate(handle.fileno(), 0, os.path.getsize(tmp))

        def load(i: int) -> None:
            img = preprocess(decode_gray(split.paths[i]), img_size, denoise)
            if img.shape != shape[1:]:
                raise ValueError(f"{split.paths[i]}: preprocessed to {img.shape}, expected {shape[1:]}")
            out[i] = img

        # cv2 decodes without the GIL, so threads scale over cores.
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            jobs = pool.map(load, range(len(split)))
            for _ in progress_bar(
                jobs, total=len(split), enabled=progress, desc=f"cache {split.name}", unit="img"
            ):
                pass
        out.flush()
    # Caches of the same split built from other source files are stale; other preprocessing is kept.
    for stale in cache_dir.glob(f"{split.name}-*.npy"):
        if not stale.name.startswith(f"{split.name}-{source}-"):
            log.info("removing stale image cache %s", stale)
            stale.unlink(missing_ok=True)
    return _open(path)


def _open(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")
