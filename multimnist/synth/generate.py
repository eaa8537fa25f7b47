"""Write a synthetic dataset root in the exact Dacon layout, in parallel, deterministically.

Every image draws from its own generator seeded by (seed, split, index), so the bytes do not depend
on the number of workers. The root is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from multimnist.data.dacon import DaconLayout, image_name
from multimnist.io import DiskFull, OutputError, ensure_writable
from multimnist.labels import CSV_COLUMNS, NUM_CLASSES
from multimnist.progress import progress as progress_bar
from multimnist.synth.compositor import Compositor

log = logging.getLogger(__name__)

_SPLIT_CODE = {"train": 0, "test": 1}
_CHUNK = 64
_worker: dict = {}


@dataclass(frozen=True)
class GenerationSummary:
    root: Path
    n_train: int
    n_test: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return (self.n_train + self.n_test) / max(self.seconds, 1e-9)


def _init_worker(compositors: dict[str, Compositor], seed: int, png_compression: int) -> None:
    _worker.update(compositors=compositors, seed=seed, png=[cv2.IMWRITE_PNG_COMPRESSION, png_compression])


def _render_chunk(task: tuple[str, Path, int, int]) -> tuple[str, int, np.ndarray, list[str]]:
    """Compose and write images [start, stop) of one split; return their labels and glyph ids."""
    split, folder, start, stop = task
    compositor: Compositor = _worker["compositors"][split]
    labels = np.zeros((stop - start, NUM_CLASSES), np.uint8)
    glyphs = []
    for row, index in enumerate(range(start, stop)):
        rng = np.random.default_rng([_worker["seed"], _SPLIT_CODE[split], index])
        comp = compositor.compose(rng)
        ok, buf = cv2.imencode(".png", comp.image, _worker["png"])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {split} image {index}")
        (folder / image_name(index)).write_bytes(buf.tobytes())  # full disk: ENOSPC (tofile: no errno)
        labels[row, comp.letters] = 1
        glyphs.append(" ".join(map(str, comp.glyph_ids)))
    return split, start, labels, glyphs


def _label_frame(indices: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(labels, columns=list(CSV_COLUMNS[1:]))
    frame.insert(0, "index", indices)
    return frame


def _write_tables(layout: DaconLayout, ranges: dict, labels: dict, glyphs: dict[str, list[str]]) -> None:
    """The answer CSV, the all-zeros sample submission, the test answers, meta.csv and test_meta.csv
    (each image's glyph ids)."""
    train_ids, test_ids = np.arange(*ranges["train"]), np.arange(*ranges["test"])
    _label_frame(train_ids, labels["train"]).to_csv(layout.path("train_csv"), index=False)
    _label_frame(test_ids, np.zeros_like(labels["test"])).to_csv(
        layout.path("sample_submission"), index=False
    )
    _label_frame(test_ids, labels["test"]).to_csv(layout.path("test_answer"), index=False)
    pd.DataFrame({"index": train_ids, "glyph_ids": glyphs["train"]}).to_csv(layout.path("meta"), index=False)
    pd.DataFrame({"index": test_ids, "glyph_ids": glyphs["test"]}).to_csv(
        layout.path("test_meta"), index=False
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(out: Path) -> None:
    """Remove the half-written roots (`.<name>.partial-<pid>`) that killed generators left beside
    `out`; a generator still running keeps its own."""
    for tmp in out.parent.glob(f".{out.name}.partial-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a generator that was stopped", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def check_out(out: Path | str, overwrite: bool = False) -> None:
    """`out` can become a dataset root: not a file, empty unless `overwrite`, its parent writable.
    Cheap: call it before building glyph banks."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"out={out}: a file, not a folder; set out to a new or empty folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty (pass overwrite=true to replace it)")
    ensure_writable(out.parent, "out", out)


def generate(
    out: Path | str,
    compositor: Compositor,
    n_train: int,
    n_test: int,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    png_compression: int = 0,
    provenance: dict | None = None,
    test_compositor: Compositor | None = None,
) -> GenerationSummary:
    """Write train images + answer CSV, test images + zero sample_submission + test_answer.csv, meta.csv.

    Train ids are 0..n_train-1 and test ids follow them (n_train..), as in Dacon's 0..49999 / 50000..54999.
    `provenance` (e.g. the resolved config) is written to synth.json beside the data.
    `test_compositor` draws the test images instead (e.g. from glyphs the train images never use).
    """
    out = Path(out)
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    check_out(out, overwrite)
    start_time = time.perf_counter()
    layout = DaconLayout(out)  # names only: everything is written under `tmp`, then renamed to `out`
    remove_stale_partials(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    folders = {"train": tmp / layout.train_dir, "test": tmp / layout.test_dir}
    for folder in folders.values():
        folder.mkdir(parents=True)
    ranges = {"train": (0, n_train), "test": (n_train, n_train + n_test)}
    tasks = [
        (split, folders[split], a, min(a + _CHUNK, stop))
        for split, (begin, stop) in ranges.items()
        for a in range(begin, stop, _CHUNK)
    ]
    labels = {s: np.zeros((stop - begin, NUM_CLASSES), np.uint8) for s, (begin, stop) in ranges.items()}
    glyphs = {s: [""] * (stop - begin) for s, (begin, stop) in ranges.items()}
    workers = workers or os.cpu_count() or 1
    bar = progress_bar(total=n_train + n_test, enabled=progress, desc="synth", unit="img")
    try:
        init = ({"train": compositor, "test": test_compositor or compositor}, seed, png_compression)
        if workers == 1:  # rendered in this process; workers get the same state from the pool initializer
            _init_worker(*init)
        # fork shares the glyph bank with the workers without pickling it; leaving the block terminates them.
        with (
            mp.get_context("fork").Pool(workers, _init_worker, init) if workers > 1 else nullcontext() as pool
        ):
            results = pool.imap_unordered(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
            for split, start, chunk_labels, chunk_glyphs in results:
                offset = start - ranges[split][0]
                labels[split][offset : offset + len(chunk_labels)] = chunk_labels
                glyphs[split][offset : offset + len(chunk_glyphs)] = chunk_glyphs
                bar.update(len(chunk_labels))
        bar.close()
        _write_tables(DaconLayout(tmp), ranges, labels, glyphs)
        info = {"generator": "multimnist.synth", "seed": seed, "n_train": n_train, "n_test": n_test}
        info |= {"compositor": asdict(compositor.cfg), **(provenance or {})}
        (tmp / "synth.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    except BaseException as err:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                err.errno,
                f"{out}: no space left on device while generating; nothing was written (the partial "
                "folder is removed, an existing dataset there is intact). Free some space and re-run",
            ) from None
        raise
    return GenerationSummary(out, n_train, n_test, time.perf_counter() - start_time)
