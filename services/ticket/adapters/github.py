"""GitHub through PyGithub, with our limiter in front and no blind retries.

- PyGithub's default ``GithubRetry`` retries POST on 5xx (its ``allowed_methods`` adds GET and
  POST to urllib3's defaults, and 500-599 are in its ``status_forcelist``): a 502 that hid a
  success would create a second issue. We pass ``retry=None`` (requests' ``max_retries=0``) and
  retry ourselves, only through the paths that first check what GitHub already has.
- PyGithub's own throttle (``seconds_between_writes``) sleeps inside the Kafka loop; it is off,
  ``WriteLimiter`` decides instead and waiting becomes back-pressure.
- Every failure maps to our errors: rate limits and 5xx → ``Transient(retry_after)``;
  a rejection GitHub will repeat forever (404 repository, 422, 403 permission) → ``GitHubRejected``
  (a ``BadInput``: the alert goes to the DLQ with the cause, never silently lost).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException, GithubIntegration
from github.Issue import Issue
from github.Repository import Repository
from prometheus_client import CollectorRegistry, Counter, Gauge

from alertline.clock import Clock, utcnow
from alertline.errors import BadInput, Transient
from services.ticket.domain import AddComment, CreateIssue, Observation, UpdateIssue
from services.ticket.limiter import WriteLimiter
from services.ticket.ports import IssueRef, ListedIssue
from services.ticket.text import Marker, comment_key_of, parse_comment_marker, parse_marker, splice_status

log = logging.getLogger(__name__)
T = TypeVar("T")
CRASH_ENV = "ALERTLINE_TEST_CRASH_AFTER_CREATE"
SECONDARY_DEFAULT_WAIT = 60.0  # GitHub: without retry-after, wait at least one minute
MAX_BACKOFF = 120.0


class GitHubRejected(BadInput):
    """GitHub refuses this request and will keep refusing it (bad repository, validation, permission)."""


class IssueGone(Exception):
    """The issue was deleted or transferred."""


class GitHubMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.writes = Counter("alertline_github_writes", "GitHub writes by kind.", ["kind"], registry=registry)
        self.requests = Counter(
            "alertline_github_requests", "GitHub requests by outcome.", ["call", "outcome"], registry=registry
        )
        self.remaining = Gauge(
            "alertline_github_rate_remaining", "Primary quota left (x-ratelimit-remaining).", registry=registry
        )
        self.reset_in = Gauge(
            "alertline_github_rate_reset_seconds", "Seconds until the primary quota resets.", registry=registry
        )
        self.available = Gauge(
            "alertline_github_writes_available", "Writes our limiter allows now, per window.", ["window"],
            registry=registry,
        )  # fmt: skip
        self.waits = Counter(
            "alertline_github_wait_seconds", "Back-pressure asked for, in seconds, by reason.", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.throttled = Counter(
            "alertline_github_throttled", "Times work waited for GitHub, by reason.", ["reason"], registry=registry
        )


@dataclass
class _Index:
    """Our issues by marker key, for one repository. Complete for issues created at or after
    ``covered_from`` as of ``listed_at`` plus every create this process made since, unless stale."""

    entries: dict[str, IssueRef] = field(default_factory=dict)
    covered_from: datetime | None = None
    listed_at: datetime | None = None
    stale: bool = True


def _utc(dt: datetime | None) -> datetime:
    if dt is None:
        return datetime.now(UTC)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def observation_of(issue: Issue, login: str = "") -> Observation:
    closer = issue.closed_by
    return Observation(
        number=issue.number,
        state=issue.state,
        state_reason=issue.state_reason,
        labels=tuple(lb.name for lb in issue.labels),
        updated_at=_utc(issue.updated_at),
        body=issue.body,
        title=issue.title,
        closed_at=_utc(issue.closed_at) if issue.closed_at else None,
        closed_by_us=bool(login) and issue.state == "closed" and closer is not None and closer.login == login,
    )


def make_github(
    api_url: str,
    token: str | None = None,
    timeout: int = 15,
    per_page: int = 100,
    app: tuple[int, str, int] | None = None,
) -> Github:
    """A PyGithub client without its own retries or sleeps. ``app`` = (app id, PEM private key,
    installation id) authenticates as the App's installation (tokens renewed before expiry)."""
    auth: Auth.Auth
    if app is not None:
        app_id, key, installation = app
        auth = Auth.AppAuth(app_id, key).get_installation_auth(installation)
    elif token is not None:
        auth = Auth.Token(token)
    else:
        raise ValueError("a token or App credentials are needed")
    return Github(
        auth=auth,
        base_url=api_url,
        timeout=timeout,
        per_page=per_page,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        lazy=True,
    )


