"""What humans do on GitHub, brought to the partition that owns the issue's state.

The webhook endpoint and the periodic reconcile run outside the Kafka handler, so they never
touch state: they publish ``TicketEvent(kind=human)`` records to ``tickets.events``, keyed by the
issue's state key (identity, or ``group:<hash>``), and the handler folds them in, serialized with
everything else about that issue (docs/decisions/0504).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from alertline.clock import Clock, utcnow
from alertline.errors import Transient
from alertline.http import Request, Response
from alertline.stage import Output
from services.ticket.ports import ListedIssue, Tracker
from services.ticket.text import Marker, parse_marker

log = logging.getLogger(__name__)
Publish = Callable[[Iterable[Output]], int]


def _parse_time(s: str | None) -> datetime:
    if not s:
        return datetime.now(UTC)
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def human_event(
    repository: str,
    marker: Marker,
    number: int,
    action: str,
    state: str | None,
    state_reason: str | None,
    labels: Sequence[str],
    observed_at: datetime,
    actor: str | None = None,
    delivery_id: str | None = None,
    seen_at: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    key = f"group:{marker.group}" if marker.group is not None else (marker.identity or "")
    ev: dict[str, Any] = {
        "kind": "human", "key": key, "repository": repository, "issue_number": number,
        "generation": marker.generation, "page": marker.page if marker.group is not None else 0, "action": action,
        "issue_state": state, "state_reason": state_reason, "labels": list(labels), "actor": actor,
        "observed_at": observed_at, "delivery_id": delivery_id, "seen_at": seen_at, "group_key": None,
        "group_title": None,
        "member": None,
    }  # fmt: skip
    return key, ev


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "alertline_ticket_webhook_deliveries", "GitHub webhook deliveries by outcome.", ["outcome"],
            registry=registry,
        )  # fmt: skip


class Webhook:
    """``POST /github/webhook``: verify ``X-Hub-Signature-256``, reject replayed delivery ids,
    publish issue changes made by anyone but us."""

    def __init__(
        self,
        secret: bytes,
        login: str,
        events_topic: str,
        publish: Publish,
        registry: CollectorRegistry,
        remember: int = 50_000,
    ) -> None:
        if not secret:
            raise ValueError("webhook secret must not be empty")
        self.secret = secret
        self.login = login
        self.events_topic = events_topic
        self.publish = publish
        self.metrics = WebhookMetrics(registry)
        self.remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def _answer(self, status: int, outcome: str, text: str) -> Response:
        self.metrics.deliveries.labels(outcome).inc()
        return Response(status, (json.dumps({"result": outcome, "detail": text}) + "\n").encode(), "application/json")

    def verify(self, body: bytes, signature: str | None) -> bool:
        if not signature or not signature.startswith("sha256="):
            return False
        want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want.encode(), signature.strip().encode())

    def __call__(self, req: Request) -> Response:
        if not self.verify(req.body, req.headers.get("x-hub-signature-256")):
            return self._answer(401, "bad_signature", "X-Hub-Signature-256 does not match the body")
        delivery = req.headers.get("x-github-delivery", "")
        if not delivery:
            return self._answer(400, "no_delivery_id", "X-GitHub-Delivery missing")
        with self._lock:
            if delivery in self._seen:
                return self._answer(409, "replayed", f"delivery {delivery} was already accepted")
        event = req.headers.get("x-github-event", "")
        result = self._handle(event, req.body, delivery)
        if result.status < 300:
            with self._lock:
                self._seen[delivery] = None
                while len(self._seen) > self.remember:
                    self._seen.popitem(last=False)
        return result

    def _handle(self, event: str, body: bytes, delivery: str) -> Response:
        if event == "ping":
            return self._answer(200, "pong", "hello GitHub")
        if event != "issues":
            return self._answer(202, "ignored", f"event {event!r} is not used")
        try:
            payload = json.loads(body)
            issue = payload["issue"]
            repository = payload["repository"]["full_name"]
            sender = (payload.get("sender") or {}).get("login")
        except (ValueError, KeyError, TypeError) as exc:
            return self._answer(400, "bad_payload", f"not an issues payload: {exc}")
        marker = parse_marker(issue.get("body"))
        creator = (issue.get("user") or {}).get("login")
        if marker is None or creator != self.login:
            return self._answer(202, "ignored", "not an Alertline issue")
        if sender == self.login:
            return self._answer(202, "ignored", "our own change")
        key, ev = human_event(
            repository, marker, int(issue["number"]), str(payload.get("action") or "edited"), issue.get("state"),
            issue.get("state_reason"), [lb.get("name", "") for lb in issue.get("labels") or []],
            _parse_time(issue.get("updated_at")), sender, delivery,
        )  # fmt: skip
        try:
            self.publish([Output(self.events_topic, ev, key=key, schema="ticket_event")])
        except Transient as exc:
            log.warning("webhook event not published", extra={"delivery": delivery, "error": str(exc)})
            return self._answer(503, "unavailable", "try again later (the reconcile will also catch up)")
        log.info("human change received", extra={"delivery": delivery, "key": key, "action": ev["action"]})
        return self._answer(202, "accepted", key)


class Reconciler:
    """Every ``interval``, list our issues updated since the last pass and publish each as a
    ``sync`` observation: whatever webhooks were missed, the state catches up."""

    def __init__(
        self,
        tracker: Tracker,
        repositories: Sequence[str],
        events_topic: str,
        publish: Publish,
        interval_s: float,
        lookback_s: float,
        overlap_s: float = 120.0,
        clock: Clock = utcnow,
    ) -> None:
        self.tracker = tracker
        self.repositories = list(repositories)
        self.events_topic = events_topic
        self.publish = publish
        self.interval_s = interval_s
        self.lookback_s = lookback_s
        self.overlap_s = overlap_s
        self.clock = clock
        self.last_sync: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        n = 0
        for repo in self.repositories:
            started = self.clock()
            last = self.last_sync.get(repo)
            since = (
                datetime.fromtimestamp(started.timestamp() - self.lookback_s, UTC)
                if last is None
                else datetime.fromtimestamp(last.timestamp() - self.overlap_s, UTC)
            )
            batch: list[Output] = []
            for item in self.tracker.list_ours(repo, since=since):
                batch.append(self._event(item, started))
                if len(batch) >= 500:
                    n += self.publish(batch)
                    batch = []
            if batch:
                n += self.publish(batch)
            self.last_sync[repo] = started
        return n

    def _event(self, item: ListedIssue, seen_at: datetime) -> Output:
        o = item.observation
        key, ev = human_event(item.repository, item.marker, o.number, "sync", o.state, o.state_reason, o.labels,
                              o.updated_at, seen_at=seen_at)  # fmt: skip
        return Output(self.events_topic, ev, key=key, schema="ticket_event")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.interval_s
            t0 = time.monotonic()
            try:
                n = self.run_once()
                log.info("reconciled", extra={"events": n, "seconds": round(time.monotonic() - t0, 2)})
            except Transient as exc:
                wait = max(wait, exc.retry_after or 0.0)
                log.warning("reconcile postponed", extra={"error": str(exc), "retry_in_s": wait})
            except Exception:
                log.exception("reconcile failed; will retry")
            self._stop.wait(wait)
