"""Exponential back-off shared by the source loops."""

from __future__ import annotations

import threading


class Backoff:
    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        self.initial = initial_s
        self.max = max_s
        self.current = initial_s

    def reset(self) -> None:
        self.current = self.initial

    def next(self, hint: float | None = None) -> float:
        delay = min(max(self.current, hint or 0.0), self.max)
        self.current = min(self.current * 2, self.max)
        return delay

    def wait(self, stop: threading.Event, hint: float | None = None) -> bool:
        """Sleep the next delay; True when ``stop`` was set meanwhile."""
        return stop.wait(self.next(hint))
