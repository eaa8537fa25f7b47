"""Atomic file writes: write to a temporary name beside the target, then rename over it.

A crash or kill mid-write leaves the previous file (or none), never a truncated one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_torch(obj, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_npy(array: np.ndarray, path: Path | str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def save_text(text: str, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class OutputError(ValueError):
    """An output place that cannot be written; the message names the config key to change."""


def ensure_writable(folder: Path | str, key: str, value: Path | str | None = None) -> Path:
    """Create `folder` (and its parents) and prove a file can be written in it, before any work starts.

    `key` is the config key (or argument) that chose the place, named in the error with its `value`
    (default: `folder`): a read-only disk, a file in the way or a place like /proc fails here in one
    line instead of mid-run.
    """
    folder = Path(folder)
    probe = folder / f".write-test-{os.getpid()}"
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(0, "a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason, shown = err.strerror or str(err), folder if value is None else value
        raise OutputError(
            f"{key}={shown}: cannot write there ({reason}); set {key} to a writable place"
        ) from None
    return folder
