"""A 2,000-alert burst: our limiter keeps GitHub's secondary limits, the partitions wait instead
of dropping, and every alert gets exactly one issue. Windows are shortened (80 per 0.4 s, 500 per
4 s instead of per minute and per hour) so the test runs in seconds; the arithmetic is the same."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from devtools.github_fake import FakeGitHub
from services.ticket.text import parse_marker
from tests.integration.ticket.harness import REPO, Harness, codec, create_topics, enriched, wait_for

pytestmark = pytest.mark.kafka
N = 2000
PER_MIN, MIN_S = 80, 0.4
PER_HOUR, HOUR_S = 500, 4.0


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def test_two_thousand_alert_burst_stays_within_limits_and_loses_nothing(
    kafka_bootstrap: str, prefix: str, fake: FakeGitHub
) -> None:
    create_topics(kafka_bootstrap, prefix)
    h = Harness(kafka_bootstrap, prefix, fake)
    # GitHub's side enforces the same limits (a little looser only for request jitter): any
    # write our limiter lets through too early is refused with a 403 and counted.
    fake.set_secondary_limits([(PER_MIN, MIN_S * 0.9), (PER_HOUR, HOUR_S * 0.95)])
    for i in range(N):
        ea = enriched(i, dec=None)
        h.producer.produce(h.enriched_topic, codec.encode("enrichment", ea), ea["alert"]["identity"].encode())
        if i % 500 == 0:
            h.producer.poll(0)
    h.producer.flush(30)

    t0 = time.monotonic()
    with h.running(
        github={"writes_per_minute": PER_MIN, "minute_window_s": MIN_S, "writes_per_hour": PER_HOUR,
                "hour_window_s": HOUR_S},
        runtime={"batch_size": 500},
    ) as app:  # fmt: skip
        wait_for(lambda: fake.counters["issues_created"] >= N, 180, f"{N} issues")
        elapsed = time.monotonic() - t0
        h.drain(60)
        reg = app.runner.registry
        paused = reg.get_sample_value("alertline_retries_total", {"service": "ticket", "reason": "handler"})
        throttled = reg.get_sample_value("alertline_github_throttled_total", {"reason": "limiter"})
        waited = reg.get_sample_value("alertline_github_wait_seconds_total", {"reason": "limiter"})
        available = reg.get_sample_value("alertline_github_writes_available", {"window": f"{HOUR_S:g}s"})

    issues = fake.issues(REPO)
    per_identity = Counter(parse_marker(i.body).identity for i in issues)  # type: ignore[union-attr]
    assert len(per_identity) == N, f"lost {N - len(per_identity)} alerts"
    assert max(per_identity.values()) == 1, "a duplicate issue"
    assert fake.counters["rejected:secondary"] == 0, "GitHub had to refuse writes: our limiter let too many through"
    assert fake.max_writes_in_window(MIN_S * 0.9) <= PER_MIN
    assert fake.max_writes_in_window(HOUR_S * 0.95) <= PER_HOUR
    # It could not have been faster than the hourly window allows, and it waited rather than dropped.
    assert elapsed >= (N / PER_HOUR - 1) * HOUR_S
    assert paused and paused > 10 and throttled and throttled > 10 and waited and waited > 1
    assert available is not None
    states = h.states()
    assert len(states) == N and all(s["issue_number"] for s in states.values())
    print(f"\n{N} issues in {elapsed:.1f}s; partitions paused {paused:.0f} times, asked to wait {waited:.1f}s")
