"""The main job end to end: four services as separate processes against the real broker,
moto and the fakes. Samples from every cloud go in through their real transports; GitHub
ends up with exactly the issues a responder should see."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from devtools import samples
from devtools.demo import feed_initial
from devtools.stack import REPO, Stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MARKER = re.compile(r"<!-- alertline:v1 identity=(\S+)")


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"), bootstrap=kafka_bootstrap, prefix=f"e2e{os.getpid()}.")
    s.start_infrastructure()
    s.start_services()
    try:
        yield s
    finally:
        codes = s.stop()
        assert all(c in (0, None) for c in codes.values()), f"SIGTERM must drain cleanly: {codes}"


def identities(stack: Stack) -> Counter[str]:
    return Counter(m[1] for i in stack.issues() for m in [MARKER.search(i.body or "")] if m)


def by_source(stack: Stack, label: str):  # type: ignore[no-untyped-def]
    found = [i for i in stack.issues() if label in i.labels]
    assert len(found) >= 1, f"no issue labelled {label}: {[i.labels for i in stack.issues()]}"
    return found


def everything_said(issue) -> str:  # type: ignore[no-untyped-def]
    return "\n".join([issue.body or "", *(c.body for c in issue.comments)])


def test_every_sample_from_every_cloud_becomes_its_issue(stack: Stack) -> None:
    expected = feed_initial(stack)
    stack.wait_for(lambda: len(stack.issues()) >= expected, 180, "one issue per sample")
    stack.wait_for(stack.settled, 120, "the pipeline to settle")
    assert len(stack.issues()) == expected
    assert set(identities(stack).values()) == {1}, "exactly one issue per identity"
    assert len(by_source(stack, "source:aws/securityhub")) == 1
    assert len(by_source(stack, "source:aws/guardduty")) == 2
    assert len(by_source(stack, "source:gcp/scc")) == 1
    assert len(by_source(stack, "source:azure/defender")) == 1


def test_investigation_results_reach_the_issues(stack: Stack) -> None:
    def probed() -> bool:
        return any("Acme admin console" in everything_said(i) for i in stack.issues())

    stack.wait_for(probed, 120, "the exposed page to be probed")
    (tor,) = [i for i in stack.issues() if "Tor exit" in i.title]
    assert samples.TOR_IP in everything_said(tor)
    assert re.search(r"was a Tor exit", everything_said(tor)), everything_said(tor)
    page = next(i for i in stack.issues() if "Acme admin console" in everything_said(i))
    assert "screenshot" in everything_said(page).lower()
    shots = stack.s3.list_objects_v2(Bucket=stack.screenshots).get("Contents", [])
    assert shots, "the exposed page was photographed into S3"
    png = stack.s3.get_object(Bucket=stack.screenshots, Key=shots[0]["Key"])["Body"].read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_resolved_at_the_source_closes_and_a_recurrence_reopens(stack: Stack) -> None:
    (scc,) = by_source(stack, "source:gcp/scc")
    stack.publish_pubsub(samples.scc_open_firewall("INACTIVE", minutes_later=30))
    stack.wait_for(lambda: _state(stack, scc.number) == "closed", 120, "the resolved finding's issue to close")
    assert _issue(stack, scc.number).state_reason == "completed"
    stack.publish_pubsub(samples.scc_open_firewall("ACTIVE", minutes_later=60))
    stack.wait_for(lambda: _state(stack, scc.number) == "open", 120, "the recurrence to reopen the issue")
    assert len(by_source(stack, "source:gcp/scc")) == 1, "reopened, not a second issue"


def _issue(stack: Stack, number: int):  # type: ignore[no-untyped-def]
    return next(i for i in stack.issues() if i.number == number)


def _state(stack: Stack, number: int) -> str:
    return str(_issue(stack, number).state)


def test_archive_replay_after_losing_all_state_creates_no_duplicate_issue(stack: Stack) -> None:
    stack.wait_for(stack.settled, 120, "the pipeline to settle")
    before = identities(stack)
    for s in ("evaluate", "ticket"):
        assert stack.procs[s].stop() == 0
    stack.wipe_state("evaluate.state", "tickets.state")
    for s in ("evaluate", "ticket"):
        stack.procs[s].start()
    env = stack.env("ingest") | {"ALERTLINE_RUNTIME__INSTANCE_ID": "replay"}
    out = subprocess.run([sys.executable, "-m", "alertline.cli", "replay", "archive", "--from", "now-1h"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"replayed (\d+) deliveries", out.stdout)
    replayed = int(re.search(r"replayed (\d+) deliveries", out.stdout)[1])  # type: ignore[index]
    assert replayed >= 7  # five samples, the resolution and the recurrence
    time.sleep(3)
    stack.wait_for(stack.settled, 180, "the replay to go through")
    after = identities(stack)
    assert after == before, "a replay without state must adopt the existing issues, never duplicate them"
    assert set(after.values()) == {1}
