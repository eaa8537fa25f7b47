"""One GPU per job when several jobs share a machine (Hydra's joblib launcher, or several shells).

Each job takes an exclusive lock on a per-GPU file; the kernel drops the lock when the process
ends, however it ends (kill -9 included), so a crashed job never holds a GPU. A job that finds
every GPU taken waits for one to come free.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def lock_dir() -> Path:
    return Path(
        os.environ.get("MULTIMNIST_GPU_LOCKS", Path(tempfile.gettempdir()) / f"multimnist-gpus-{os.getuid()}")
    )


def claim_slot(count: int, where: Path | None = None, poll_s: float = 5.0, timeout_s: float | None = None):
    """The lowest free slot in 0..count-1 and the open lock file that holds it (keep it open).

    Waits while all are taken; TimeoutError after `timeout_s`.
    """
    where = where or lock_dir()
    where.mkdir(parents=True, exist_ok=True)
    waited, announced = 0.0, False
    while True:
        for slot in range(count):
            handle: IO = open(where / f"gpu{slot}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return slot, handle
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(f"all {count} GPU slots in {where} stayed taken for {waited:.0f} s")
        if not announced:
            log.info("all %d GPUs are taken by other jobs; waiting for one to come free", count)
            announced = True
        time.sleep(poll_s)
        waited += poll_s
