"""Ctrl-C during training: the first asks the loop to stop at the next update (so last.pt can be
saved at a point it resumes from exactly); a second one interrupts at once."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


class StopOnInterrupt:
    """Context manager; `requested` turns true on the first SIGINT. Off the main thread it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupt: stopping at the next update to save last.pt (Ctrl-C again to abort at once)")

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
