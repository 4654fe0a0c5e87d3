"""The enricher plugin shape: concurrency, rate limit, cache, timeouts and failures as data."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from alertline.testing.samples import alert
from services.enrich.domain import Finding
from services.enrich.engine import Engine, Limits, RateLimited, Task, TokenBucket, TtlCache

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Slow:
    """Sleeps like a network call and counts how many run at once."""

    name = "slow"

    def __init__(self, limits: Limits, seconds: float = 0.2) -> None:
        self.limits = limits
        self.seconds = seconds
        self.calls = 0
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def plan(self, a):  # type: ignore[no-untyped-def]
        return [Task(self.name, ip) for ip in a["indicators"]["ips"]]

    def run(self, task: Task, deadline: float) -> Finding:
        with self.lock:
            self.calls += 1
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            if task.subject == "boom":
                raise RuntimeError("remote said no")
            if task.subject == "slowdown":
                raise RateLimited("slow down", 5)
            time.sleep(self.seconds)
            return Finding(self.name, task.subject, f"ok {task.subject}", "info", {}, "fp", NOW)
        finally:
            with self.lock:
                self.now -= 1


def test_a_batch_runs_concurrently_up_to_the_enricher_limit_and_shares_tasks() -> None:
    slow = Slow(Limits(concurrency=8, cache_ttl_s=60))
    eng = Engine([slow])
    alerts = [alert(i, indicators={"ips": [f"198.51.100.{i % 20}"], "domains": [], "users": [], "ports": []})
              for i in range(40)]  # fmt: skip
    t0 = time.monotonic()
    eng.prepare(alerts)
    took = time.monotonic() - t0
    assert slow.calls == 20, "alerts naming the same address share one lookup"
    assert slow.peak == 8
    assert took < 1.5, took  # 20 x 0.2 s sequential would be 4 s
    assert [f.summary for f in eng.findings(alerts[3])] == ["ok 198.51.100.3"]
    assert slow.calls == 20, "the handler reads the prepared results"
    eng.close()


def test_failures_become_error_findings_and_are_not_cached() -> None:
    slow = Slow(Limits(concurrency=2))
    eng = Engine([slow])
    r = eng.run([Task("slow", "boom")])[Task("slow", "boom")]
    assert r.verdict == "error" and r.summary == "slow failed for boom: RuntimeError: remote said no"
    eng.run([Task("slow", "boom")])
    assert slow.calls == 2
    eng.close()


def test_rate_limited_answer_pauses_the_bucket() -> None:
    slow = Slow(Limits(concurrency=1, rate_per_s=100, timeout_s=0.5))
    eng = Engine([slow])
    assert eng.run([Task("slow", "slowdown")])[Task("slow", "slowdown")].verdict == "error"
    t0 = time.monotonic()
    r = eng.run([Task("slow", "x")])[Task("slow", "x")]
    assert r.summary == "slow failed for x: rate limit: no slot within the timeout"
    assert time.monotonic() - t0 < 1.0 and slow.calls == 1
    eng.close()


def test_batch_budget_bounds_a_hung_enricher() -> None:
    slow = Slow(Limits(concurrency=1), seconds=2.0)
    eng = Engine([slow], batch_timeout_s=0.3)
    t0 = time.monotonic()
    r = eng.run([Task("slow", "a"), Task("slow", "b")])
    assert time.monotonic() - t0 < 1.0
    assert {f.verdict for f in r.values()} == {"error"}
    assert "not finished within 0.3s" in r[Task("slow", "b")].summary
    eng.close()


def test_plan_failure_is_reported_for_that_alert_only() -> None:
    class Broken:
        name = "broken"
        limits = Limits()

        def plan(self, a):  # type: ignore[no-untyped-def]
            raise KeyError("resources")

        def run(self, task, deadline):  # type: ignore[no-untyped-def]
            raise AssertionError

    eng = Engine([Broken(), Slow(Limits(), seconds=0)])
    a = alert(1, indicators={"ips": ["203.0.113.1"], "domains": [], "users": [], "ports": []})
    fs = eng.findings(a)
    assert [f.verdict for f in fs] == ["error", "info"]
    assert "KeyError" in fs[0].summary
    eng.close()


def test_token_bucket_spaces_calls_and_cache_expires() -> None:
    clock = [0.0]
    b = TokenBucket(rate_per_s=10, burst=2, monotonic=lambda: clock[0])
    assert b.acquire(1) and b.acquire(1)
    assert not b.acquire(0.05), "bucket empty, next token in 0.1 s, deadline sooner"
    c = TtlCache(10, 2, monotonic=lambda: clock[0])
    f = Finding("x", "s", "", "info", {}, "", NOW)
    c.put("a", f)
    c.put("b", f)
    c.put("c", f)
    assert c.get("a") is None and c.get("c") is f, "LRU bound"
    clock[0] = 11
    assert c.get("c") is None, "expired"
