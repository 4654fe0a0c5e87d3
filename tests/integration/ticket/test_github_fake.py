"""The GitHub fake itself: REST shapes PyGithub accepts, filters, headers, webhooks, control API, UI."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from github import Auth, Github, GithubException

from devtools.github_fake import FakeGitHub

REPO = "acme/security-alerts"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    f = FakeGitHub()
    f.start()
    yield f
    f.stop()


def gh(fake: FakeGitHub, token: str | None = None, per_page: int = 30) -> Github:
    return Github(auth=Auth.Token(token or fake.bot.token), base_url=fake.url, retry=None, per_page=per_page,
                  seconds_between_requests=None, seconds_between_writes=None)  # fmt: skip


def http(fake: FakeGitHub, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fake.url + path, data=data, method=method,
                                 headers={"Authorization": f"token {fake.bot.token}"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_listing_filters_like_github(fake: FakeGitHub) -> None:
    bot, human = gh(fake).get_repo(REPO), gh(fake, fake.human.token).get_repo(REPO)
    a = bot.create_issue("a", labels=["x", "y"])
    human.create_issue("h", labels=["x"])
    c = bot.create_issue("c")
    c.edit(state="closed")
    assert [i.title for i in bot.get_issues()] == ["h", "a"], "default: open, newest first"
    assert [i.title for i in bot.get_issues(state="all", creator="alertline-bot")] == ["c", "a"]
    assert [i.title for i in bot.get_issues(state="all", labels=["x", "y"])] == ["a"]
    assert [i.title for i in bot.get_issues(state="closed")] == ["c"]
    assert [i.title for i in bot.get_issues(state="all", sort="created", direction="asc")] == ["a", "h", "c"]
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert list(bot.get_issues(state="all", since=future)) == []
    time.sleep(1.05)  # GitHub timestamps have one-second resolution
    a.create_comment("bump")
    assert next(i.title for i in bot.get_issues(state="all", sort="updated")) == "a"


def test_pagination_uses_link_headers(fake: FakeGitHub) -> None:
    repo = gh(fake).get_repo(REPO)
    for i in range(7):
        repo.create_issue(f"t{i}")
    status, headers, body = http(fake, "GET", f"/repos/{REPO}/issues?per_page=3&page=2")
    assert status == 200 and len(json.loads(body)) == 3
    assert 'rel="next"' in headers["Link"] and 'rel="prev"' in headers["Link"] and "page=3" in headers["Link"]
    assert len(list(gh(fake, per_page=2).get_repo(REPO).get_issues())) == 7


def test_every_response_carries_rate_limit_headers(fake: FakeGitHub) -> None:
    _, h1, _ = http(fake, "GET", f"/repos/{REPO}")
    _, h2, _ = http(fake, "GET", f"/repos/{REPO}")
    for k in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used",
              "x-ratelimit-resource"):  # fmt: skip
        assert k in {x.lower() for x in h1}
    low = {k.lower(): v for k, v in h2.items()}
    assert (
        low["x-ratelimit-limit"] == "5000" and low["x-ratelimit-remaining"] == "4998" and low["x-ratelimit-used"] == "2"
    )
    rl = gh(fake).get_rate_limit()
    assert rl.resources.core.limit == 5000


def test_secondary_limits_answer_with_retry_after_and_the_documented_message(fake: FakeGitHub) -> None:
    fake.set_secondary_limits([(2, 60)], status=429)
    repo = gh(fake).get_repo(REPO)
    repo.create_issue("1")
    repo.create_issue("2")
    with pytest.raises(GithubException) as exc:
        repo.create_issue("3")
    assert exc.value.status == 429 and int(exc.value.headers["retry-after"]) >= 59
    assert exc.value.data["message"].startswith("You have exceeded a secondary rate limit")
    assert fake.writes() == 2 and len(fake.issues(REPO)) == 2


def test_validation_errors_look_like_githubs(fake: FakeGitHub) -> None:
    repo = gh(fake).get_repo(REPO)
    with pytest.raises(GithubException) as exc:
        repo.create_issue("x", body="b" * 65537)
    assert exc.value.status == 422 and exc.value.data["errors"][0]["field"] == "body"
    with pytest.raises(GithubException) as bad_creds:
        gh(fake, "nope").get_user().login
    assert bad_creds.value.status == 401


def test_webhooks_are_signed_and_name_the_event(fake: FakeGitHub) -> None:
    got: list[tuple[Any, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((self.headers, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        fake.add_hook(f"http://127.0.0.1:{srv.server_address[1]}/hook", "sec")
        issue = gh(fake, fake.human.token).get_repo(REPO).create_issue("t")
        issue.edit(state="closed", state_reason="not_planned")
        issue.add_to_labels("triage")
        fake.wait_deliveries()
        time.sleep(0.1)
    finally:
        srv.shutdown()
    events = [(h["X-GitHub-Event"], json.loads(b)["action"]) for h, b in got]
    assert events == [("issues", "opened"), ("issues", "closed"), ("issues", "labeled")]
    for h, b in got:
        assert "X-GitHub-Event" in h.keys(), "GitHub's header casing"
        assert h["X-Hub-Signature-256"] == "sha256=" + hmac.new(b"sec", b, hashlib.sha256).hexdigest()
        assert h["X-GitHub-Delivery"]
    closed = json.loads(got[1][1])
    assert closed["issue"]["state_reason"] == "not_planned" and closed["sender"]["login"] == "octo-responder"


def test_control_api_injects_faults_and_reports_counters(fake: FakeGitHub) -> None:
    assert http(fake, "POST", "/_fake/faults", {"method": "GET", "path": "/repos/", "status": 503})[0] == 201
    assert http(fake, "GET", f"/repos/{REPO}")[0] == 503
    assert http(fake, "GET", f"/repos/{REPO}")[0] == 200
    http(fake, "POST", "/_fake/limits", {"secondary": [[1, 60]], "latency_s": 0})
    http(fake, "POST", f"/repos/{REPO}/issues", {"title": "one"})
    status, headers, _ = http(fake, "POST", f"/repos/{REPO}/issues", {"title": "two"})
    assert status == 403 and "Retry-After" in headers
    stats = json.loads(http(fake, "GET", "/_fake/stats")[2])
    assert stats["counters"]["write:create_issue"] == 1 and stats["counters"]["rejected:secondary"] == 1
    assert stats["counters"]["fault:503"] == 1
    state = json.loads(http(fake, "GET", "/_fake/state")[2])
    assert [i["title"] for i in state[REPO]["issues"]] == ["one"]


def test_ui_lists_issues_and_escapes_everything(fake: FakeGitHub) -> None:
    evil = '<script>alert("x")</script>'
    issue = gh(fake).get_repo(REPO).create_issue(evil, body=f"body {evil}", labels=[f"l{evil}"[:50]])
    issue.create_comment(f"comment {evil}")
    for path in ("/", "/ui"):
        status, headers, page = http(fake, "GET", path)
        text = page.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "<script>" not in text and "&lt;script&gt;" in text
        assert "#1" in text and "comment &lt;script&gt;" in text and "[open]" in text
