"""Our own limit on GitHub writes, in front of GitHub's secondary limits.

A sliding-window log per window (default: 80 per 60 s and 500 per 3600 s): a write is allowed
only if fewer than ``limit`` writes happened in the last ``seconds``. Unlike a token bucket of
the same size, which lets ``capacity + rate x T`` through in any window T (up to 1,000 in an
hour for a 500/h bucket), this never exceeds the limit in *any* window
(docs/decisions/0503). It never sleeps: it says how long to wait, and the caller turns that into
back-pressure (``Transient(retry_after=...)`` pauses the partition).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence


class WriteLimiter:
    def __init__(self, windows: Sequence[tuple[int, float]], clock: Callable[[], float] = time.monotonic) -> None:
        if not windows or any(n < 1 or s <= 0 for n, s in windows):
            raise ValueError(f"bad limiter windows {windows!r}")
        self.windows = sorted(windows, key=lambda w: w[1])
        self._clock = clock
        self._log: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        longest = self.windows[-1][1]
        while self._log and self._log[0] <= now - longest:
            self._log.popleft()

    def _wait(self, now: float, n: int) -> float:
        wait = max(0.0, self._blocked_until - now)
        for limit, seconds in self.windows:
            if n > limit:
                raise ValueError(f"{n} writes can never fit {limit} per {seconds}s")
            recent = [t for t in self._log if t > now - seconds]
            excess = len(recent) + n - limit
            if excess > 0:
                wait = max(wait, recent[excess - 1] + seconds - now)
        return wait

    def wait_time(self, n: int = 1) -> float:
        """Seconds until ``n`` writes would be allowed (0 if now)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            return self._wait(now, n)

    def try_acquire(self) -> float:
        """Take one write if allowed now and return 0; otherwise return the seconds to wait."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            wait = self._wait(now, 1)
            if wait > 0:
                return wait
            self._log.append(now)
            return 0.0

    def block_for(self, seconds: float) -> None:
        """GitHub said wait (retry-after, rate-limit reset): no write before then."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def available(self) -> dict[str, int]:
        """Writes left in each window right now, e.g. ``{"60s": 80, "3600s": 500}``."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            return {f"{s:g}s": max(0, limit - sum(1 for t in self._log if t > now - s)) for limit, s in self.windows}
