"""Storms through the broker: one grouped issue (task list) instead of hundreds; items ticked as
alerts resolve; the grouped issue closes when all are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.github_fake import FakeGitHub
from services.ticket.text import parse_marker, parse_members
from tests.integration.ticket.harness import REPO, Harness, create_topics, decision, enriched, revision, wait_for

pytestmark = pytest.mark.kafka
N = 150
POLICY = {
    "storm_enabled": True, "storm_key_threshold": 2, "storm_partition_threshold": 5, "storm_window_s": 300,
    "flush_quiet_s": 0.5, "flush_max_delay_s": 2, "page_size": 50,
}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def _split(fake: FakeGitHub) -> tuple[dict[str, int], dict[int, dict[str, bool]]]:
    """identity -> individual issue number; page issue number -> {member identity: ticked}."""
    singles, pages = {}, {}
    for i in fake.issues(REPO):
        m = parse_marker(i.body)
        assert m is not None
        if m.group is not None:
            pages[i.number] = parse_members(i.body)
        else:
            singles[m.identity or ""] = i.number
    return singles, pages


def test_a_storm_becomes_grouped_issues_that_tick_and_close(kafka_bootstrap: str, prefix: str,
                                                            fake: FakeGitHub) -> None:  # fmt: skip
    create_topics(kafka_bootstrap, prefix)
    h = Harness(kafka_bootstrap, prefix, fake)
    alerts = [enriched(i, dec=decision(group_key="guardduty-enabled-org-wide")) for i in range(N)]
    ids = {ea["alert"]["identity"] for ea in alerts}
    with h.running(ticket=POLICY):
        for ea in alerts:
            h.send(ea)

        def grouped_all() -> bool:
            singles, pages = _split(fake)
            members = [m for p in pages.values() for m in p]
            return len(singles) + len(members) == N

        wait_for(grouped_all, 60, "every alert on an issue or a page")
        singles, pages = _split(fake)
        assert len(singles) <= 3 * POLICY["storm_key_threshold"], "a few individual issues before the storm is seen"
        assert len(pages) == 3, "pages of at most 50"
        members = [m for p in pages.values() for m in p]
        assert sorted(members + list(singles)) == sorted(ids), "every alert exactly once"
        page_issue = fake.repo(REPO).issues[min(pages)]
        assert page_issue.title.startswith("[storm] 50 alerts: guardduty-enabled-org-wide")
        assert "alertline:storm" in page_issue.labels
        writes_before = fake.writes()

        for ea in alerts:
            h.send(revision(ea, "r2", status="resolved"))

        def all_closed() -> bool:
            return all(i.state == "closed" for i in fake.issues(REPO))

        wait_for(all_closed, 60, "every issue and page closed")
        _, pages = _split(fake)
        assert all(all(p.values()) for p in pages.values()), "every item ticked"
        resolve_writes = fake.writes() - writes_before
        assert resolve_writes < 3 * len(singles) + 3 * 3, f"{resolve_writes} writes to resolve {N} alerts"
        h.drain()
    assert len(fake.issues(REPO)) == len(singles) + 3
