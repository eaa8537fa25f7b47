"""Progress for every long loop: a tqdm bar on a terminal, log lines everywhere else.

Piped into a file, CI, `| tee` or a Slurm log, a tqdm bar writes `\\r` frames that pile up on one
line and glue log lines onto them. There, `progress` instead logs one plain line every `every`
seconds and one at the end (`desc: 120/500 batch, 38.2 batch/s, loss=0.1234`). `enabled=False`
(`trainer.progress=false`) shows nothing either way.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("multimnist.progress")

EVERY_SECONDS = 30.0


def on_terminal() -> bool:
    """Whether a bar would be drawn on a terminal (tqdm writes to stderr)."""
    return sys.stderr.isatty()


class LogLines:
    """The log-line stand-in for a tqdm bar: iterate, `update(n)`, `set_postfix(**values)`, `close()`."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, every: float):
        self.iterable, self.desc, self.unit, self.every = iterable, desc, unit, every
        self.total = total if total is not None else _length(iterable)
        self.n, self.postfix = 0, ""
        self.started = self.last = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._emit(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._emit(time.perf_counter(), done=True)

    def _emit(self, now: float, done: bool = False) -> None:
        seconds = max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        parts = [f"{self.desc}: {self.n}{of} {self.unit}", f"{self.n / seconds:.1f} {self.unit}/s"]
        if done:
            parts.append(f"done in {seconds:.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        log.info(", ".join(parts))


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    leave: bool = False,
    every: float = EVERY_SECONDS,
) -> Any:
    """A tqdm bar on a terminal; log lines every `every` seconds elsewhere; nothing when disabled."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if on_terminal():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LogLines(iterable, total, desc, unit, every)
