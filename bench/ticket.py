"""Ticket service figures, on one core, no Kafka:

1. rendering: issue bodies per second (a typical alert, and one with a 2 MB description);
2. the handler against the local GitHub fake (PyGithub, real HTTP on 127.0.0.1), limiter wide
   open: new alerts -> issues per second, and recurrences (read + edit) per second.

    .venv/bin/python bench/ticket.py [--alerts 500]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.stage import Context, PartitionState, Record
from alertline.testing.samples import alert
from devtools.github_fake import FakeGitHub
from services.ticket.adapters.github import GitHubMetrics, GitHubTracker, make_github
from services.ticket.cli import preview_alert
from services.ticket.domain import Policy
from services.ticket.limiter import WriteLimiter
from services.ticket.service import TicketService, Topics
from tests.unit.ticket.factories import enriched, revision


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({n} in {seconds:.2f}s)"


def bench_render(n: int) -> None:
    typical = [alert(i) for i in range(n)]
    t0 = time.perf_counter()
    for a in typical:
        preview_alert(a)
    print(f"render, typical alert:          {rate(n, time.perf_counter() - t0)}")
    big = alert(1, description="x <y> *z* @w #1 " * 125_000)
    m = max(1, n // 50)
    t0 = time.perf_counter()
    for _ in range(m):
        body = preview_alert(big)["body"]
    print(f"render, 2 MB description:       {rate(m, time.perf_counter() - t0)}, body {len(body):,} chars")


def bench_handler(n: int) -> None:
    fake = FakeGitHub()
    fake.start()
    codec = SingleObjectCodec()
    topics = Topics("b.enriched.v1", "b.tickets.events.v1", "b.tickets.actions.v1")
    reg = CollectorRegistry()
    tracker = GitHubTracker(make_github(fake.url, fake.bot.token), "alertline-bot", WriteLimiter([(10**9, 60)]),
                            GitHubMetrics(reg))  # fmt: skip
    svc = TicketService(Policy(default_repository="acme/security-alerts", storm_enabled=False), tracker, codec,
                        topics, reg)  # fmt: skip
    ctx = Context(now=lambda: datetime.now(UTC), state=PartitionState(), partition=0)
    first = [enriched(i) for i in range(n)]

    def run(items: list[dict[str, object]], base: int) -> float:
        t0 = time.perf_counter()
        for i, ea in enumerate(items):
            rec = Record(topics.enriched, 0, base + i, ea["alert"]["identity"].encode(),  # type: ignore[index]
                         codec.encode("enrichment", ea), {}, int(time.time() * 1000))  # fmt: skip
            list(svc.handle(rec, ctx))
            ctx.state.end_record(ok=True)
        ctx.state.commit_batch()
        return time.perf_counter() - t0

    warm = enriched(10**6, identity="id-warm")  # the first create lists the repository once
    list(svc.handle(Record(topics.enriched, 0, 0, b"id-warm", codec.encode("enrichment", warm), {},
                           int(time.time() * 1000)), ctx))  # fmt: skip
    ctx.state.end_record(ok=True)
    print(f"handler, new alert -> issue:    {rate(n, run(first, 1))}")
    again = [revision(ea, "r2") for ea in first]
    print(f"handler, recurrence (GET+PATCH+comment): {rate(n, run(again, n + 1))}")
    requests = sum(v for k, v in fake.counters.items() if k.startswith("request:"))
    print(f"GitHub writes: {fake.writes()}, requests: {requests}")
    fake.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=500)
    args = ap.parse_args()
    bench_render(args.alerts)
    bench_handler(args.alerts)


if __name__ == "__main__":
    main()