def app_login(api_url: str, app_id: int, private_key: str, timeout: int = 15) -> str:
    """The login an App's installation writes as: ``<app slug>[bot]``."""
    integration = GithubIntegration(auth=Auth.AppAuth(app_id, private_key), base_url=api_url, timeout=timeout,
                                    retry=None)  # fmt: skip
    try:
        return f"{integration.get_app().slug}[bot]"
    except GithubException as exc:
        raise Transient(f"cannot read our GitHub App: {exc.status} {exc.data}", retry_after=30) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise Transient(f"GitHub unreachable: {exc}", retry_after=10) from exc


class GitHubTracker:
    shadow = False

    def __init__(
        self,
        gh: Github,
        login: str,
        limiter: WriteLimiter,
        metrics: GitHubMetrics,
        clock: Clock = utcnow,
        overlap: timedelta = timedelta(minutes=2),
        index_max_age: timedelta = timedelta(days=7),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.gh = gh
        self.login = login
        self.limiter = limiter
        self.metrics = metrics
        self.clock = clock
        self.overlap = overlap
        self.index_max_age = index_max_age
        self._index: dict[str, _Index] = {}
        self._suspect: set[tuple[str, int]] = set()
        self._failures = 0
        self._crash_after_create = os.environ.get(CRASH_ENV) == "1"
        self._sleep = sleep

    # ------------------------------------------------------------------ plumbing
    def _repo(self, name: str) -> Repository:
        return self.gh.get_repo(name)

    def preflight(self, writes: int) -> None:
        if writes <= 0:
            return
        self._check_primary()
        wait = self.limiter.wait_time(min(writes, min(n for n, _ in self.limiter.windows)))
        if wait > 0:
            self._throttle("limiter", wait)

    def _throttle(self, reason: str, wait: float) -> None:
        self.metrics.throttled.labels(reason).inc()
        self.metrics.waits.labels(reason).inc(wait)
        raise Transient(f"GitHub writes paused ({reason}) for {wait:.1f}s", retry_after=wait)

    def _check_primary(self) -> None:
        remaining, _limit = self.gh.requester.rate_limiting
        reset = self.gh.requester.rate_limiting_resettime
        if remaining == 0 and reset > time.time():
            self._throttle("primary", reset - time.time() + 1)

    def _observe_quota(self) -> None:
        remaining, _ = self.gh.requester.rate_limiting
        if remaining >= 0:
            self.metrics.remaining.set(remaining)
        reset = self.gh.requester.rate_limiting_resettime
        if reset:
            self.metrics.reset_in.set(max(0.0, reset - time.time()))
        for window, n in self.limiter.available().items():
            self.metrics.available.labels(window).set(n)

    def _call(
        self, call: str, fn: Callable[[], T], *, write: bool, on_ambiguous: Callable[[], None] | None = None
    ) -> T:
        if write:
            self._check_primary()
            wait = self.limiter.try_acquire()
            if wait > 0:
                self._throttle("limiter", wait)
        try:
            out = fn()
        except GithubException as exc:
            self._observe_quota()
            self.metrics.requests.labels(call, str(exc.status)).inc()
            raise self._map(call, exc, write, on_ambiguous) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            self.metrics.requests.labels(call, "network").inc()
            if write and on_ambiguous is not None:
                on_ambiguous()  # the request may have reached GitHub
            raise self._backoff(f"{call}: {type(exc).__name__}: {exc}") from exc
        self._failures = 0
        self.metrics.requests.labels(call, "ok").inc()
        if write:
            self.metrics.writes.labels(call).inc()
        self._observe_quota()
        return out

    def _backoff(self, what: str) -> Transient:
        self._failures += 1
        wait = min(MAX_BACKOFF, 2.0 ** min(self._failures, 7))
        self.metrics.throttled.labels("error").inc()
        self.metrics.waits.labels("error").inc(wait)
        return Transient(f"GitHub unavailable ({what}); retrying in {wait:.0f}s", retry_after=wait)

    def _map(self, call: str, exc: GithubException, write: bool, on_ambiguous: Callable[[], None] | None) -> Exception:
        status = exc.status
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        data = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("message") or "")
        if status in (403, 429):
            retry_after = headers.get("retry-after")
            low = message.lower()
            reason = None
            wait = 0.0
            if retry_after is not None:
                reason, wait = "secondary", float(retry_after)
            elif headers.get("x-ratelimit-remaining") == "0" or low.startswith("api rate limit exceeded"):
                reset = float(headers.get("x-ratelimit-reset") or time.time() + 60)
                reason, wait = "primary", max(1.0, reset - time.time() + 1)
            elif "secondary rate limit" in low or status == 429:
                reason, wait = "secondary", SECONDARY_DEFAULT_WAIT
            if reason is not None:
                self.limiter.block_for(wait)
                self.metrics.throttled.labels(reason).inc()
                self.metrics.waits.labels(reason).inc(wait)
                return Transient(f"GitHub {reason} rate limit on {call}; waiting {wait:.0f}s", retry_after=wait)
            return GitHubRejected(f"GitHub refused {call} (403): {message}")
        if status == 401:
            # Expired or revoked credentials: an operator must act; keep the alerts, do not DLQ them.
            self.metrics.throttled.labels("credentials").inc()
            return Transient(f"GitHub rejected our credentials on {call}: {message}", retry_after=60)
        if status >= 500:
            if write and on_ambiguous is not None:
                on_ambiguous()  # a 5xx can hide a success
            return self._backoff(f"{call}: HTTP {status}")
        if status in (404, 410):
            return GitHubRejected(f"GitHub {call}: {status} {message} (missing repository or no access?)")
        return GitHubRejected(f"GitHub refused {call} ({status}): {message} {data.get('errors') or ''}".strip())

    # ------------------------------------------------------------------ finding our issues
    def invalidate(self) -> None:
        for idx in self._index.values():
            idx.stale = True

    def find(self, repository: str, marker: Marker, not_before: datetime) -> IssueRef | None:
        idx = self._index.setdefault(repository, _Index())
        hit = idx.entries.get(marker.key)
        if hit is not None:
            return hit
        if idx.covered_from is None or not_before < idx.covered_from:
            self._list_into(repository, idx, not_before)
        elif idx.stale:
            assert idx.listed_at is not None
            self._list_into(repository, idx, min(idx.listed_at - self.overlap, max(not_before, idx.covered_from)))
        return idx.entries.get(marker.key)

    def _list_into(self, repository: str, idx: _Index, bound: datetime) -> None:
        started = self.clock()
        n = 0
        for item in self._iter_ours(repository, since=bound, sort="created", state="all", stop_before=bound):
            idx.entries[item.marker.key] = IssueRef(
                repository, item.observation.number, item.created_at, item.observation.updated_at
            )
            n += 1
        idx.covered_from = bound if idx.covered_from is None else min(idx.covered_from, bound)
        idx.listed_at = started
        idx.stale = False
        floor = started - self.index_max_age
        if idx.covered_from < floor:
            idx.entries = {k: v for k, v in idx.entries.items() if v.created_at >= floor}
            idx.covered_from = floor
        log.info("listed our recent issues", extra={"repository": repository, "since": bound.isoformat(), "seen": n})

    def _iter_ours(
        self,
        repository: str,
        since: datetime | None,
        sort: str,
        state: str,
        stop_before: datetime | None = None,
    ) -> Iterator[ListedIssue]:
        kw: dict[str, Any] = {"state": state, "creator": self.login, "sort": sort, "direction": "desc"}
        if since is not None:
            kw["since"] = since.astimezone(UTC)
        pages = self._call("list_issues", lambda: self._repo(repository).get_issues(**kw), write=False)
        it = iter(pages)
        while True:
            issue = self._call("list_issues", lambda: next(it, None), write=False)
            if issue is None:
                return
            created = _utc(issue.created_at)
            if stop_before is not None and created < stop_before:
                return
            marker = parse_marker(issue.body)
            if marker is None:  # not ours (our login never opens pull requests, so no PR check)
                continue
            yield ListedIssue(repository, marker, observation_of(issue, self.login), created)

    def list_ours(self, repository: str, since: datetime | None, state: str = "all") -> Iterator[ListedIssue]:
        return self._iter_ours(repository, since=since, sort="updated", state=state)

    # ------------------------------------------------------------------ writes
    def create(self, action: CreateIssue) -> IssueRef:
        repo = self._repo(action.repository)
        idx = self._index.setdefault(action.repository, _Index())

        def mark_stale() -> None:
            idx.stale = True

        def do(assignees: tuple[str, ...]) -> Issue:
            kw: dict[str, Any] = {"title": action.title, "body": action.body, "labels": list(action.labels)}
            if assignees:
                kw["assignees"] = list(assignees)
            return self._call("create_issue", lambda: repo.create_issue(**kw), write=True, on_ambiguous=mark_stale)

        try:
            issue = do(action.assignees)
        except GitHubRejected as exc:
            if not action.assignees or "assignees" not in str(exc):
                raise
            # An assignee GitHub does not accept must not cost the alert its issue.
            log.warning("assignees rejected; creating without them", extra={"error": str(exc)})
            issue = do(())
        if self._crash_after_create:
            os._exit(70)  # test hook: die after GitHub created the issue, before any state commit
        ref = IssueRef(action.repository, issue.number, _utc(issue.created_at), _utc(issue.updated_at))
        idx.entries[action.marker.key] = ref
        return ref

    def get(self, repository: str, number: int) -> Observation | None:
        try:
            issue = self._call("get_issue", lambda: self._repo(repository).get_issue(number).complete(), write=False)
        except GitHubRejected as exc:
            if isinstance(exc.__cause__, GithubException) and exc.__cause__.status in (404, 410):
                return None
            raise
        return observation_of(issue, self.login)

    def update(self, action: UpdateIssue, current: Observation | None) -> Observation | None:
        """Apply the action's differences from ``current``; the issue as GitHub shows it after
        our writes (None when nothing needed writing). Labels go through the add/remove
        endpoints, never a full replacement, so a label a human adds meanwhile survives."""
        if current is None:
            return None
        fields = edit_fields(action, current)
        have = {x.lower() for x in current.labels}
        add = [x for x in action.add_labels if x.lower() not in have]
        remove = [x for x in action.remove_labels if x.lower() in have]
        if not fields and not add and not remove:
            return None
        issue = self._repo(action.repository).get_issue(action.number)  # lazy: no request
        # Labels first, the PATCH (which may close or reopen) last: a failure midway never leaves
        # a state change of ours that a retry could mistake for a human's.
        for name in remove:
            try:
                self._call("remove_label", functools.partial(issue.remove_from_labels, name), write=True)
            except GitHubRejected:
                log.info("label already gone", extra={"label": name, "issue": action.number})
        if add:
            self._call("add_labels", lambda: issue.add_to_labels(*add), write=True)
        if fields:
            self._call("edit_issue", lambda: issue.edit(**fields), write=True)
            return observation_of(issue, self.login)  # edit() loaded the response: the issue after our write
        # The label endpoints do not return the issue; read it for GitHub's updated_at.
        return self.get(action.repository, action.number)

    def suspect(self, repository: str, number: int) -> bool:
        return (repository, number) in self._suspect

    def has_comment(self, repository: str, number: int, key: str, since: datetime) -> bool:
        issue = self._repo(repository).get_issue(number)
        pages = self._call("list_comments", lambda: issue.get_comments(since=since.astimezone(UTC)), write=False)
        it = iter(pages)
        while (c := self._call("list_comments", lambda: next(it, None), write=False)) is not None:
            if c.user is not None and c.user.login == self.login and comment_key_of(c.body) == key:
                self._suspect.discard((repository, number))
                return True
        self._suspect.discard((repository, number))
        return False

    def comment(self, action: AddComment) -> datetime:
        issue = self._repo(action.repository).get_issue(action.number)

        def mark() -> None:
            self._suspect.add((action.repository, action.number))

        c = self._call("create_comment", lambda: issue.create_comment(action.body), write=True, on_ambiguous=mark)
        return _utc(c.created_at)

    def drain_intents(self) -> list[dict[str, Any]]:
        return []

    def our_comments(self, repository: str, number: int) -> list[tuple[str, tuple[str, ...], datetime]]:
        """(key, enrichment fingerprints, created_at) of every comment we posted on an issue."""
        issue = self._repo(repository).get_issue(number)
        pages = self._call("list_comments", lambda: issue.get_comments(), write=False)
        it = iter(pages)
        out = []
        while (c := self._call("list_comments", lambda: next(it, None), write=False)) is not None:
            parsed = parse_comment_marker(c.body)
            if parsed is not None and c.user is not None and c.user.login == self.login:
                out.append((parsed[0], parsed[1], _utc(c.created_at)))
        return out


def edit_fields(action: UpdateIssue, current: Observation) -> dict[str, Any]:
    """The PATCH fields that differ between the issue now and the action's shape."""
    fields: dict[str, Any] = {}
    if action.body is not None and action.body != current.body:
        fields["body"] = action.body
    elif action.marker is not None and action.status is not None and current.body is not None:
        spliced = splice_status(current.body, action.marker, action.status)
        if spliced is not None and spliced != current.body:
            fields["body"] = spliced
    if action.title is not None and action.title != current.title:
        fields["title"] = action.title
    if action.state is not None and action.state != current.state:
        fields["state"] = action.state
        if action.state == "closed" and action.state_reason:
            fields["state_reason"] = action.state_reason
    elif action.state == "closed" and action.state_reason and current.state_reason != action.state_reason:
        fields["state"], fields["state_reason"] = "closed", action.state_reason
    return fields


def discover_login(gh: Github) -> str:
    """The login our token acts as (the ``creator`` of our issues)."""
    try:
        return str(gh.get_user().login)
    except GithubException as exc:
        raise Transient(f"cannot read the GitHub user of our token: {exc.status} {exc.data}", retry_after=30) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise Transient(f"GitHub unreachable: {exc}", retry_after=10) from exc
