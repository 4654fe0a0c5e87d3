"""GitHub signs a webhook's body, not its X-GitHub-Delivery header: whoever captured one signed
delivery can send it again under a fresh delivery id, and the signature still matches. The
replay check (tests/unit/ticket/test_webhook.py) stops the same id; these show what stops the
rest: a replayed human change older than what the ticket state already knows changes nothing,
and the signature check itself only takes the SHA-256 header, exactly."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from alertline.http import Request
from services.ticket import domain
from services.ticket.humans import Webhook
from tests.unit.ticket.test_webhook import SECRET, Sink, payload, request

T_CLOSED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T_REOPENED = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def hook(sink: Sink) -> Webhook:
    return Webhook(SECRET, "alertline-bot", "p.tickets.events.v1", sink, CollectorRegistry())


def test_a_captured_close_replayed_under_a_new_delivery_id_cannot_close_a_reopened_issue() -> None:
    sink = Sink()
    h = hook(sink)
    closed = payload(action="closed", state="closed", state_reason="completed", updated_at="2026-11-23T12:00:00Z")
    assert h(request(closed, delivery="d-1")).status == 202
    state = domain.new_state("aws:abc", "acme/security-alerts", T_CLOSED, issue_number=12, generation=1)
    plan = domain.on_human(state, sink.out[0].value, T_CLOSED)  # type: ignore[arg-type]
    assert plan.state is not None and plan.state["state"] == "closed"

    # A human reopens the issue; then someone replays the captured close with a new delivery id.
    reopened = payload(action="reopened", state="open", state_reason="reopened", updated_at="2026-11-23T13:00:00Z")
    assert h(request(reopened, delivery="d-2")).status == 202
    plan = domain.on_human(plan.state, sink.out[1].value, T_REOPENED)  # type: ignore[arg-type]
    assert plan.state is not None and plan.state["state"] == "open"

    assert h(request(closed, delivery="d-1-replayed")).status == 202, "the signature covers the body only"
    replayed = domain.on_human(plan.state, sink.out[2].value, T_REOPENED)  # type: ignore[arg-type]
    assert replayed.state is None and replayed.note == "stale or unchanged observation"
    assert replayed.actions == []


@pytest.mark.parametrize(
    "headers",
    [
        {"x-hub-signature": "sha1=" + hmac.new(SECRET, payload(), hashlib.sha1).hexdigest()},  # legacy SHA-1 only
        {"x-hub-signature-256": "sha256=" + hmac.new(SECRET, payload(), hashlib.sha256).hexdigest().upper()},
        {"x-hub-signature-256": hmac.new(SECRET, payload(), hashlib.sha256).hexdigest()},  # no "sha256=" prefix
        {"x-hub-signature-256": "sha256=" + hmac.new(SECRET, payload(), hashlib.sha256).hexdigest()[:32]},
        {"x-hub-signature-256": "sha256=" + hmac.new(b"", payload(), hashlib.sha256).hexdigest()},  # empty key
        {"x-hub-signature-256": "sha512=" + hmac.new(SECRET, payload(), hashlib.sha512).hexdigest()},
        {"x-hub-signature-256": ""},
    ],
    ids=["sha1-only", "uppercase-hex", "no-prefix", "truncated", "empty-key", "sha512", "empty"],
)
def test_only_an_exact_sha256_signature_with_our_secret_is_accepted(headers: dict[str, str]) -> None:
    sink = Sink()
    req = Request(
        "POST", "/github/webhook", headers | {"x-github-event": "issues", "x-github-delivery": "d"}, payload()
    )
    resp = hook(sink)(req)
    assert resp.status == 401 and b"bad_signature" in resp.body
    assert sink.out == []


def test_a_rejected_delivery_does_not_use_up_its_delivery_id() -> None:
    sink = Sink()
    h = hook(sink)
    assert h(request(payload(), delivery="d-9", secret=b"forged")).status == 401
    assert h(request(payload(), delivery="d-9")).status == 202, "a forger cannot block GitHub's real delivery"
    assert len(sink.out) == 1


def test_an_empty_webhook_secret_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Webhook(b"", "alertline-bot", "t", Sink(), CollectorRegistry())
