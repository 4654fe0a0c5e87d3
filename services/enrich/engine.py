"""The enricher plugin shape and the engine that runs enrichers concurrently.

An enricher plans tasks for an alert (``plan``) and runs one task (``run``). Each enricher
has its own limits: a timeout per task, a concurrency limit (its own thread pool), a rate
limit (token bucket) and a TTL cache of results. The engine runs a whole batch at once
(``prepare``), de-duplicating tasks shared by several alerts, so a batch of slow probes costs
about as long as its slowest wave rather than the sum; the per-record handler then reads the
results (``findings``).

An enricher failure becomes an ``error`` finding: investigation is best effort and never
holds an alert back from its ticket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from alertline.clock import Clock, utcnow
from alertline.model import Alert
from services.enrich.domain import Finding, error_finding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    concurrency: int = 8
    rate_per_s: float = 0.0  # 0: unlimited
    burst: int = 10
    cache_ttl_s: float = 300.0
    cache_size: int = 10_000


@dataclass(frozen=True)
class Task:
    enricher: str
    subject: str
    payload: Hashable = None


class Enricher(Protocol):
    name: str
    limits: Limits

    def plan(self, alert: Alert) -> Sequence[Task | Finding]:
        """Tasks to run for this alert (or findings known at once, e.g. a failed resolution)."""
        ...

    def run(self, task: Task, deadline: float) -> Finding:
        """Run one task; honour ``deadline`` (a ``time.monotonic()`` value) in every wait."""
        ...


class RateLimited(Exception):
    """Raised by an enricher when its remote API says "slow down"; pauses its bucket."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._mono = rate_per_s, max(1, burst), monotonic
        self._tokens = float(self.burst)
        self._at = monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._mono() + seconds)
            self._tokens = 0.0

    def acquire(self, deadline: float) -> bool:
        if self.rate <= 0 and self._paused_until <= self._mono():
            return True
        while True:
            with self._lock:
                now = self._mono()
                if now < self._paused_until:
                    wait_s = self._paused_until - now
                elif self.rate <= 0:
                    return True
                else:
                    self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                    self._at = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return True
                    wait_s = (1 - self._tokens) / self.rate
            if now + wait_s > deadline:
                return False
            time.sleep(wait_s)


class TtlCache:
    def __init__(self, ttl_s: float, size: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.size, self._mono = ttl_s, size, monotonic
        self._data: OrderedDict[Hashable, tuple[float, Finding]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Finding | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] <= self._mono():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return hit[1]

    def put(self, key: Hashable, value: Finding) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._data[key] = (self._mono() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class _Slot:
    """One enricher with its pool, bucket and cache."""

    def __init__(self, enricher: Enricher) -> None:
        self.enricher = enricher
        lim = enricher.limits
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, lim.concurrency), thread_name_prefix=f"enrich-{enricher.name}"
        )
        self.bucket = TokenBucket(lim.rate_per_s, lim.burst)
        self.cache = TtlCache(lim.cache_ttl_s, lim.cache_size)
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()


class Engine:
    def __init__(self, enrichers: Sequence[Enricher], clock: Clock = utcnow, batch_timeout_s: float = 240.0) -> None:
        self.enrichers = list(enrichers)
        self.clock = clock
        self.batch_timeout_s = batch_timeout_s
        self._slots = {e.name: _Slot(e) for e in self.enrichers}
        self._plan_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="enrich-plan")
        self._plans: dict[tuple[str, str], list[Task | Finding]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for s in self._slots.values():
            s.pool.shutdown(wait=False, cancel_futures=True)
        self._plan_pool.shutdown(wait=False, cancel_futures=True)

    def peak_concurrency(self, name: str) -> int:
        return self._slots[name].peak

    # ------------------------------------------------------------------ planning
    def _plan_one(self, alert: Alert) -> list[Task | Finding]:
        items: list[Task | Finding] = []
        for e in self.enrichers:
            try:
                items.extend(e.plan(alert))
            except Exception as exc:
                log.exception("enricher plan failed", extra={"enricher": e.name, "identity": alert["identity"]})
                items.append(error_finding(e.name, alert["identity"], f"{type(exc).__name__}: {exc}", self.clock()))
        return items

    def plan(self, alert: Alert) -> list[Task | Finding]:
        key = (alert["identity"], alert["revision"])
        with self._lock:
            cached = self._plans.get(key)
        return cached if cached is not None else self._plan_one(alert)

    # ------------------------------------------------------------------ running
    def prepare(self, alerts: Sequence[Alert]) -> None:
        """Plan and run everything a batch of alerts needs, concurrently; results land in the caches."""
        plans = dict(
            zip(
                [(a["identity"], a["revision"]) for a in alerts],
                self._plan_pool.map(self._plan_one, alerts),
                strict=True,
            )
        )
        with self._lock:
            self._plans = plans
        tasks = {t for items in plans.values() for t in items if isinstance(t, Task)}
        self.run(list(tasks))

    def run(self, tasks: Sequence[Task], fresh: bool = False) -> dict[Task, Finding]:
        """Run tasks concurrently (each enricher within its limits); cached results unless ``fresh``."""
        out: dict[Task, Finding] = {}
        futures: dict[Future[Finding], Task] = {}
        for t in dict.fromkeys(tasks):
            slot = self._slots[t.enricher]
            hit = None if fresh else slot.cache.get((t.subject, t.payload))
            if hit is not None:
                out[t] = hit
            else:
                futures[slot.pool.submit(self._execute, slot, t)] = t
        if futures:
            done, pending = wait(futures, timeout=self.batch_timeout_s)
            for f in done:
                out[futures[f]] = f.result()
            for f in pending:
                f.cancel()
                t = futures[f]
                out[t] = error_finding(
                    t.enricher, t.subject, f"not finished within {self.batch_timeout_s}s", self.clock()
                )
        return out

    def findings(self, alert: Alert) -> list[Finding]:
        """The findings for one alert, from the batch results (or computed now)."""
        items = self.plan(alert)
        tasks = [t for t in items if isinstance(t, Task)]
        results = self.run(tasks) if tasks else {}
        return [results[i] if isinstance(i, Task) else i for i in items]

    def _execute(self, slot: _Slot, task: Task) -> Finding:
        e = slot.enricher
        lim = e.limits
        if not slot.bucket.acquire(time.monotonic() + lim.timeout_s):
            return error_finding(e.name, task.subject, "rate limit: no slot within the timeout", self.clock())
        with slot.lock:
            slot.in_flight += 1
            slot.peak = max(slot.peak, slot.in_flight)
        try:
            finding = e.run(task, time.monotonic() + lim.timeout_s)
        except RateLimited as exc:
            slot.bucket.pause(exc.retry_after)
            return error_finding(e.name, task.subject, str(exc), self.clock())
        except Exception as exc:  # noqa: BLE001 - one failed lookup becomes an error finding, not a lost alert
            log.warning("enricher failed", extra={"enricher": e.name, "subject": task.subject, "error": str(exc)})
            return error_finding(e.name, task.subject, f"{type(exc).__name__}: {exc}"[:300], self.clock())
        finally:
            with slot.lock:
                slot.in_flight -= 1
        if finding.verdict != "error":
            slot.cache.put((task.subject, task.payload), finding)
        return finding
