"""Storms through the broker: one grouped issue (task list) instead of hundreds; items ticked as
alerts resolve; the grouped issue closes when all are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from devtools.github_fake import FakeGitHub
from services.ticket.cli import register
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


def test_a_group_beyond_its_page_limit_counts_the_rest_lists_them_on_request_and_still_closes(
    kafka_bootstrap: str, prefix: str, fake: FakeGitHub
) -> None:
    create_topics(kafka_bootstrap, prefix)
    h = Harness(kafka_bootstrap, prefix, fake)
    alerts = [enriched(i, dec=decision(group_key="standard-enabled")) for i in range(N)]
    with h.running(ticket={**POLICY, "storm_max_pages": 2}):
        for ea in alerts:
            h.send(ea)

        def counted() -> bool:
            singles, pages = _split(fake)
            bodies = " ".join(i.body for i in fake.issues(REPO))
            over = re.search(r"and (\d+) more alerts of this kind", bodies)
            listed = sum(len(p) for p in pages.values())
            return len(pages) == 2 and over is not None and len(singles) + listed + int(over[1]) == N

        wait_for(counted, 60, "every alert listed or counted")
        singles, pages = _split(fake)
        assert [len(p) for p in pages.values()] == [50, 50]
        last = fake.repo(REPO).issues[max(pages)]
        assert last.title.startswith(f"[storm] {N - len(singles) - 50} alerts: standard-enabled (part 2)")

        env = {"ALERTLINE_KAFKA__BOOTSTRAP": kafka_bootstrap, "ALERTLINE_KAFKA__TOPIC_PREFIX": prefix}
        cli = click.Group()
        register(cli)
        r = CliRunner().invoke(cli, ["tickets", "members", "standard-enabled"], env=env)
        assert r.exit_code == 0, r.output
        listed = {json.loads(line)["identity"] for line in r.stdout.splitlines() if line.startswith("{")}
        assert listed == {ea["alert"]["identity"] for ea in alerts} - set(singles), "every grouped alert, counted too"

        for ea in alerts:
            h.send(revision(ea, "r2", status="resolved"))
        wait_for(lambda: all(i.state == "closed" for i in fake.issues(REPO)), 60, "every issue and page closed")
        assert "(0 resolved)" not in fake.repo(REPO).issues[max(pages)].body
        h.drain()
