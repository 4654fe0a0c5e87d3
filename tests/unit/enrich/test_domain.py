"""Selection, change detection and summaries: the pure part of enrich."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertline.errors import BadInput
from alertline.stage import Context, PartitionState, Record
from alertline.testing.samples import alert
from services.enrich.domain import (
    Selection,
    describe_change,
    exposure_finding,
    exposure_ports,
    exposure_summary,
    exposure_view,
    is_exposure,
    is_intrusion,
    new_state,
    recheck,
)
from services.enrich.engine import Engine
from services.enrich.service import EnrichService

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SEL = Selection()
OPEN_HTTP = {
    "target": "203.0.113.5:443", "port": 443, "refused": None, "tcp": {"state": "open", "ms": 3},
    "tls": {"subject": "CN=a", "issuer": "CN=a", "sans": [], "not_after": "2031-01-01T00:00:00Z", "sha256": "ab"},
    "http": {"status": 200, "title": "Admin", "server": "nginx", "final_url": "https://203.0.113.5/",
             "redirects": [], "redirect_refused": None},
    "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 12,
}  # fmt: skip


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"control_id": "EC2.19"}, True),
        ({"control_id": "EC2.13"}, True),
        ({"control_id": None, "finding_type": "Recon:EC2/PortProbeUnprotectedPort"}, True),
        ({"control_id": None, "finding_type": "OPEN_FIREWALL"}, True),
        ({"control_id": None, "finding_type": "OPEN_REDIS_PORT"}, True),
        ({"control_id": "IAM.1", "finding_type": "Software and Configuration Checks"}, False),
    ],
)
def test_exposure_alerts_are_selected_by_control_or_type(over: dict, expected: bool) -> None:  # type: ignore[type-arg]
    assert is_exposure(alert(1, **over), SEL) is expected


def test_ports_come_from_the_alert_or_the_control_then_defaults_bounded() -> None:
    assert exposure_ports(alert(1), SEL, 8) == [22, 3389]
    no_ports = {"ips": [], "domains": [], "users": [], "ports": []}
    assert exposure_ports(alert(1, control_id="EC2.13", indicators=no_ports), SEL, 8) == [22]
    assert exposure_ports(alert(1, control_id=None, finding_type="OPEN_REDIS_PORT", indicators=no_ports), SEL, 8) == [
        6379
    ]
    assert exposure_ports(alert(1, control_id="EC2.19", indicators=no_ports), SEL, 2) == [22, 80]
    many = {**no_ports, "ports": list(range(1, 100))}
    assert len(exposure_ports(alert(1, indicators=many), SEL, 8)) == 8


def test_intrusion_needs_an_actor_and_a_threat_source() -> None:
    actor = {"ips": ["203.0.113.1"], "domains": [], "users": [], "ports": []}
    assert is_intrusion(alert(1, product="guardduty", indicators=actor), SEL)
    assert is_intrusion(alert(1, finding_type="Backdoor:EC2/C&CActivity.B", indicators=actor), SEL)
    assert not is_intrusion(alert(1, product="guardduty"), SEL), "no actor named"
    assert not is_intrusion(alert(1, indicators=actor), SEL), "a config finding is not an intrusion"


def test_fingerprint_ignores_timings_and_collapses_closed_with_filtered() -> None:
    later = {**OPEN_HTTP, "observed_at": "2026-11-24T10:00:00Z", "duration_ms": 999, "tcp": {"state": "open", "ms": 80}}
    assert exposure_view(later) == exposure_view(OPEN_HTTP)
    closed = {**OPEN_HTTP, "tcp": {"state": "closed"}}
    filtered = {**OPEN_HTTP, "tcp": {"state": "filtered"}}
    assert exposure_view(closed) == exposure_view(filtered)
    assert exposure_view(closed) != exposure_view(OPEN_HTTP)


def test_summaries_read_like_a_responder_would_write_them() -> None:
    assert exposure_summary(OPEN_HTTP) == (
        "203.0.113.5:443 open — HTTPS 200 'Admin' (nginx) — TLS cert CN=a by CN=a, expires 2031-01-01T00:00:00Z",
        "exposed",
    )
    closed = {**OPEN_HTTP, "tcp": {"state": "closed"}}
    assert describe_change(OPEN_HTTP, closed) == "port 443 now closed on 203.0.113.5:443 (was open)"
    assert describe_change(closed, OPEN_HTTP).startswith("port 443 now open on 203.0.113.5:443: 203.0.113.5:443 open")
    moved = {**OPEN_HTTP, "http": {**OPEN_HTTP["http"], "status": 301, "title": None}}
    assert describe_change(OPEN_HTTP, moved) == (
        "203.0.113.5:443: HTTP status changed: 200 → 301; HTTP title changed: 'Admin' → None"
    )


def test_recheck_reports_each_changed_target_once_and_ignores_errors() -> None:
    a = alert(1)
    f = exposure_finding(OPEN_HTTP, NOW)
    st = new_state(a, {}, [{"host": "203.0.113.5", "port": 443, "context": {}}], [f], NOW, timedelta(hours=1))  # type: ignore[arg-type]
    same = recheck(st, [exposure_finding(OPEN_HTTP, NOW)], NOW, timedelta(hours=1))
    assert same.changes == [] and same.state["fingerprint"] == st["fingerprint"]
    from services.enrich.domain import error_finding

    err = recheck(st, [error_finding("exposure", "203.0.113.5:443", "boom", NOW)], NOW, timedelta(hours=1))
    assert err.changes == [] and err.state["results"] == st["results"], "an outage is not a change"
    closed = recheck(st, [exposure_finding({**OPEN_HTTP, "tcp": {"state": "closed"}}, NOW)], NOW, timedelta(hours=1))
    assert [c["changed_from"] for c in closed.changes] == [f.fingerprint]
    assert closed.state["fingerprint"] != st["fingerprint"]
    assert recheck(closed.state, [exposure_finding({**OPEN_HTTP, "tcp": {"state": "filtered"}}, NOW)], NOW,
                   timedelta(hours=1)).changes == []  # fmt: skip


def test_record_key_that_is_not_the_identity_is_bad_input() -> None:
    svc = EnrichService(Engine([]), None, SEL, "out")
    ev = {"alert": alert(1), "decision": {"action": "ticket"}}
    rec = Record("in", 0, 0, b"someone-else", ev, {}, 0)
    with pytest.raises(BadInput, match="is not the alert identity"):
        list(svc.handle(rec, Context(state=PartitionState())))
