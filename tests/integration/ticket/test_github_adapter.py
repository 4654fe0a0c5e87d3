"""The GitHub adapter through PyGithub against the local fake: limits, faults, no blind retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from github import Auth, Github
from prometheus_client import CollectorRegistry

from alertline.errors import Transient
from devtools.github_fake import SECONDARY_MESSAGE, FakeGitHub
from services.ticket.adapters.github import GitHubMetrics, GitHubRejected, GitHubTracker, make_github
from services.ticket.domain import AddComment, CreateIssue, UpdateIssue
from services.ticket.limiter import WriteLimiter
from services.ticket.text import Marker, comment_marker

REPO = "acme/security-alerts"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def tracker(fake: FakeGitHub, timeout: int = 15, limits: list[tuple[int, float]] | None = None) -> GitHubTracker:
    gh = make_github(fake.url, fake.bot.token, timeout=timeout)
    reg = CollectorRegistry()
    t = GitHubTracker(gh, "alertline-bot", WriteLimiter(limits or [(80, 60), (500, 3600)]), GitHubMetrics(reg))
    t.registry = reg  # type: ignore[attr-defined]
    return t


def create_action(identity: str = "id-1", assignees: tuple[str, ...] = ()) -> CreateIssue:
    m = Marker(identity=identity)
    return CreateIssue(REPO, m, f"title {identity}", f"{m.render()}\nbody", ("alertline", "severity:high"), assignees)


def human(fake: FakeGitHub) -> Github:
    return Github(auth=Auth.Token(fake.human.token), base_url=fake.url, retry=None, seconds_between_requests=None)


def since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=5)


def test_created_issue_is_found_again_by_its_marker(fake: FakeGitHub) -> None:
    t = tracker(fake)
    ref = t.create(create_action("id-1"))
    assert ref.number == 1
    fresh = tracker(fake)  # a new process: nothing in memory
    found = fresh.find(REPO, Marker(identity="id-1"), since())
    assert found is not None and found.number == 1
    assert fresh.find(REPO, Marker(identity="id-2"), since()) is None
    assert fresh.find(REPO, Marker(identity="id-1", generation=1), since()) is None


def test_a_5xx_that_hid_a_success_is_adopted_not_duplicated(fake: FakeGitHub) -> None:
    t = tracker(fake)
    t.find(REPO, Marker(identity="id-1"), since())  # index warm and complete
    fake.inject("POST", r"/issues$", status=502, after_write=True)
    with pytest.raises(Transient):
        t.create(create_action("id-1"))
    assert fake.counters["request:POST"] == 1, "PyGithub must not retry the POST itself"
    assert len(fake.issues(REPO)) == 1, "GitHub did create it"
    found = t.find(REPO, Marker(identity="id-1"), since())
    assert found is not None and found.number == 1, "the ambiguous create made the index re-list"


def test_a_plain_5xx_on_create_is_retried_by_nobody_but_us(fake: FakeGitHub) -> None:
    t = tracker(fake)
    fake.inject("POST", r"/issues$", status=503)
    with pytest.raises(Transient) as exc:
        t.create(create_action())
    assert exc.value.retry_after and exc.value.retry_after >= 1
    assert fake.counters["request:POST"] == 1 and fake.issues(REPO) == []


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_with_retry_after_becomes_back_pressure(fake: FakeGitHub, status: int) -> None:
    t = tracker(fake)
    fake.inject("POST", r"/issues$", status=status, kind="secondary", retry_after=37)
    with pytest.raises(Transient) as exc:
        t.create(create_action())
    assert exc.value.retry_after == 37
    assert 36 < t.limiter.wait_time() <= 37, "every later write waits too"
    with pytest.raises(Transient):
        t.preflight(1)
    assert fake.counters["rejected:secondary"] == 1 and fake.counters["request:POST"] == 1


def test_secondary_limit_without_retry_after_waits_a_minute(fake: FakeGitHub) -> None:
    t = tracker(fake)
    fake.inject("POST", r"/issues$", status=403, message=SECONDARY_MESSAGE.format(rid="X"))
    with pytest.raises(Transient) as exc:
        t.create(create_action())
    assert exc.value.retry_after == 60


def test_primary_exhaustion_waits_for_the_reset_and_stops_writing(fake: FakeGitHub) -> None:
    t = tracker(fake)
    t.create(create_action("id-1"))
    fake.set_primary(remaining=0)
    with pytest.raises(Transient) as exc:
        t.get(REPO, 1)
    assert exc.value.retry_after is not None and 3000 < exc.value.retry_after <= 3602
    posts = fake.counters["request:POST"]
    with pytest.raises(Transient):
        t.create(create_action("id-2"))
    assert fake.counters["request:POST"] == posts, "no write is even attempted while the quota is gone"


def test_our_limiter_turns_a_burst_into_waits_before_github_has_to(fake: FakeGitHub) -> None:
    t = tracker(fake, limits=[(3, 60)])
    for i in range(3):
        t.create(create_action(f"id-{i}"))
    with pytest.raises(Transient) as exc:
        t.create(create_action("id-9"))
    assert 59 < (exc.value.retry_after or 0) <= 60
    assert fake.writes() == 3
    text = t.registry.get_sample_value("alertline_github_writes_available", {"window": "60s"})  # type: ignore[attr-defined]
    assert text == 0
    assert t.registry.get_sample_value("alertline_github_rate_remaining") is not None  # type: ignore[attr-defined]
    assert t.registry.get_sample_value("alertline_github_wait_seconds_total", {"reason": "limiter"}) > 59  # type: ignore[attr-defined]


def test_timeouts_are_transient_and_make_creates_ambiguous(fake: FakeGitHub) -> None:
    t = tracker(fake, timeout=1)
    t.find(REPO, Marker(identity="id-1"), since())
    fake.inject("POST", r"/issues$", delay_s=2.5, kind="latency")
    with pytest.raises(Transient):
        t.create(create_action("id-1"))
    time.sleep(2)  # the fake finishes the write after we gave up
    assert t.find(REPO, Marker(identity="id-1"), since()) is not None


def test_rejections_github_will_repeat_are_bad_input(fake: FakeGitHub) -> None:
    t = tracker(fake)
    with pytest.raises(GitHubRejected, match="404"):
        t.create(CreateIssue("acme/nope", Marker(identity="x"), "t", "b", ()))
    with pytest.raises(GitHubRejected, match="422"):
        t.create(CreateIssue(REPO, Marker(identity="x"), "", "b", ()))


def test_an_assignee_github_refuses_does_not_cost_the_issue(fake: FakeGitHub) -> None:
    t = tracker(fake)
    ref = t.create(create_action("id-1", assignees=("nobody-here",)))
    assert fake.issues(REPO)[0].number == ref.number and fake.issues(REPO)[0].assignees == []
    t.create(create_action("id-2", assignees=("octo-responder",)))
    assert fake.issues(REPO)[1].assignees == ["octo-responder"]


def test_label_changes_never_drop_a_label_a_human_added(fake: FakeGitHub) -> None:
    t = tracker(fake)
    t.create(create_action("id-1"))
    human(fake).get_repo(REPO).get_issue(1).add_to_labels("triage:mine")
    cur = t.get(REPO, 1)
    after = t.update(UpdateIssue(REPO, 1, add_labels=("alertline:resolved-at-source",),
                                 remove_labels=("severity:high",)), cur)  # fmt: skip
    assert after is not None
    assert set(after.labels) == {"alertline", "triage:mine", "alertline:resolved-at-source"}
    assert t.update(UpdateIssue(REPO, 1, add_labels=("alertline:resolved-at-source",)), after) is None, "no-op"


def test_updates_write_only_what_differs(fake: FakeGitHub) -> None:
    t = tracker(fake)
    t.create(create_action("id-1"))
    cur = t.get(REPO, 1)
    writes = fake.writes()
    assert t.update(UpdateIssue(REPO, 1, state="open"), cur) is None
    after = t.update(UpdateIssue(REPO, 1, state="closed", state_reason="not_planned"), cur)
    assert after is not None and (after.state, after.state_reason) == ("closed", "not_planned")
    assert fake.writes() == writes + 1
    assert t.get(REPO, 999) is None


def test_comment_keys_are_found_only_on_our_own_comments(fake: FakeGitHub) -> None:
    t = tracker(fake)
    t.create(create_action("id-1"))
    human(fake).get_repo(REPO).get_issue(1).create_comment("copy-paste\n\n" + comment_marker("k1"))
    assert not t.has_comment(REPO, 1, "k1", since()), "a human's copy of our marker is not our comment"
    t.comment(AddComment(REPO, 1, "k1", "hello\n\n" + comment_marker("k1")))
    assert t.has_comment(REPO, 1, "k1", since())
    assert not t.has_comment(REPO, 1, "k2", since())


def test_a_5xx_on_a_comment_makes_the_issue_suspect_until_checked(fake: FakeGitHub) -> None:
    t = tracker(fake)
    t.create(create_action("id-1"))
    fake.inject("POST", r"/comments$", status=500, after_write=True)
    with pytest.raises(Transient):
        t.comment(AddComment(REPO, 1, "k1", "x\n\n" + comment_marker("k1")))
    assert t.suspect(REPO, 1)
    assert t.has_comment(REPO, 1, "k1", since())
    assert not t.suspect(REPO, 1)


def test_listing_pages_through_link_headers(fake: FakeGitHub) -> None:
    t = tracker(fake)
    gh = make_github(fake.url, fake.bot.token, per_page=7)
    small = GitHubTracker(gh, "alertline-bot", WriteLimiter([(500, 60)]), GitHubMetrics(CollectorRegistry()))
    for i in range(30):
        t.create(create_action(f"id-{i}"))
    human(fake).get_repo(REPO).create_issue("a human's issue", body=create_action("id-0").body)
    listed = list(small.list_ours(REPO, since=None))
    assert len(listed) == 30, "pages followed, the human's look-alike skipped"
    assert fake.counters["request:GET"] >= 5
