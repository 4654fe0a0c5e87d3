"""The handler's effects are safe to repeat: retried records, replayed batches and interrupted
ticks never duplicate a comment, and never take our own close for a human's. (GitHub fake, no
Kafka: the runtime's part — discarding a failed record's state — is done by hand here.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.clock import FixedClock
from alertline.errors import Transient
from alertline.stage import Context, PartitionState, Record
from devtools.github_fake import FakeGitHub
from services.ticket.adapters.github import GitHubMetrics, GitHubTracker, make_github
from services.ticket.domain import Policy
from services.ticket.limiter import WriteLimiter
from services.ticket.service import TicketService, Topics
from tests.unit.ticket.factories import enriched, revision

REPO = "acme/security-alerts"
TOPICS = Topics("p.enriched.v1", "p.tickets.events.v1", "p.tickets.actions.v1")
codec = SingleObjectCodec()


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def service(fake: FakeGitHub, limits: list[tuple[int, float]] | None = None) -> TicketService:
    gh = make_github(fake.url, fake.bot.token)
    reg = CollectorRegistry()
    tracker = GitHubTracker(gh, "alertline-bot", WriteLimiter(limits or [(80, 60)]), GitHubMetrics(reg))
    policy = Policy(default_repository=REPO, storm_enabled=False, inactivity={"guardduty": timedelta(days=1)})
    return TicketService(policy, tracker, codec, TOPICS, reg)


def record(ea: dict[str, Any], offset: int, at: datetime) -> Record:
    return Record(TOPICS.enriched, 0, offset, ea["alert"]["identity"].encode(), codec.encode("enrichment", ea), {},
                  int(at.timestamp() * 1000))  # fmt: skip


def ok(svc: TicketService, rec: Record, ctx: Context) -> None:
    list(svc.handle(rec, ctx))
    ctx.state.end_record(ok=True)
    ctx.state.commit_batch()


def now() -> datetime:
    return datetime.now(UTC)


def test_a_record_retried_after_a_failure_midway_repeats_no_comment(fake: FakeGitHub) -> None:
    svc = service(fake)
    ctx = Context(now=now, state=PartitionState(), partition=0)
    ea = enriched(1)
    ok(svc, record(ea, 0, now()), ctx)
    fake.inject("PATCH", r"/issues/1$", status=502)
    resolved = record(revision(ea, "r2", status="resolved"), 1, now())
    with pytest.raises(Transient):
        list(svc.handle(resolved, ctx))
    ctx.state.end_record(ok=False)  # the runtime drops the failed record's state and retries it
    assert len(fake.issues(REPO)[0].comments) == 1 and fake.issues(REPO)[0].state == "open"
    ok(svc, resolved, ctx)
    issue = fake.issues(REPO)[0]
    assert issue.state == "closed" and len(issue.comments) == 1
    assert ctx.state.get("id-00000001")["close_reason"] == "resolved"


def test_a_batch_replayed_after_its_commit_failed_changes_nothing(fake: FakeGitHub) -> None:
    ea = enriched(1)
    first = service(fake)
    committed = PartitionState()
    ok(first, record(ea, 0, now()), Context(now=now, state=committed, partition=0))
    resolved = record(revision(ea, "r2", status="resolved"), 1, now())
    ctx = Context(now=now, state=committed, partition=0)
    list(first.handle(resolved, ctx))  # every GitHub write succeeded...
    ctx.state.end_record(ok=True)
    ctx.state.abort_batch()  # ...but the Kafka transaction did not: the state never saw them
    writes = fake.writes()
    # A new process (no memory of what it did) gets the partition and the same record.
    restarted = PartitionState(dict(committed.committed))
    second = service(fake)
    ok(second, resolved, Context(now=now, state=restarted, partition=0))
    assert fake.writes() == writes, "nothing written twice"
    issue = fake.issues(REPO)[0]
    assert issue.state == "closed" and len(issue.comments) == 1
    st = restarted.get("id-00000001")
    assert st["state"] == "closed" and st["close_reason"] == "resolved", "our own close is not a human's"


def test_tick_stops_at_back_pressure_and_keeps_what_it_finished(fake: FakeGitHub) -> None:
    svc = service(fake, limits=[(6, 600)])
    clock = FixedClock(datetime.now(UTC))
    ctx = Context(now=clock, state=PartitionState(), partition=0)
    for i in range(3):
        ok(svc, record(enriched(i, product="guardduty"), i, clock()), ctx)
    assert fake.writes() == 3
    clock.advance(2 * 86400)
    outs = list(svc.tick(ctx))  # 3 writes left: one issue closes (comment + close), the next must wait
    ctx.state.end_record(ok=True)
    ctx.state.commit_batch()
    assert outs == []
    closed = [k for k in ("id-00000000", "id-00000001", "id-00000002") if ctx.state.get(k)["state"] == "closed"]
    assert len(closed) == 1 and sum(i.state == "closed" for i in fake.issues(REPO)) == 1
    assert fake.writes() == 5
