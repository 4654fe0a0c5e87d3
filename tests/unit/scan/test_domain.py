"""Findings and resolution, without any cloud or broker: resource documents in, alerts out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alertline.avro import SingleObjectCodec
from alertline.identity import identity_of
from alertline.model import RawRef
from services.scan.checks import default_dir, load_checks
from services.scan.domain import (
    Collected,
    CollectError,
    Prior,
    Unit,
    archive_key,
    evaluate,
    prior_from_json,
    prior_to_json,
    reconcile,
)

CHECKS = load_checks([default_dir()])
UNIT = Unit("aws:111111111111:eu-west-1", "aws", "111111111111", "eu-west-1")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RAW: RawRef = {"uri": "s3://archive/raw/scan/2026/11/23/ab.json", "sha256": "ab" * 32, "index": 0}


def sg(gid: str, *rules: tuple[str, int, int, list[str]]) -> dict[str, Any]:
    arn = f"arn:aws:ec2:eu-west-1:111111111111:security-group/{gid}"
    return {
        "provider": "aws", "kind": "AwsEc2SecurityGroup", "type": "AwsEc2SecurityGroup", "id": arn, "key": arn,
        "name": f"name-{gid}", "account": "111111111111", "account_name": "prod", "organization": None,
        "region": "eu-west-1", "tags": {"team": "web"}, "addresses": ["203.0.113.7"], "console_url": None,
        "config": {}, "facts": {"group_id": gid, "vpc_id": "vpc-1", "rules": [
            {"name": None, "direction": "ingress", "action": "allow", "protocol": p, "from_port": lo, "to_port": hi,
             "sources": src, "priority": None, "disabled": False}
            for p, lo, hi, src in rules
        ]},
    }  # fmt: skip


def collected(*docs: dict[str, Any], errors: bool = False) -> Collected:
    c = Collected(UNIT, resources=list(docs), covered={"AwsEc2SecurityGroup", "AwsEc2EbsEncryptionByDefault"})  # type: ignore[arg-type]
    if errors:
        c.errors.append(
            CollectError("ec2.DescribeNetworkInterfaces", "botocore.exceptions.EndpointConnectionError", "x")
        )
    return c


def scan(c: Collected, prior: dict[str, Prior], now: datetime = T0, checks: Any = CHECKS, always: bool = False):  # type: ignore[no-untyped-def]
    findings = evaluate(c.resources, checks)
    plan = reconcile(c, findings, prior, checks, now=now, raw_for=lambda d: RAW, unit_raw=RAW, always_publish=always)
    state = dict(prior)
    state.update(plan.keep)
    for i in plan.drop:
        state.pop(i)
    return plan, state


OPEN_SSH = ("tcp", 22, 22, ["0.0.0.0/0"])
OPEN_ALL = ("all", 0, 65535, ["::/0"])
WEB = ("tcp", 443, 443, ["0.0.0.0/0"])
PRIVATE_DB = ("tcp", 5432, 5432, ["10.0.0.0/8"])


def test_an_open_admin_port_becomes_an_alert_keyed_by_check_and_resource() -> None:
    plan, _ = scan(collected(sg("sg-1", OPEN_SSH, WEB), sg("sg-2", WEB, PRIVATE_DB)), {})
    assert [a["status"] for a in plan.publish] == ["active"]
    a = plan.publish[0]
    arn = "arn:aws:ec2:eu-west-1:111111111111:security-group/sg-1"
    assert a["identity"] == identity_of("alertline.scan", f"aws-sg-open-admin-port:{arn}")
    assert a["source_id"] == f"aws-sg-open-admin-port:{arn}"
    assert (a["provider"], a["product"], a["control_id"]) == ("aws", "scan", "aws-sg-open-admin-port")
    assert a["severity"] == {"label": "high", "score": 80, "source_label": "high", "source_score": 80.0}
    assert a["indicators"]["ports"] == [22]
    assert a["resources"] == [
        {"type": "AwsEc2SecurityGroup", "id": arn, "name": "name-sg-1", "region": "eu-west-1",
         "tags": {"team": "web"}, "addresses": ["203.0.113.7"]}
    ]  # fmt: skip
    assert a["account"] == "111111111111" and a["account_name"] == "prod"
    assert "Remediation:" in a["description"] and "allow tcp port 22 from 0.0.0.0/0" in a["description"]
    assert a["attributes"]["scan.check_id"] == "aws-sg-open-admin-port"
    assert a["attributes"]["evidence.group_id"] == "sg-1"
    assert a["finding_type"] == "network-exposure"
    SingleObjectCodec().encode("alert", a)  # a valid Avro alert


def test_an_all_protocols_rule_exposes_every_watched_port() -> None:
    plan, _ = scan(collected(sg("sg-1", OPEN_ALL)), {})
    assert {22, 3389, 3306, 5432, 1433, 27017, 6379, 9200} <= set(plan.publish[0]["indicators"]["ports"])


def test_the_same_scan_twice_publishes_nothing_the_second_time() -> None:
    c = collected(sg("sg-1", OPEN_SSH))
    _, state = scan(c, {})
    plan, state2 = scan(c, state, now=T0 + timedelta(hours=1))
    assert plan.publish == [] and plan.unchanged == 1
    assert state2 == state


def test_always_publish_repeats_unchanged_findings_with_the_same_revision() -> None:
    c = collected(sg("sg-1", OPEN_SSH))
    first, state = scan(c, {})
    plan, _ = scan(c, state, now=T0 + timedelta(hours=1), always=True)
    assert [a["revision"] for a in plan.publish] == [first.publish[0]["revision"]]


def test_a_changed_finding_gets_a_new_revision_but_keeps_identity_and_first_seen() -> None:
    first, state = scan(collected(sg("sg-1", OPEN_SSH)), {})
    plan, _ = scan(
        collected(sg("sg-1", OPEN_SSH, ("tcp", 3389, 3389, ["0.0.0.0/0"]))), state, now=T0 + timedelta(hours=1)
    )
    (a,) = plan.publish
    assert a["identity"] == first.publish[0]["identity"]
    assert a["revision"] != first.publish[0]["revision"]
    assert a["first_seen"] == T0 and a["updated_at"] == T0 + timedelta(hours=1)
    assert a["indicators"]["ports"] == [22, 3389] and plan.changed == 1


def test_a_setting_fixed_in_a_complete_scan_resolves_exactly_that_alert() -> None:
    first, state = scan(collected(sg("sg-1", OPEN_SSH), sg("sg-2", OPEN_SSH)), {})
    fixed = T0 + timedelta(hours=1)
    plan, state2 = scan(collected(sg("sg-1", WEB), sg("sg-2", OPEN_SSH)), state, now=fixed)
    (r,) = plan.publish
    sg1 = next(a for a in first.publish if "sg-1" in a["source_id"])
    assert r["identity"] == sg1["identity"] and r["status"] == "resolved"
    assert r["status_raw"] == {"compliance": "PASSED"} and r["attributes"]["scan.resolution"] == "passing"
    assert r["revision"] != sg1["revision"] and r["updated_at"] == fixed and r["first_seen"] == T0
    assert plan.drop == [sg1["identity"]] and set(state2) == set(state) - {sg1["identity"]}


def test_a_deleted_resource_resolves_as_absent() -> None:
    _, state = scan(collected(sg("sg-1", OPEN_SSH)), {})
    plan, state2 = scan(collected(), state)
    assert plan.publish[0]["attributes"]["scan.resolution"] == "absent"
    assert plan.publish[0]["status_raw"] == {"compliance": "NOT_FOUND"} and state2 == {}


def test_an_incomplete_scan_resolves_nothing_and_keeps_the_state() -> None:
    _, state = scan(collected(sg("sg-1", OPEN_SSH), sg("sg-2", OPEN_SSH)), {})
    plan, state2 = scan(collected(sg("sg-1", WEB), errors=True), state)
    assert plan.publish == [] and plan.resolved == 0 and plan.held == 2
    assert state2 == state


def test_an_incomplete_scan_still_raises_what_it_did_find() -> None:
    plan, state = scan(collected(sg("sg-3", OPEN_SSH), errors=True), {})
    assert [a["status"] for a in plan.publish] == ["active"] and len(state) == 1


def test_a_retired_check_or_an_uncovered_kind_resolves_nothing() -> None:
    _, state = scan(collected(sg("sg-1", OPEN_SSH)), {})
    without = [c for c in CHECKS if c.id != "aws-sg-open-admin-port"]
    plan, _ = scan(collected(), state, checks=without)
    assert plan.publish == [] and plan.held == 1
    c = collected()
    c.covered = {"AwsEc2EbsEncryptionByDefault"}
    plan, _ = scan(c, state)
    assert plan.publish == [] and plan.held == 1


def test_state_entries_round_trip_through_json() -> None:
    _, state = scan(collected(sg("sg-1", OPEN_SSH)), {})
    ((ident, p),) = state.items()
    back = prior_from_json(ident, prior_to_json(p))
    assert back == p


def test_archive_keys_follow_the_ingest_layout() -> None:
    assert archive_key("raw/", "scan", T0, "ab" * 32) == f"raw/scan/2026/11/23/{'ab' * 32}.json"
