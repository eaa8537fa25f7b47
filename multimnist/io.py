"""Atomic file writes: write to a temporary name beside the target, then rename over it.

A crash or kill mid-write leaves the previous file (or none), never a truncated one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


class DiskFull(OSError):
    """A write ran out of space; the message names the file. The previous file is intact."""

    def __str__(self) -> str:
        return str(self.strerror)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed.

    A full disk (ENOSPC, EDQUOT) becomes one DiskFull naming `path`: the previous file, if any, is
    untouched, since only the temporary one was being written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(err, DiskFull):
            raise DiskFull(
                err.errno,
                f"{path}: no space left on device; the previous file is intact. Free some space and "
                "re-run the same command (it resumes)",
            ) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def save_torch(obj, path: Path | str) -> None:
    """torch.save, atomically. Serialised in memory first, so a full disk is a plain OSError of the
    file write (torch's zip writer reports it as an unnamed RuntimeError)."""
    import io as _io

    import torch  # here, not at the top: the CLI (and `--help`) imports this module without torch

    buffer = _io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


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


def claim_folder(folder: Path | str, owner: str) -> Path:
    """`folder` as a benchmark's own output place: created with a marker file naming `owner`, or
    reused when it holds that marker. A folder that holds anything else is refused (OutputError
    naming it), so a benchmark never writes over files it did not create."""
    folder = Path(folder)
    marker = folder / f".written-by-{owner}"
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: a file, not a folder; give {owner} a new or empty folder")
    if folder.is_dir() and any(folder.iterdir()) and not marker.is_file():
        raise OutputError(
            f"{folder}: holds files {owner} did not write; give it a new or empty folder "
            "(nothing there was changed)"
        )
    ensure_writable(folder, "--out", folder)
    marker.write_text(f"{owner} writes here; delete this folder to start over\n")
    return folder
