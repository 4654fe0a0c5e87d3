"""`alertline tickets rebuild`: after the state topic is wiped, the state comes back from the
issues' markers, and the service carries on with the same issues (no duplicates, no repeats)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from alertline.kafka.admin import topic_configs
from devtools.github_fake import FakeGitHub
from services.ticket.cli import run_rebuild
from tests.integration.ticket.harness import (
    REPO,
    Harness,
    create_topics,
    decision,
    enriched,
    enrichment,
    revision,
    wait_for,
)

pytestmark = pytest.mark.kafka
POLICY = {"storm_enabled": True, "storm_key_threshold": 1, "storm_partition_threshold": 100, "flush_quiet_s": 0.3,
          "flush_max_delay_s": 1}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def wipe(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([name], operation_timeout=30)[name].result()
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.create_topics([NewTopic(name, 3, 1, config=topic_configs(True, 0))])[name].result()
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_rebuild_after_the_state_topic_is_wiped(
    kafka_bootstrap: str, prefix: str, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_topics(kafka_bootstrap, prefix)
    h = Harness(kafka_bootstrap, prefix, fake)
    open_one = enriched(1, enrichments=[enrichment("198.51.100.7", "fp-1")], control_id="A.1", title="alpha")
    closed_one = enriched(2, control_id="B.1", title="beta")
    storm = [enriched(10 + i, dec=decision(group_key="rollout")) for i in range(8)]
    with h.running(ticket=POLICY):
        h.send(open_one)
        h.send(revision(open_one, "r2"))
        h.send(closed_one)
        h.send(revision(closed_one, "r2", status="resolved"))
        for ea in storm:
            h.send(ea)
        wait_for(lambda: any(i.title.startswith("[storm]") for i in h.issues()), 30, "the storm page")
        h.drain()
        time.sleep(1.5)  # let the page's last flush happen
        h.drain()
        before = h.states()
    creates = fake.counters["write:create_issue"]

    wipe(kafka_bootstrap, h.state_topic)
    assert h.states() == {}
    for k, v in {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka_bootstrap, "ALERTLINE_KAFKA__TOPIC_PREFIX": prefix,
        "ALERTLINE_GITHUB__API_URL": fake.url, "ALERTLINE_GITHUB__TOKEN": fake.bot.token,
        "ALERTLINE_GITHUB__REPOSITORY": REPO, "ALERTLINE_RUNTIME__INSTANCE_ID": "rebuild-test",
    }.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    lines: list[str] = []
    stats = run_rebuild(None, dry_run=False, echo=lines.append)
    pages = [k for k in before if k.startswith("group:")]
    identities = [k for k in before if before[k]["record_type"] == "identity" and before[k]["issue_number"]]
    grouped = [k for k in before if before[k]["state"] == "grouped"]
    assert stats["pages"] == len(pages) == 1 and stats["identities"] == len(identities)
    assert stats["grouped"] == len(grouped) > 0

    after = h.states()
    for k in identities:
        b, a = before[k], after[k]
        for f in ("issue_number", "state", "generation", "occurrences", "last_revision", "alert_status",
                  "first_seen", "last_seen"):  # fmt: skip
            assert a[f] == b[f], (k, f, a[f], b[f])
        assert set(b["comment_fingerprints"]) <= set(a["comment_fingerprints"])
    (page,) = pages
    assert {m["identity"] for m in after[page]["members"]} == {m["identity"] for m in before[page]["members"]}
    assert after[page]["issue_number"] == before[page]["issue_number"]

    # The service picks up where it left: same issues, no repeated comment, no new issue.
    with h.running(ticket=POLICY):
        h.send(enriched(1, kind="recheck", enrichments=[enrichment("198.51.100.7", "fp-1")], control_id="A.1",
                        title="alpha"))  # fmt: skip
        h.send(revision(open_one, "r3", minutes=5))
        member = next(ea for ea in storm if ea["alert"]["identity"] in {m["identity"] for m in after[page]["members"]})
        h.send(revision(member, "r2", status="resolved"))
        n1 = before["id-00000001"]["issue_number"]
        wait_for(lambda: "seen **3** times" in fake.repo(REPO).issues[n1].body, 30, "the recurrence on the old issue")
        page_no = after[page]["issue_number"]
        wait_for(lambda: "- [x]" in fake.repo(REPO).issues[page_no].body, 30, "the tick on the old page")
        h.drain()
    assert fake.counters["write:create_issue"] == creates, "no issue was created again"
    comments = [c.body for c in fake.repo(REPO).issues[n1].comments]
    assert sum("New investigation results" in c for c in comments) == 0, "a known result is not commented again"
