"""The whole lifecycle through the real broker and the GitHub fake, driven by PyGithub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from github import Auth, Github

from alertline.testing.kafka import read_all
from devtools.github_fake import FakeGitHub
from services.ticket.text import parse_comment_marker, parse_marker
from tests.integration.ticket.harness import (
    REPO,
    Harness,
    codec,
    create_topics,
    decision,
    enriched,
    enrichment,
    revision,
    wait_for,
)

pytestmark = pytest.mark.kafka
SECRET = "hook-secret"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


@pytest.fixture
def h(kafka_bootstrap: str, prefix: str, fake: FakeGitHub) -> Harness:
    create_topics(kafka_bootstrap, prefix)
    return Harness(kafka_bootstrap, prefix, fake)


def human(fake: FakeGitHub) -> Github:
    return Github(auth=Auth.Token(fake.human.token), base_url=fake.url, retry=None, seconds_between_requests=None)


def ours(issue: object) -> list[str]:
    return [c.body for c in issue.comments if c.user.login == "alertline-bot"]  # type: ignore[attr-defined]


def test_issue_lifecycle_from_first_alert_to_reopen(h: Harness) -> None:
    ea = enriched(1, enrichments=[enrichment("203.0.113.9", "fp-a", summary="not listed")])
    with h.running(ticket={"body_refresh_s": 5}):
        h.send(ea)
        (issue,) = wait_for(lambda: h.issues() or None, 30, "the issue")
        assert issue.title.startswith("[high] EC2.19") and issue.state == "open"
        assert {"alertline", "severity:high", "priority:P2", "team:payments"} <= set(issue.labels)
        marker = parse_marker(issue.body)
        assert marker is not None and marker.identity == ea["alert"]["identity"]
        assert "203.0.113.9" in issue.body and "Investigation" in issue.body

        # Recurrences soon after: counted at once, no "seen again" comment (the new issue was
        # the notice), the body written by the tick once it is body_refresh_s old — one write
        # for both, not one each.
        writes = h.fake.writes()
        h.send(revision(ea, "r2"))
        h.send(revision(ea, "r3", minutes=2))
        wait_for(lambda: any(s["occurrences"] == 3 for s in h.states().values()), 30, "the recurrences counted")
        assert "seen **3** times" not in h.issues()[0].body and h.fake.writes() == writes
        wait_for(lambda: "seen **3** times" in h.issues()[0].body, 30, "the body refresh")
        assert h.fake.writes() == writes + 1 and ours(h.issues()[0]) == []

        # Enrichment: a change is commented once, a repeat never.
        changed = enriched(1, kind="recheck", enrichments=[enrichment("203.0.113.9", "fp-b", "malicious", "Tor exit")])
        h.send(changed)
        h.send(changed)
        wait_for(lambda: len(ours(h.issues()[0])) == 1, 30, "the enrichment comment")
        h.drain()
        assert len(ours(h.issues()[0])) == 1
        assert "Tor exit" in ours(h.issues()[0])[0] and "(changed)" in ours(h.issues()[0])[0]

        # Resolved at the source: comment, close as completed.
        h.send(revision(ea, "r4", status="resolved", minutes=3))
        wait_for(lambda: h.issues()[0].state == "closed", 30, "the close")
        assert h.issues()[0].state_reason == "completed"
        assert "resolved" in ours(h.issues()[0])[-1]

        # Back at the source: reopened with a comment, the same issue.
        h.send(revision(ea, "r5", minutes=4))
        wait_for(lambda: h.issues()[0].state == "open", 30, "the reopen")
        assert "Reopened" in ours(h.issues()[0])[-1]
        h.drain()
    assert len(h.issues()) == 1
    (st,) = h.states().values()
    assert st["issue_number"] == 1 and st["occurrences"] == 5 and st["state"] == "open"
    keys = [parse_comment_marker(b) for b in ours(h.issues()[0])]
    assert len({k[0] for k in keys if k}) == len(keys) == 3


def test_rule_without_auto_close_labels_the_issue_instead(h: Harness) -> None:
    ea = enriched(2, dec=decision(auto_close=False))
    with h.running():
        h.send(ea)
        wait_for(lambda: h.issues(), 30, "the issue")
        h.send(revision(ea, "r2", status="resolved"))
        wait_for(lambda: "alertline:resolved-at-source" in h.issues()[0].labels, 30, "the label")
        assert h.issues()[0].state == "open"


def test_humans_close_reopen_and_labels_are_respected(h: Harness, fake: FakeGitHub) -> None:
    a1, a2 = enriched(1), enriched(2)
    with h.running(github={"webhook_secret": SECRET}) as app:
        assert app.runner.http is not None
        fake.add_hook(f"http://127.0.0.1:{app.runner.http.port}/webhook/github", SECRET)
        h.send(a1)
        h.send(a2)
        wait_for(lambda: len(h.issues()) == 2, 30, "two issues")
        by_identity = {parse_marker(i.body).identity: i.number for i in h.issues()}  # type: ignore[union-attr]
        n1, n2 = by_identity["id-00000001"], by_identity["id-00000002"]
        repo = human(fake).get_repo(REPO)
        # A human closes #1 as not planned and removes one of our labels from #2.
        repo.get_issue(n1).edit(state="closed", state_reason="not_planned")
        repo.get_issue(n2).remove_from_labels("team:payments")
        fake.wait_deliveries()
        assert all(d.status == 202 for d in fake.deliveries if d.event == "issues"), [
            (d.event, d.status) for d in fake.deliveries
        ]
        h.drain()
        states = h.states()
        assert states["id-00000001"]["close_reason"] == "not_planned"
        assert "team:payments" in states["id-00000002"]["removed_labels"]
        # Recurrence: #1 stays closed (not planned); #2 goes on without the label coming back.
        h.send(revision(a1, "r2"))
        h.send(revision(a2, "r2", status="resolved"))
        wait_for(lambda: fake.repo(REPO).issues[n2].state == "closed", 30, "#2 closed")
        h.drain()
        assert fake.repo(REPO).issues[n1].state == "closed"
        assert "team:payments" not in fake.repo(REPO).issues[n2].labels
        # A human reopens #2, which we closed: we leave closing it to them from now on.
        repo.get_issue(n2).edit(state="open")
        fake.wait_deliveries()
        h.drain()
        h.send(revision(a2, "r3", minutes=2))
        h.send(revision(a2, "r4", status="resolved", minutes=3))
        wait_for(lambda: "alertline:resolved-at-source" in fake.repo(REPO).issues[n2].labels, 30, "label")
        assert fake.repo(REPO).issues[n2].state == "open"
        # Deliveries of our own changes were accepted and ignored (not published).
        own = [d for d in fake.deliveries if b'"login": "alertline-bot"' in d.payload.split(b'"sender"')[-1]]
        assert own and all(d.status == 202 for d in own)
        # Replaying a delivery is rejected.
        first = next(d for d in fake.deliveries if d.event == "issues" and d not in own)
        fake.redeliver(first.id)
        fake.wait_deliveries()
        assert first.status == 409 and first.attempts == 2


def test_a_human_change_without_webhook_is_seen_before_we_write(h: Harness, fake: FakeGitHub) -> None:
    ea = enriched(3)
    with h.running():
        h.send(ea)
        wait_for(lambda: h.issues(), 30, "the issue")
        h.drain()
        human(fake).get_repo(REPO).get_issue(1).edit(state="closed", state_reason="not_planned")
        time.sleep(1.1)  # GitHub timestamps have one-second resolution
        h.send(revision(ea, "r2"))
        h.drain()
    assert h.issues()[0].state == "closed" and ours(h.issues()[0]) == []
    assert h.states()["id-00000003"]["close_reason"] == "not_planned"


def test_reconcile_catches_up_with_changes_whose_webhook_was_lost(h: Harness, fake: FakeGitHub) -> None:
    ea = enriched(4)
    with h.running():
        h.send(ea)
        wait_for(lambda: h.issues(), 30, "the issue")
        h.drain()
    time.sleep(1.1)  # GitHub timestamps have one-second resolution
    human(fake).get_repo(REPO).get_issue(1).edit(state="closed")
    with h.running(ticket={"reconcile_interval_s": 0.5, "reconcile_lookback_s": 3600}):
        wait_for(lambda: h.states().get("id-00000004", {}).get("close_reason") == "human", 30, "reconciled state")


def test_inactive_guardduty_issue_is_closed_by_the_tick(h: Harness) -> None:
    ea = enriched(5, product="guardduty")
    with h.running(ticket={"inactivity_s": {"guardduty": 1.0}}):
        h.send(ea)
        wait_for(lambda: h.issues() and h.issues()[0].state == "closed", 30, "the inactivity close")
    issue = h.issues()[0]
    assert issue.state_reason == "completed" and "No new activity" in ours(issue)[-1]
    assert h.states()["id-00000005"]["close_reason"] == "inactive"


def test_undecodable_and_mis_keyed_input_goes_to_the_ticket_dlq(h: Harness) -> None:
    with h.running():
        h.send_raw(h.enriched_topic, b"\x00not avro", b"k1")
        h.send_raw(h.events_topic, b"{not avro either}", b"k2")
        h.send(enriched(6), key="not-the-identity")
        odd = {"kind": "gossip", "key": "k3", "repository": REPO, "action": "x", "observed_at": datetime.now(UTC)}
        h.send_raw(h.events_topic, codec.encode("ticket_event", odd), b"k3")
        h.send(enriched(7))
        wait_for(lambda: h.issues(), 30, "the good alert's issue")
        dead = wait_for(lambda: len(read_all(h.bootstrap, h.dlq_topic, timeout=5)) == 4 and
                        read_all(h.bootstrap, h.dlq_topic, timeout=5), 30, "four dead letters")  # fmt: skip
    by_key = {m.key(): m for m in dead}
    first = codec.decode("dead_letter", by_key[b"k1"].value())
    assert first["value"] == b"\x00not avro" and first["error_class"] == "alertline.errors.DecodeError"
    assert dict(by_key[b"k2"].headers())["alertline.source.topic"] == h.events_topic.encode()
    mis = dict(by_key[b"not-the-identity"].headers())
    assert b"is not the alert identity" in mis["alertline.error.message"]
    assert b"unknown ticket event kind 'gossip'" in dict(by_key[b"k3"].headers())["alertline.error.message"]
    assert len(h.issues()) == 1


def test_shadow_mode_writes_intended_actions_and_never_calls_github(h: Harness, fake: FakeGitHub) -> None:
    ea = enriched(8)
    with h.running(ticket={"shadow": True}, github={"token": None, "api_url": "http://127.0.0.1:9"}):
        h.send(ea)
        h.send(revision(ea, "r2", status="resolved"))
        acts = wait_for(lambda: len(read_all(h.bootstrap, h.actions_topic, timeout=5)) >= 3 and
                        read_all(h.bootstrap, h.actions_topic, timeout=5), 30, "shadow actions")  # fmt: skip
    import json

    kinds = [json.loads(m.value())["action"] for m in acts]
    assert kinds[:3] == ["create_issue", "comment", "update_issue"]
    assert json.loads(acts[0].value())["title"].startswith("[high]")
    assert fake.counters["request:POST"] == 0 and fake.issues(REPO) == []
    assert h.states()["id-00000008"]["state"] == "closed"
