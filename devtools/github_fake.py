"""A local fake of the GitHub REST API, faithful enough for PyGithub to drive it for real.

Run it on its own (``python -m devtools.github_fake``) or start it in a test::

    fake = FakeGitHub()
    url = fake.start()                      # http://127.0.0.1:<port>
    gh = Github(auth=Auth.Token(fake.bot.token), base_url=url, retry=None)

What it speaks (JSON shapes as api.github.com):
- ``GET /user``, ``GET /rate_limit``, ``GET /repos/{o}/{r}``;
- issues: create / get / edit (title, body, state, ``state_reason`` completed|not_planned|reopened,
  labels, assignees), list with ``state``, ``since`` (updated at or after), ``creator``,
  ``labels``, ``sort`` created|updated|comments, ``direction``, ``per_page``/``page`` and
  RFC 5988 ``Link`` headers;
- comments create / list (``since``); labels add / set / remove / list / create; issue events;
- primary rate limit per token (``x-ratelimit-*`` headers on every response, 403 "API rate limit
  exceeded" when exhausted) and secondary limits on content-creating requests (403 or 429 with
  ``retry-after`` and GitHub's documented message) over sliding windows you configure;
- injected faults: any status (5xx by default), optionally *after* the write happened (a hidden
  success, the case that makes blind POST retries create duplicates), and latency;
- webhooks: every change is delivered to registered hooks as GitHub would (``X-GitHub-Event``,
  ``X-GitHub-Delivery``, ``X-Hub-Signature-256``), including changes made by other users, and
  deliveries can be replayed with their original id;
- ``GET /`` and ``/ui``: a small read-only HTML page of the issues (everything escaped);
- ``/_fake/...``: a control API (faults, limits, counters, state dump, deliveries) for tests and
  the demo; the same operations are methods of ``FakeGitHub``.

Never imported by service code.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import html
import http.client
import itertools
import json
import math
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {rid}."
)
PRIMARY_MESSAGE = "API rate limit exceeded for user ID {uid}."
DOCS = "https://docs.github.com/rest"
MAX_BODY = 65536
MAX_TITLE = 256
MAX_LABEL = 50
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class User:
    login: str
    id: int
    token: str
    type: str = "User"


@dataclass
class App:
    """A GitHub App: JWTs signed with its private key buy installation tokens for its bot user."""

    id: int
    slug: str
    public_key: str
    installation_id: int
    bot: User
    token_ttl_s: float = 3600.0


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Comment:
    id: int
    body: str
    user: User
    created_at: datetime
    updated_at: datetime


@dataclass
class Issue:
    id: int
    number: int
    title: str
    body: str | None
    user: User
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: User | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower-cased name -> label
    collaborators: set[str] = field(default_factory=set)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Fault:
    """One injected failure. ``after_write``: perform the write, then answer ``status`` anyway."""

    method: str
    path: re.Pattern[str]
    status: int = 502
    count: int = 1
    after_write: bool = False
    retry_after: float | None = None
    message: str | None = None
    delay_s: float = 0.0
    kind: str = "error"  # error | secondary | primary | latency


@dataclass
class Quota:
    limit: int
    remaining: int
    reset: float
    used: int = 0


@dataclass
class Delivery:
    id: str
    event: str
    url: str
    secret: str
    payload: bytes
    status: int | None = None
    error: str | None = None
    attempts: int = 0


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _err(status: int, message: str, **extra: Any) -> HttpError:
    return HttpError(status, {"message": message, "documentation_url": DOCS, **extra})


def _validation(resource: str, fieldname: str, code: str, message: str | None = None, value: Any = None) -> HttpError:
    e: dict[str, Any] = {"resource": resource, "field": fieldname, "code": code}
    if message:
        e["message"] = message
    if value is not None:
        e["value"] = value
    return HttpError(422, {"message": "Validation Failed", "errors": [e], "documentation_url": DOCS, "status": "422"})


class FakeGitHub:
    """The fake server and its state. Thread-safe; every handler runs under one lock."""

    def __init__(
        self,
        *,
        bot_login: str = "alertline-bot",
        bot_token: str = "bot-token",  # noqa: S107 - a fake's well-known test token
        human_login: str = "octo-responder",
        human_token: str = "human-token",  # noqa: S107 - a fake's well-known test token
        repos: tuple[str, ...] = ("acme/security-alerts",),
        primary_limit: int = 5000,
        primary_window_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._ids = itertools.count(1000)
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.apps: dict[int, App] = {}
        self._token_expiry: dict[str, float] = {}  # installation token -> expiry (clock)
        self.bot = self.add_user(bot_login, bot_token, type="Bot")
        self.human = self.add_user(human_login, human_token)
        for r in repos:
            self.add_repo(r, collaborators=(human_login,))
        self.primary_limit = primary_limit
        self.primary_window_s = primary_window_s
        self._quota: dict[str, Quota] = {}
        # Secondary limits on content-creating requests, per user, over sliding windows.
        self.secondary: list[tuple[int, float]] = []
        self.secondary_status = 403
        self._writes_at: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.write_times: list[float] = []  # every accepted content-creating request, for limit checks
        self._faults: list[Fault] = []
        self.latency_s = 0.0
        self.counters: collections.Counter[str] = collections.Counter()
        self.hooks: list[tuple[str, str]] = []
        self.deliveries: list[Delivery] = []
        self._delivery_q: collections.deque[Delivery] = collections.deque()
        self._delivery_cv = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._stopping = False
        self.url = ""

    # ------------------------------------------------------------------ setup
    def add_user(self, login: str, token: str, type: str = "User") -> User:
        with self._lock:
            u = User(login, next(self._ids), token, type)
            self.users[token] = u
            return u

    def add_app(
        self, app_id: int, public_key_pem: str, slug: str = "alertline", installation_id: int = 1,
        token_ttl_s: float = 3600.0,
    ) -> App:  # fmt: skip
        """Register a GitHub App; its installation tokens act as the user ``<slug>[bot]``."""
        with self._lock:
            bot = User(f"{slug}[bot]", next(self._ids), "", "Bot")
            app = App(app_id, slug, public_key_pem, installation_id, bot, token_ttl_s)
            self.apps[app_id] = app
            return app

    def add_repo(self, full_name: str, collaborators: tuple[str, ...] = ()) -> Repo:
        with self._lock:
            owner, name = full_name.split("/", 1)
            r = Repo(owner, name, next(self._ids), collaborators=set(collaborators))
            self.repos[full_name.lower()] = r
            return r

    def set_secondary_limits(self, limits: list[tuple[int, float]], status: int = 403) -> None:
        """Content-creating requests allowed per sliding window: e.g. ``[(80, 60), (500, 3600)]``."""
        with self._lock:
            self.secondary = list(limits)
            self.secondary_status = status
            self._writes_at.clear()

    def set_primary(
        self, limit: int | None = None, remaining: int | None = None, window_s: float | None = None
    ) -> None:
        """Change the primary (hourly) quota of every user; ``remaining=0`` exhausts it now."""
        with self._lock:
            if limit is not None:
                self.primary_limit = limit
            if window_s is not None:
                self.primary_window_s = window_s
            for u in self.users.values():
                q = self._quota_for(u)
                if limit is not None:
                    q.limit = limit
                if remaining is not None:
                    q.remaining = remaining

    def inject(
        self,
        method: str = "POST",
        path: str = r".*",
        status: int = 502,
        count: int = 1,
        after_write: bool = False,
        retry_after: float | None = None,
        message: str | None = None,
        delay_s: float = 0.0,
        kind: str = "error",
    ) -> None:
        """Affect the next ``count`` matching requests (``path`` is a regex searched in the path).

        ``kind``: ``error`` answers ``status`` (before the write, or after it with ``after_write``);
        ``secondary`` / ``primary`` answer as GitHub's rate limits do; ``latency`` only delays.
        ``delay_s`` delays any kind."""
        with self._lock:
            self._faults.append(
                Fault(method.upper(), re.compile(path), status, count, after_write, retry_after, message, delay_s, kind)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_hook(self, url: str, secret: str) -> None:
        with self._lock:
            self.hooks.append((url, secret))

    def reset_counters(self) -> None:
        with self._lock:
            self.counters.clear()
            self.write_times.clear()

    def max_writes_in_window(self, seconds: float) -> int:
        """The most content-creating requests this fake accepted in any window of ``seconds``."""
        with self._lock:
            ts = sorted(self.write_times)
        best, j = 0, 0
        for i, t in enumerate(ts):
            while ts[j] <= t - seconds:
                j += 1
            best = max(best, i - j + 1)
        return best

    # ------------------------------------------------------------------ reading back (tests, demo)
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC).replace(microsecond=0)

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def issues(self, full_name: str) -> list[Issue]:
        with self._lock:
            return sorted(self.repo(full_name).issues.values(), key=lambda i: i.number)

    def writes(self) -> int:
        with self._lock:
            return sum(v for k, v in self.counters.items() if k.startswith("write:"))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "writes": self.writes(),
                "issues": {n: len(r.issues) for n, r in self.repos.items()},
                "faults_pending": [
                    {"method": f.method, "path": f.path.pattern, "status": f.status, "count": f.count}
                    for f in self._faults
                ],
                "deliveries": len(self.deliveries),
            }

    def dump(self) -> dict[str, Any]:
        with self._lock:
            return {
                name: {
                    "issues": [
                        self._issue_json(r, i) | {"comments_list": [self._comment_json(r, i, c) for c in i.comments]}
                        for i in r.issues.values()
                    ],
                    "labels": [self._label_json(r, lb) for lb in r.labels.values()],
                }
                for name, r in self.repos.items()
            }

    def wait_deliveries(self, timeout: float = 10.0) -> None:
        """Block until every queued webhook delivery was attempted."""
        deadline = time.monotonic() + timeout
        with self._delivery_cv:
            while self._delivery_q and time.monotonic() < deadline:
                self._delivery_cv.wait(0.05)

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a past delivery again, with its original id (as GitHub's "Redeliver" does)."""
        with self._lock:
            d = next(d for d in self.deliveries if d.id == delivery_id)
        self._enqueue(d)
        return d

    # ------------------------------------------------------------------ lifecycle
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response and no Nagle: otherwise keep-alive clients stall ~40 ms a call.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def _any(self) -> None:
                outer._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="github-fake", daemon=True
        ).start()
        threading.Thread(target=self._deliver_loop, name="github-fake-hooks", daemon=True).start()
        self.url = f"http://{host}:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self._stopping = True
        with self._delivery_cv:
            self._delivery_cv.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ HTTP plumbing
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command
        parsed = urllib.parse.urlsplit(h.path)
        path = parsed.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        status, body, headers, ctype = 200, b"", {}, "application/json; charset=utf-8"
        try:
            if path in ("/", "/ui") or path.startswith("/ui/"):
                status, body, ctype = 200, self._ui(query).encode(), "text/html; charset=utf-8"
            elif path.startswith("/_fake"):
                status, payload = self._control(method, path, query, raw)
                body = json.dumps(payload, default=str).encode()
            else:
                status, payload, headers = self._api(method, path, query, raw, h.headers.get("Authorization"))
                body = b"" if payload is None else json.dumps(payload).encode()
        except HttpError as e:
            status, headers = e.status, e.headers
            body = json.dumps(e.body).encode()
        except (ValueError, KeyError, TypeError) as e:
            status, body = 400, json.dumps({"message": f"Problems parsing JSON: {e}"}).encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        h.send_header("X-GitHub-Request-Id", uuid.uuid4().hex[:20].upper())
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _api(
        self, method: str, path: str, query: dict[str, str], raw: bytes, authorization: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        fault, delay = self._take_fault(method, path)
        if delay:
            time.sleep(delay)
        with self._lock:
            self.counters[f"request:{method}"] += 1
            if path == "/app" or path.startswith("/app/"):
                return self._app_route(method, path, authorization)
            user = self._auth(authorization)
            headers = self._rate_headers(user, consume=path != "/rate_limit")
            q = self._quota_for(user)
            if path != "/rate_limit" and (q.remaining < 0 or (fault is not None and fault.kind == "primary")):
                q.remaining = 0
                self.counters["rejected:primary"] += 1
                headers = self._rate_headers(user, consume=False)
                raise HttpError(
                    403, {"message": PRIMARY_MESSAGE.format(uid=user.id), "documentation_url": DOCS}, headers
                )
            if method in WRITE_METHODS:
                self._check_secondary(user, headers, fault)
            if fault is not None and fault.kind == "error" and not fault.after_write:
                self.counters[f"fault:{fault.status}"] += 1
                raise self._fault_error(fault, headers)
            data = json.loads(raw) if raw else None
            status, payload = self._route(method, path, query, data, user, headers)
            if fault is not None and fault.kind == "error" and fault.after_write:
                self.counters[f"fault_after_write:{fault.status}"] += 1
                raise self._fault_error(fault, headers)
            return status, payload, headers

    def _fault_error(self, fault: Fault, headers: dict[str, str]) -> HttpError:
        h = dict(headers)
        if fault.retry_after is not None:
            h["Retry-After"] = str(math.ceil(fault.retry_after))
        msg = fault.message or ("Server Error" if fault.status >= 500 else "Injected failure")
        return HttpError(fault.status, {"message": msg, "documentation_url": DOCS}, h)

    def _take_fault(self, method: str, path: str) -> tuple[Fault | None, float]:
        with self._lock:
            delay = self.latency_s
            for f in self._faults:
                if f.method in (method, "*") and f.path.search(path):
                    f.count -= 1
                    if f.count <= 0:
                        self._faults.remove(f)
                    return f, delay + f.delay_s
            return None, delay

    def _auth(self, authorization: str | None) -> User:
        if not authorization:
            raise _err(401, "Requires authentication")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        user = self.users.get(token) if scheme.lower() in ("token", "bearer") else None
        if user is None:
            raise _err(401, "Bad credentials")
        expiry = self._token_expiry.get(token)
        if expiry is not None and self._clock() >= expiry:
            raise _err(401, "Bad credentials")
        return user

    def _app_of_jwt(self, authorization: str | None) -> App:
        import jwt  # PyJWT, as GitHub verifies an App's JWT with the App's public key

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            raise _err(401, "A JSON web token could not be decoded")
        try:
            iss = jwt.decode(token, options={"verify_signature": False})["iss"]
            app = self.apps[int(iss)]
            jwt.decode(token, app.public_key, algorithms=["RS256"], options={"verify_iat": False})
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise _err(401, f"A JSON web token could not be decoded ({type(exc).__name__})") from exc
        return app

    def _app_route(self, method: str, path: str, authorization: str | None) -> tuple[int, Any, dict[str, str]]:
        app = self._app_of_jwt(authorization)
        if path == "/app" and method == "GET":
            return 200, {"id": app.id, "slug": app.slug, "name": app.slug, "node_id": f"A_{app.id}",
                         "owner": {"login": "acme", "id": 1, "type": "Organization"},
                         "permissions": {"issues": "write", "metadata": "read"}, "events": ["issues"]}, {}  # fmt: skip
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if m and method == "POST":
            if int(m.group(1)) != app.installation_id:
                raise _err(404, "Not Found")
            token = "ghs_" + uuid.uuid4().hex
            expires = self._clock() + app.token_ttl_s
            self.users[token] = app.bot
            self._token_expiry[token] = expires
            self.counters["app:tokens"] += 1
            body = {"token": token, "expires_at": _iso(datetime.fromtimestamp(expires, UTC)),
                    "permissions": {"issues": "write", "metadata": "read"}, "repository_selection": "all"}  # fmt: skip
            return 201, body, {}
        raise _err(404, "Not Found")

    def _quota_for(self, user: User) -> Quota:
        q = self._quota.get(user.login)
        now = self._clock()
        if q is None or now >= q.reset:
            q = Quota(self.primary_limit, self.primary_limit, now + self.primary_window_s)
            self._quota[user.login] = q
        return q

    def _rate_headers(self, user: User, consume: bool) -> dict[str, str]:
        q = self._quota_for(user)
        if consume:
            q.remaining -= 1
            q.used += 1
        return {
            "x-ratelimit-limit": str(q.limit),
            "x-ratelimit-remaining": str(max(q.remaining, 0)),
            "x-ratelimit-reset": str(math.ceil(q.reset)),
            "x-ratelimit-used": str(q.used),
            "x-ratelimit-resource": "core",
        }

    def _check_secondary(self, user: User, headers: dict[str, str], fault: Fault | None) -> None:
        now = self._clock()
        forced = fault is not None and fault.kind == "secondary"
        dq = self._writes_at[user.login]
        retry_after = 0.0
        for limit, window in self.secondary:
            recent = [t for t in dq if t > now - window]
            if len(recent) >= limit:
                retry_after = max(retry_after, recent[-limit] + window - now)
        if forced or retry_after > 0:
            self.counters["rejected:secondary"] += 1
            wait = fault.retry_after if forced and fault is not None and fault.retry_after is not None else retry_after
            h = dict(headers)
            h["Retry-After"] = str(max(1, math.ceil(wait)))
            status = fault.status if forced and fault is not None else self.secondary_status
            raise HttpError(
                status,
                {"message": SECONDARY_MESSAGE.format(rid=uuid.uuid4().hex[:12].upper()), "documentation_url": DOCS},
                h,
            )
        dq.append(now)
        self.write_times.append(now)
        longest = max((w for _, w in self.secondary), default=0.0)
        while dq and dq[0] <= now - longest:
            dq.popleft()

    # ------------------------------------------------------------------ routes
    def _route(
        self, method: str, path: str, query: dict[str, str], data: Any, user: User, headers: dict[str, str]
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/user" and method == "GET":
            return 200, self._user_json(user)
        if path == "/rate_limit" and method == "GET":
            q = self._quota_for(user)
            core = {
                "limit": q.limit,
                "remaining": max(q.remaining, 0),
                "reset": int(q.reset),
                "used": q.used,
                "resource": "core",
            }
            search = {"limit": 30, "remaining": 30, "reset": int(self._clock()) + 60, "used": 0, "resource": "search"}
            return 200, {"resources": {"core": core, "search": search}, "rate": core}
        if len(parts) < 3 or parts[0] != "repos":
            raise _err(404, "Not Found")
        repo = self.repos.get(f"{parts[1]}/{parts[2]}".lower())
        if repo is None:
            raise _err(404, "Not Found")
        rest = parts[3:]
        if not rest and method == "GET":
            return 200, self._repo_json(repo)
        if rest == ["issues"]:
            if method == "GET":
                return self._list_issues(repo, query, headers)
            if method == "POST":
                return 201, self._create_issue(repo, data or {}, user)
        if rest == ["labels"]:
            if method == "GET":
                return self._page(
                    sorted(repo.labels.values(), key=lambda lb: lb.name),
                    query,
                    headers,
                    f"/repos/{repo.full_name}/labels",
                    lambda lb: self._label_json(repo, lb),
                )
            if method == "POST":
                self._count_write("create_label")
                name = str((data or {}).get("name", ""))
                if not name or len(name) > MAX_LABEL:
                    raise _validation("Label", "name", "invalid")
                if name.lower() in repo.labels:
                    raise _validation("Label", "name", "already_exists")
                lb = self._label(repo, name, (data or {}).get("color"), (data or {}).get("description"))
                return 201, self._label_json(repo, lb)
        if len(rest) == 2 and rest[0] == "labels" and method == "GET":
            lb = repo.labels.get(urllib.parse.unquote(rest[1]).lower())
            if lb is None:
                raise _err(404, "Not Found")
            return 200, self._label_json(repo, lb)
        if len(rest) >= 2 and rest[0] == "issues" and rest[1].isdigit():
            issue = repo.issues.get(int(rest[1]))
            if issue is None:
                raise _err(404, "Not Found")
            sub = rest[2:]
            if not sub:
                if method == "GET":
                    return 200, self._issue_json(repo, issue)
                if method == "PATCH":
                    return 200, self._edit_issue(repo, issue, data or {}, user)
            if sub == ["comments"]:
                if method == "GET":
                    since = _parse_iso(query["since"]) if query.get("since") else None
                    items = [c for c in issue.comments if since is None or c.updated_at >= since]
                    return self._page(
                        items,
                        query,
                        headers,
                        f"/repos/{repo.full_name}/issues/{issue.number}/comments",
                        lambda c: self._comment_json(repo, issue, c),
                    )
                if method == "POST":
                    return 201, self._create_comment(repo, issue, data or {}, user)
            if sub == ["labels"]:
                if method == "GET":
                    lbs = [repo.labels[n.lower()] for n in issue.labels]
                    return 200, [self._label_json(repo, lb) for lb in lbs]
                if method in ("POST", "PUT"):
                    names = data.get("labels", []) if isinstance(data, dict) else list(data or [])
                    self._count_write("add_labels" if method == "POST" else "set_labels")
                    new = list(issue.labels) if method == "POST" else []
                    self._apply_labels(repo, issue, new + [str(n) for n in names], user)
                    return 200, [self._label_json(repo, repo.labels[n.lower()]) for n in issue.labels]
            if len(sub) == 2 and sub[0] == "labels" and method == "DELETE":
                name = urllib.parse.unquote(sub[1])
                self._count_write("remove_label")
                if name.lower() not in [n.lower() for n in issue.labels]:
                    raise _err(404, "Label does not exist")
                self._apply_labels(repo, issue, [n for n in issue.labels if n.lower() != name.lower()], user)
                return 200, [self._label_json(repo, repo.labels[n.lower()]) for n in issue.labels]
            if sub == ["events"] and method == "GET":
                return self._page(
                    issue.events, query, headers, f"/repos/{repo.full_name}/issues/{issue.number}/events", lambda e: e
                )
        raise _err(404, "Not Found")

    def _count_write(self, kind: str) -> None:
        self.counters[f"write:{kind}"] += 1

    def _page(
        self,
        items: list[Any],
        query: dict[str, str],
        headers: dict[str, str],
        path: str,
        render: Callable[[Any], Any],
    ) -> tuple[int, list[Any]]:
        per_page = max(1, min(int(query.get("per_page") or 30), 100))
        page = max(1, int(query.get("page") or 1))
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(p: int) -> str:
            return f"<{self.url}{path}?{urllib.parse.urlencode(query | {'page': str(p)})}>"

        rels = []
        if page < last:
            rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
        if page > 1:
            rels += [f'{link(page - 1)}; rel="prev"', f'{link(1)}; rel="first"']
        if rels:
            headers["Link"] = ", ".join(rels)
        return 200, [render(x) for x in chunk]

    def _list_issues(self, repo: Repo, query: dict[str, str], headers: dict[str, str]) -> tuple[int, list[Any]]:
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _validation("Issue", "state", "invalid")
        items = [i for i in repo.issues.values() if state == "all" or i.state == state]
        if query.get("since"):
            since = _parse_iso(query["since"])
            items = [i for i in items if i.updated_at >= since]
        if query.get("creator"):
            items = [i for i in items if i.user.login.lower() == query["creator"].lower()]
        if query.get("labels"):
            want = {x.strip().lower() for x in query["labels"].split(",") if x.strip()}
            items = [i for i in items if want <= {n.lower() for n in i.labels}]
        sort = query.get("sort", "created")
        keyf: dict[str, Callable[[Issue], Any]] = {
            "created": lambda i: (i.created_at, i.number),
            "updated": lambda i: (i.updated_at, i.number),
            "comments": lambda i: (len(i.comments), i.number),
        }
        if sort not in keyf:
            raise _validation("Issue", "sort", "invalid")
        items.sort(key=keyf[sort], reverse=query.get("direction", "desc") != "asc")
        return self._page(items, query, headers, f"/repos/{repo.full_name}/issues", lambda i: self._issue_json(repo, i))

    def _label(self, repo: Repo, name: str, color: str | None = None, description: str | None = None) -> Label:
        lb = repo.labels.get(name.lower())
        if lb is None:
            lb = Label(next(self._ids), name, color or "ededed", description)
            repo.labels[name.lower()] = lb
        return lb

    def _apply_labels(self, repo: Repo, issue: Issue, names: list[str], user: User, quiet: bool = False) -> None:
        out: list[str] = []
        for n in names:
            n = n.strip()
            if not n:
                continue
            if len(n) > MAX_LABEL:
                raise _validation("Label", "name", "invalid", value=n)
            lb = self._label(repo, n)
            if lb.name.lower() not in [x.lower() for x in out]:
                out.append(lb.name)
        before = {x.lower(): x for x in issue.labels}
        after = {x.lower(): x for x in out}
        issue.labels = out
        if quiet:
            return
        for k in after.keys() - before.keys():
            self._event(repo, issue, "labeled", user, label=repo.labels[k])
        for k in before.keys() - after.keys():
            self._event(repo, issue, "unlabeled", user, label=repo.labels[k])
        if before.keys() != after.keys():
            issue.updated_at = self.now()

    def _check_text(self, data: dict[str, Any], creating: bool) -> None:
        if creating and not str(data.get("title") or "").strip():
            raise _validation("Issue", "title", "missing_field")
        if "title" in data and len(str(data["title"])) > MAX_TITLE:
            raise _validation("Issue", "title", "custom", f"title is too long (maximum is {MAX_TITLE} characters)")
        if data.get("body") is not None and len(str(data["body"])) > MAX_BODY:
            raise _validation("Issue", "body", "custom", f"body is too long (maximum is {MAX_BODY} characters)")

    def _check_assignees(self, repo: Repo, names: list[str]) -> None:
        for a in names:
            if a not in repo.collaborators and a not in (u.login for u in self.users.values()):
                raise _validation("Issue", "assignees", "invalid", value=a)

    def _create_issue(self, repo: Repo, data: dict[str, Any], user: User) -> dict[str, Any]:
        self._count_write("create_issue")
        self._check_text(data, creating=True)
        assignees = list(data.get("assignees") or ([data["assignee"]] if data.get("assignee") else []))
        self._check_assignees(repo, assignees)
        now = self.now()
        number = max(repo.issues, default=0) + 1
        issue = Issue(
            next(self._ids), number, str(data["title"]), data.get("body"), user, now, now, assignees=assignees
        )
        repo.issues[number] = issue
        self.counters["issues_created"] += 1
        self._apply_labels(repo, issue, [str(n) for n in data.get("labels") or []], user, quiet=True)
        self._hook("issues", repo, {"action": "opened", "issue": self._issue_json(repo, issue)}, user)
        return self._issue_json(repo, issue)

    def _edit_issue(self, repo: Repo, issue: Issue, data: dict[str, Any], user: User) -> dict[str, Any]:
        self._count_write("edit_issue")
        self._check_text(data, creating=False)
        now = self.now()
        changes: dict[str, Any] = {}
        if "title" in data and data["title"] != issue.title:
            changes["title"] = {"from": issue.title}
            issue.title = str(data["title"])
        if "body" in data and data["body"] != issue.body:
            changes["body"] = {"from": issue.body}
            issue.body = data["body"]
        if "assignees" in data:
            self._check_assignees(repo, list(data["assignees"] or []))
            issue.assignees = list(data["assignees"] or [])
        if "labels" in data:
            self._apply_labels(repo, issue, [str(n) for n in data["labels"] or []], user)
        action = None
        if "state" in data:
            state = data["state"]
            if state not in ("open", "closed"):
                raise _validation("Issue", "state", "invalid", value=state)
            reason = data.get("state_reason")
            if state == "closed":
                reason = reason or "completed"
                if reason not in ("completed", "not_planned", "duplicate"):
                    raise _validation("Issue", "state_reason", "invalid", value=reason)
                if issue.state != "closed" or issue.state_reason != reason:
                    action = "closed"
                    issue.state, issue.state_reason = "closed", reason
                    issue.closed_at, issue.closed_by = now, user
            elif issue.state != "open":
                action = "reopened"
                issue.state, issue.state_reason, issue.closed_at, issue.closed_by = "open", "reopened", None, None
        if changes or action or "labels" in data or "assignees" in data:
            issue.updated_at = now
        if changes:
            self._hook(
                "issues", repo, {"action": "edited", "issue": self._issue_json(repo, issue), "changes": changes}, user
            )
        if action:
            self._event(repo, issue, action, user)
        return self._issue_json(repo, issue)

    def _create_comment(self, repo: Repo, issue: Issue, data: dict[str, Any], user: User) -> dict[str, Any]:
        self._count_write("create_comment")
        body = str(data.get("body") or "")
        if not body.strip():
            raise _validation("IssueComment", "body", "missing_field")
        if len(body) > MAX_BODY:
            raise _validation("IssueComment", "body", "custom", f"body is too long (maximum is {MAX_BODY} characters)")
        now = self.now()
        c = Comment(next(self._ids), body, user, now, now)
        issue.comments.append(c)
        issue.updated_at = now
        self._hook(
            "issue_comment",
            repo,
            {
                "action": "created",
                "issue": self._issue_json(repo, issue),
                "comment": self._comment_json(repo, issue, c),
            },
            user,
        )
        return self._comment_json(repo, issue, c)

    def _event(self, repo: Repo, issue: Issue, event: str, user: User, label: Label | None = None) -> None:
        e: dict[str, Any] = {
            "id": next(self._ids),
            "event": event,
            "actor": self._user_json(user),
            "created_at": _iso(self.now()),
            "commit_id": None,
            "commit_url": None,
            "url": f"{self.url}/repos/{repo.full_name}/issues/events/{len(issue.events) + 1}",
        }
        if label is not None:
            e["label"] = {"name": label.name, "color": label.color}
        if event == "closed":
            e["state_reason"] = issue.state_reason
        issue.events.append(e)
        payload: dict[str, Any] = {"action": event, "issue": self._issue_json(repo, issue)}
        if label is not None:
            payload["label"] = self._label_json(repo, label)
        self._hook("issues", repo, payload, user)

    # ------------------------------------------------------------------ JSON shapes
    def _user_json(self, u: User) -> dict[str, Any]:
        return {
            "login": u.login,
            "id": u.id,
            "node_id": f"U_{u.id}",
            "type": u.type,
            "site_admin": False,
            "url": f"{self.url}/users/{u.login}",
            "html_url": f"{self.url}/ui/users/{u.login}",
        }

    def _repo_json(self, r: Repo) -> dict[str, Any]:
        owner = next((u for u in self.users.values() if u.login == r.owner), None)
        return {
            "id": r.id,
            "node_id": f"R_{r.id}",
            "name": r.name,
            "full_name": r.full_name,
            "private": True,
            "owner": self._user_json(owner) if owner else {"login": r.owner, "id": 1, "type": "Organization"},
            "url": f"{self.url}/repos/{r.full_name}",
            "html_url": f"{self.url}/ui/{r.full_name}",
            "has_issues": True,
            "open_issues_count": sum(1 for i in r.issues.values() if i.state == "open"),
            "default_branch": "main",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": _iso(self.now()),
        }

    def _label_json(self, r: Repo, lb: Label) -> dict[str, Any]:
        return {
            "id": lb.id,
            "node_id": f"L_{lb.id}",
            "name": lb.name,
            "color": lb.color,
            "default": False,
            "description": lb.description,
            "url": f"{self.url}/repos/{r.full_name}/labels/{urllib.parse.quote(lb.name)}",
        }

    def _issue_json(self, r: Repo, i: Issue) -> dict[str, Any]:
        base = f"{self.url}/repos/{r.full_name}/issues/{i.number}"
        return {
            "url": base,
            "repository_url": f"{self.url}/repos/{r.full_name}",
            "labels_url": base + "/labels{/name}",
            "comments_url": base + "/comments",
            "events_url": base + "/events",
            "html_url": f"{self.url}/ui/{r.full_name}/issues/{i.number}",
            "id": i.id,
            "node_id": f"I_{i.id}",
            "number": i.number,
            "title": i.title,
            "user": self._user_json(i.user),
            "labels": [self._label_json(r, r.labels[n.lower()]) for n in i.labels],
            "state": i.state,
            "state_reason": i.state_reason,
            "locked": False,
            "assignee": ({"login": i.assignees[0], "id": 1, "type": "User"} if i.assignees else None),
            "assignees": [{"login": a, "id": 1, "type": "User"} for a in i.assignees],
            "milestone": None,
            "comments": len(i.comments),
            "created_at": _iso(i.created_at),
            "updated_at": _iso(i.updated_at),
            "closed_at": _iso(i.closed_at),
            "closed_by": self._user_json(i.closed_by) if i.closed_by else None,
            "author_association": "NONE",
            "active_lock_reason": None,
            "body": i.body,
            "performed_via_github_app": None,
            "timeline_url": base + "/timeline",
        }

    def _comment_json(self, r: Repo, i: Issue, c: Comment) -> dict[str, Any]:
        return {
            "id": c.id,
            "node_id": f"IC_{c.id}",
            "body": c.body,
            "user": self._user_json(c.user),
            "created_at": _iso(c.created_at),
            "updated_at": _iso(c.updated_at),
            "url": f"{self.url}/repos/{r.full_name}/issues/comments/{c.id}",
            "html_url": f"{self.url}/ui/{r.full_name}/issues/{i.number}#issuecomment-{c.id}",
            "issue_url": f"{self.url}/repos/{r.full_name}/issues/{i.number}",
            "author_association": "NONE",
        }

    # ------------------------------------------------------------------ webhooks
    def _hook(self, event: str, repo: Repo, payload: dict[str, Any], sender: User) -> None:
        if not self.hooks:
            return
        body = json.dumps(payload | {"repository": self._repo_json(repo), "sender": self._user_json(sender)}).encode()
        for url, secret in self.hooks:
            d = Delivery(str(uuid.uuid4()), event, url, secret, body)
            self.deliveries.append(d)
            self._enqueue(d)

    def _enqueue(self, d: Delivery) -> None:
        with self._delivery_cv:
            self._delivery_q.append(d)
            self._delivery_cv.notify_all()

    def _deliver_loop(self) -> None:
        while not self._stopping:
            with self._delivery_cv:
                while not self._delivery_q and not self._stopping:
                    self._delivery_cv.wait(0.1)
                if self._stopping:
                    return
                d = self._delivery_q[0]
            self._send(d)
            with self._delivery_cv:
                self._delivery_q.popleft()
                self._delivery_cv.notify_all()

    def _send(self, d: Delivery) -> None:
        sig = "sha256=" + hmac.new(d.secret.encode(), d.payload, hashlib.sha256).hexdigest()
        url = urllib.parse.urlsplit(d.url)
        headers = {  # GitHub's own casing (http.client keeps it; urllib would not)
            "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/fake", "X-GitHub-Event": d.event,
            "X-GitHub-Delivery": d.id, "X-Hub-Signature-256": sig, "X-GitHub-Hook-ID": "1",
        }  # fmt: skip
        d.attempts += 1
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
        try:
            conn.request("POST", url.path or "/", body=d.payload, headers=headers)
            resp = conn.getresponse()
            resp.read()
            d.status, d.error = resp.status, None if resp.status < 300 else resp.reason
        except OSError as e:
            d.status, d.error = None, str(e)
        finally:
            conn.close()

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        data = json.loads(raw) if raw else {}
        if path == "/_fake/stats":
            return 200, self.stats()
        if path == "/_fake/state":
            return 200, self.dump()
        if path == "/_fake/faults" and method == "POST":
            self.inject(**data)
            return 201, {"ok": True}
        if path == "/_fake/faults" and method == "DELETE":
            self.clear_faults()
            return 200, {"ok": True}
        if path == "/_fake/limits" and method == "POST":
            self.set_secondary_limits([tuple(x) for x in data.get("secondary", [])], int(data.get("status", 403)))
            if "latency_s" in data:
                self.latency_s = float(data["latency_s"])
            if "primary" in data:
                self.set_primary(**data["primary"])
            return 200, {"ok": True}
        if path == "/_fake/hooks" and method == "POST":
            self.add_hook(str(data["url"]), str(data["secret"]))
            return 201, {"ok": True}
        if path == "/_fake/deliveries" and method == "GET":
            return 200, [
                {"id": d.id, "event": d.event, "status": d.status, "attempts": d.attempts} for d in self.deliveries
            ]
        m = re.fullmatch(r"/_fake/deliveries/([^/]+)/redeliver", path)
        if m and method == "POST":
            d = self.redeliver(m.group(1))
            return 202, {"id": d.id}
        if path == "/_fake/counters" and method == "DELETE":
            self.reset_counters()
            return 200, {"ok": True}
        raise _err(404, "Not Found")

    # ------------------------------------------------------------------ HTML
    def _ui(self, query: dict[str, str]) -> str:
        e = html.escape
        with self._lock:
            refresh = query.get("refresh", "")
            meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh.isdigit() else ""
            out = [
                "<!doctype html><html><head><meta charset='utf-8'><title>GitHub fake: issues</title>",
                meta,
                "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em;color:#1f2328}"
                "h2{border-bottom:1px solid #d0d7de}details{border:1px solid #d0d7de;border-radius:6px;"
                "margin:.5em 0;padding:.4em .8em}summary{cursor:pointer}.open{color:#1a7f37}.closed{color:#8250df}"
                ".lbl{display:inline-block;border-radius:1em;padding:0 .6em;margin:0 .2em;font-size:12px;"
                "background:#ddf4ff;border:1px solid #54aeff66}pre{white-space:pre-wrap;word-break:break-word;"
                "background:#f6f8fa;padding:.6em;border-radius:6px}.c{border-left:3px solid #d0d7de;"
                "padding-left:.8em;margin:.6em 0}.meta{color:#59636e;font-size:12px}</style></head><body>",
                "<h1>GitHub fake</h1><p class='meta'>Read-only view of the fake's issues. "
                "Bodies and comments are shown as their raw Markdown.</p>",
            ]
            for r in self.repos.values():
                issues = sorted(r.issues.values(), key=lambda i: -i.number)
                n_open = sum(1 for i in issues if i.state == "open")
                out.append(
                    f"<h2>{e(r.full_name)} <span class='meta'>{n_open} open, {len(issues) - n_open} closed</span></h2>"
                )
                for i in issues:
                    reason = f" ({e(i.state_reason)})" if i.state == "closed" and i.state_reason else ""
                    labels = "".join(f"<span class='lbl'>{e(n)}</span>" for n in i.labels)
                    n_comments = f"{len(i.comments)} comment" + ("" if len(i.comments) == 1 else "s")
                    out.append(
                        f"<details id='issue-{i.number}'{' open' if i.state == 'open' else ''}>"
                        f"<summary><b>#{i.number}</b> {e(i.title)} "
                        f"<span class='{e(i.state)}'>[{e(i.state)}{reason}]</span> {labels} "
                        f"<span class='meta'>{n_comments} · opened {e(_iso(i.created_at) or '')} "
                        f"by {e(i.user.login)} · updated {e(_iso(i.updated_at) or '')}</span></summary>"
                        f"<pre>{e(i.body or '')}</pre>"
                    )
                    for c in i.comments:
                        out.append(
                            f"<div class='c'><div class='meta'>{e(c.user.login)} commented "
                            f"{e(_iso(c.created_at) or '')}</div><pre>{e(c.body)}</pre></div>"
                        )
                    out.append("</details>")
            out.append("</body></html>")
            return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the local GitHub REST fake.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--repo", action="append", default=None, help="owner/name (repeatable)")
    ap.add_argument("--hook", default=None, help="webhook URL to deliver issue events to")
    ap.add_argument("--hook-secret", default="")
    args = ap.parse_args()
    fake = FakeGitHub(repos=tuple(args.repo or ["acme/security-alerts"]))
    url = fake.start(port=args.port)
    if args.hook:
        fake.add_hook(args.hook, args.hook_secret)
    print(
        json.dumps({"url": url, "ui": url + "/ui", "bot_token": fake.bot.token, "human_token": fake.human.token}),
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
