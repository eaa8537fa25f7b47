"""One GPU per job when several jobs share a machine (Hydra's joblib launcher, or several shells).

Each job takes an exclusive lock on a per-GPU file (filelock, as the run folders' locks); the OS
drops the lock when the process ends, however it ends (kill -9 included), so a crashed job never
holds a GPU. A job that finds every GPU taken waits for one to come free.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


def lock_dir() -> Path:
    return Path(
        os.environ.get("MULTIMNIST_GPU_LOCKS", Path(tempfile.gettempdir()) / f"multimnist-gpus-{os.getuid()}")
    )


class SlotLock:
    """A held GPU slot: `close()` gives it back (the process ending does too)."""

    def __init__(self, lock: FileLock) -> None:
        self.lock = lock

    def close(self) -> None:
        self.lock.release(force=True)


def claim_slot(count: int, where: Path | None = None, poll_s: float = 5.0, timeout_s: float | None = None):
    """The lowest free slot in 0..count-1 and the lock that holds it (keep it until the job ends).

    Waits while all are taken; TimeoutError after `timeout_s`.
    """
    where = where or lock_dir()
    where.mkdir(parents=True, exist_ok=True)
    waited, announced = 0.0, False
    while True:
        for slot in range(count):
            lock = FileLock(where / f"gpu{slot}.lock", timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            return slot, SlotLock(lock)
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(f"all {count} GPU slots in {where} stayed taken for {waited:.0f} s")
        if not announced:
            log.info("all %d GPUs are taken by other jobs; waiting for one to come free", count)
            announced = True
        time.sleep(poll_s)
        waited += poll_s
