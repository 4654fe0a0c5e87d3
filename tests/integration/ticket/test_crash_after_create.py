"""No duplicate issue, ever: the process dies after GitHub created the issue and before the
state was committed; the restarted service finds the issue by its marker and adopts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from devtools.github_fake import FakeGitHub
from services.ticket.adapters.github import CRASH_ENV
from services.ticket.text import parse_marker
from tests.conftest import REPO as ROOT
from tests.integration.ticket.harness import REPO, Harness, create_topics, enriched, revision, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def spawn(h: Harness, fake: FakeGitHub, crash: bool) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTLINE_")} | {
        "PYTHONPATH": str(ROOT),
        "ALERTLINE_KAFKA__BOOTSTRAP": h.bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": h.prefix,
        "ALERTLINE_KAFKA__TRANSACTION_TIMEOUT_MS": "10000",
        "ALERTLINE_RUNTIME__INSTANCE_ID": "crashy",
        "ALERTLINE_RUNTIME__HTTP_PORT": "0",
        "ALERTLINE_RUNTIME__HTTP_HOST": "127.0.0.1",
        "ALERTLINE_RUNTIME__SESSION_TIMEOUT_MS": "6000",
        "ALERTLINE_RUNTIME__LOG_LEVEL": "WARNING",
        "ALERTLINE_GITHUB__API_URL": fake.url,
        "ALERTLINE_GITHUB__TOKEN": fake.bot.token,
        "ALERTLINE_GITHUB__REPOSITORY": REPO,
        "ALERTLINE_TICKET__STORM_ENABLED": "false",
        "ALERTLINE_TICKET__RECONCILE_INTERVAL_S": "0",
        "ALERTLINE_TICKET__ADOPT_MARGIN_S": "60",
        "ALERTLINE_TICKET__BODY_REFRESH_S": "0",  # every recurrence shows in the body at once
    }
    if crash:
        env[CRASH_ENV] = "1"
    return subprocess.Popen([sys.executable, "-m", "alertline.cli", "run", "ticket"], env=env, cwd=ROOT)


def test_killed_after_github_created_the_issue_restart_adopts_it(
    kafka_bootstrap: str, prefix: str, fake: FakeGitHub
) -> None:
    create_topics(kafka_bootstrap, prefix)
    h = Harness(kafka_bootstrap, prefix, fake)
    alerts = [enriched(i) for i in range(3)]
    for ea in alerts:
        h.send(ea)

    first = spawn(h, fake, crash=True)
    try:
        assert first.wait(timeout=90) == 70, "the test hook must kill the process right after the create"
    finally:
        if first.poll() is None:
            first.kill()
    assert len(h.issues()) == 1, "GitHub created exactly one issue before the crash"
    assert not any(k.startswith("id-") for k in h.states()), "and no state was committed"

    second = spawn(h, fake, crash=False)
    try:
        wait_for(lambda: len(h.states()) == 3, 90, "state for all three alerts")
        # A recurrence goes to the adopted issue, not a new one.
        for ea in alerts:
            h.send(revision(ea, "r2"))
        wait_for(lambda: all("seen **2** times" in (i.body or "") for i in h.issues()), 60, "recurrences")
        h.drain(60)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0

    issues = h.issues()
    per_identity = Counter(parse_marker(i.body).identity for i in issues)  # type: ignore[union-attr]
    assert per_identity == Counter({ea["alert"]["identity"]: 1 for ea in alerts}), per_identity
    assert fake.counters["write:create_issue"] == 3, "the crashed create was adopted, not repeated"
    states = h.states()
    assert sorted(s["issue_number"] for s in states.values()) == sorted(i.number for i in issues)
