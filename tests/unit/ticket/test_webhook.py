"""The GitHub webhook endpoint: signed deliveries only, each delivery once, humans' changes only."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from alertline.errors import Transient
from alertline.http import Request
from alertline.stage import Output
from services.ticket.humans import Webhook
from services.ticket.text import Marker

SECRET = b"s3cret"


class Sink:
    """Collects what the webhook publishes (stands in for the Kafka publisher)."""

    def __init__(self, fail: bool = False) -> None:
        self.out: list[Output] = []
        self.fail = fail

    def __call__(self, outputs: Iterable[Output]) -> int:
        if self.fail:
            raise Transient("kafka down", retry_after=1)
        got = list(outputs)
        self.out.extend(got)
        return len(got)


def payload(action: str = "closed", sender: str = "octo-responder", creator: str = "alertline-bot",
            body: str | None = None, **issue: Any) -> bytes:  # fmt: skip
    i: dict[str, Any] = {
        "number": 12, "state": "closed", "state_reason": "not_planned", "updated_at": "2026-11-23T12:00:00Z",
        "labels": [{"name": "alertline"}, {"name": "mine"}], "user": {"login": creator},
        "body": body if body is not None else Marker(identity="aws:abc", generation=1).render() + "\nbody",
    }  # fmt: skip
    i.update(issue)
    return json.dumps({"action": action, "issue": i, "repository": {"full_name": "acme/security-alerts"},
                       "sender": {"login": sender}}).encode()  # fmt: skip


def request(body: bytes, event: str = "issues", delivery: str = "d-1", secret: bytes = SECRET) -> Request:
    sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": sig, "x-github-event": event, "x-github-delivery": delivery}
    return Request("POST", "/github/webhook", headers, body)


def hook(sink: Sink) -> Webhook:
    return Webhook(SECRET, "alertline-bot", "p.tickets.events.v1", sink, CollectorRegistry())


def test_signed_delivery_is_accepted_and_published_to_the_issue_key() -> None:
    sink = Sink()
    resp = hook(sink)(request(payload()))
    assert resp.status == 202
    (out,) = sink.out
    assert out.key == "aws:abc" and out.topic == "p.tickets.events.v1" and out.schema == "ticket_event"
    ev = out.value
    assert isinstance(ev, dict)
    assert (ev["kind"], ev["action"], ev["issue_state"], ev["state_reason"]) == ("human", "closed", "closed",
                                                                                 "not_planned")  # fmt: skip
    assert ev["issue_number"] == 12 and ev["generation"] == 1 and ev["labels"] == ["alertline", "mine"]
    assert ev["delivery_id"] == "d-1" and ev["actor"] == "octo-responder"


def test_bad_or_missing_signature_is_rejected() -> None:
    sink = Sink()
    h = hook(sink)
    assert h(request(payload(), secret=b"wrong")).status == 401
    tampered = request(payload())
    tampered = Request("POST", tampered.path, tampered.headers, tampered.body.replace(b"closed", b"opened"))
    assert h(tampered).status == 401
    assert h(Request("POST", "/github/webhook", {"x-github-event": "issues"}, payload())).status == 401
    assert sink.out == []


def test_a_replayed_delivery_id_is_rejected() -> None:
    sink = Sink()
    h = hook(sink)
    assert h(request(payload(), delivery="abc")).status == 202
    assert h(request(payload(), delivery="abc")).status == 409
    assert len(sink.out) == 1


def test_our_own_changes_and_foreign_issues_are_ignored() -> None:
    sink = Sink()
    h = hook(sink)
    assert h(request(payload(sender="alertline-bot"), delivery="1")).status == 202
    assert h(request(payload(body="no marker"), delivery="2")).status == 202
    forged = payload(creator="mallory")  # a human's issue carrying a copy of our marker
    assert h(request(forged, delivery="3")).status == 202
    assert h(request(b"{}", event="ping", delivery="4")).status == 200
    assert h(request(b"{}", event="push", delivery="5")).status == 202
    assert sink.out == []


def test_storm_pages_route_to_their_group_key() -> None:
    sink = Sink()
    body = Marker(group="abc123", page=2).render() + "\n- [x] x <!-- m=id-1 -->"
    hook(sink)(request(payload(body=body)))
    (out,) = sink.out
    assert out.key == "group:abc123" and out.value["page"] == 2  # type: ignore[index]


def test_kafka_down_answers_503_and_a_redelivery_is_then_accepted() -> None:
    sink = Sink(fail=True)
    h = hook(sink)
    assert h(request(payload(), delivery="x")).status == 503
    sink.fail = False
    assert h(request(payload(), delivery="x")).status == 202


def test_garbage_payload_is_a_clear_400() -> None:
    resp = hook(Sink())(request(b"not json"))
    assert resp.status == 400 and b"bad_payload" in resp.body
