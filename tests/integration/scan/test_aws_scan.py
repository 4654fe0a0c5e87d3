"""AWS scans with real boto3 calls against moto (server mode) across two accounts reached by
assuming a role, publishing to the real broker and archiving to a moto S3 bucket."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from alertline.identity import identity_of
from alertline.settings import KafkaSettings
from alertline.testing.kafka import read_all
from alertline.topics import topic
from services.scan.app import run_scan
from services.scan.scanner import ScanMetrics
from tests.integration.scan.support import (
    ARCHIVE_BUCKET,
    CREDS,
    REGION,
    A,
    B,
    Moto,
    World,
    account_clients,
    alerts,
    base_session,
    build_world,
    expected,
    key_of,
    later_clock,
    settings_for,
)

pytestmark = pytest.mark.kafka


def state_entries(bootstrap: str, prefix: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for m in read_all(bootstrap, topic(prefix, "scan.state"), timeout=20):
        out[(m.key() or b"").decode()] = m.value()
    return out


def test_two_accounts_scanned_through_assumed_roles_raise_the_expected_alerts(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str
) -> None:
    world = build_world(cloud)
    clock = later_clock()
    metrics = ScanMetrics()
    report = run_scan(
        settings_for(cloud, archive_moto, kafka_settings), session=base_session(), clock=clock, metrics=metrics
    )
    assert report.ok, report.summary()
    assert sorted(u.unit for u in report.units) == [
        f"aws:{A}:{REGION}", f"aws:{A}:global", f"aws:{B}:{REGION}", f"aws:{B}:global",
    ]  # fmt: skip

    got = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    assert {key_of(a) for _, a in got} == expected(world)
    assert len(got) == len(expected(world)), "one alert per finding, no duplicates"
    for key, a in got:
        assert key == a["identity"] == identity_of("alertline.scan", a["source_id"])
        assert a["status"] == "active" and a["product"] == "scan" and a["provider"] == "aws"
        assert a["source_id"] == f"{a['control_id']}:{a['attributes']['scan.resource_key']}"
        assert "Remediation:" in a["description"]

    web = next(a for _, a in got if key_of(a)[2] == "web")
    assert web["resources"][0]["id"] == f"arn:aws:ec2:{REGION}:{A}:security-group/{world.a_web_sg}"
    assert web["attributes"]["evidence.group_id"] == world.a_web_sg
    assert web["indicators"]["ports"] == [22] and web["account_name"] == "prod" and web["region"] == REGION
    jump = next(a for _, a in got if key_of(a)[2] == "jump")
    assert jump["indicators"]["ports"] == [3389] and jump["account"] == B
    bucket = next(a for _, a in got if key_of(a)[2] == "a-public")
    assert bucket["resources"][0]["tags"] == {"team": "web"} and bucket["resources"][0]["region"] == "us-east-1"
    assert bucket["attributes"]["evidence.policy_is_public"] == "true"
    key = next(a for _, a in got if a["control_id"] == "aws-iam-access-key-old")
    assert key["attributes"]["evidence.access_key_id"] == world.a_key_id

    # Raw results archived first, content-addressed under the ingest layout; every alert
    # points at the archived bytes and at its resource inside them.
    s3 = boto3.client("s3", endpoint_url=archive_moto.url, region_name="us-east-1", **CREDS)
    day = clock.now.strftime("%Y/%m/%d")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=ARCHIVE_BUCKET, Prefix="raw/scan/")["Contents"]}
    assert len(keys) == 4 and all(k.startswith(f"raw/scan/{day}/") for k in keys)
    for _, a in got:
        k = a["raw"]["uri"].removeprefix(f"s3://{ARCHIVE_BUCKET}/")
        body = s3.get_object(Bucket=ARCHIVE_BUCKET, Key=k)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == a["raw"]["sha256"] and k.endswith(f"/{a['raw']['sha256']}.json")
        doc = json.loads(body)
        assert doc["complete"] is True and doc["unit"] == a["attributes"]["scan.unit"]
        assert doc["resources"][a["raw"]["index"]]["id"] == a["resources"][0]["id"]

    state = state_entries(kafka_bootstrap, prefix)
    assert set(state) == {a["identity"] for _, a in got}
    assert (
        metrics.registry.get_sample_value("alertline_scan_units_total", {"provider": "aws", "outcome": "complete"}) == 4
    )
    assert metrics.registry.get_sample_value("alertline_scan_failing_findings") == len(got)


def test_a_setting_fixed_between_two_scans_resolves_exactly_that_alert(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str
) -> None:
    world = build_world(cloud)
    settings = settings_for(cloud, archive_moto, kafka_settings)
    clock = later_clock()
    assert run_scan(settings, session=base_session(), clock=clock).ok
    first = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    web = next(a for _, a in first if key_of(a)[2] == "web")

    account_clients(cloud, A)["ec2"].revoke_security_group_ingress(
        GroupId=world.a_web_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    clock.advance(3600)
    report = run_scan(settings, session=base_session(), clock=clock)
    assert report.ok and report.summary()["resolved"] == 1

    after = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    new = since(first, after)
    assert [(k, a["status"]) for k, a in new] == [(web["identity"], "resolved")]
    (_, resolved) = new[0]
    assert resolved["attributes"]["scan.resolution"] == "passing"
    assert resolved["first_seen"] == web["first_seen"] and resolved["revision"] != web["revision"]
    state = state_entries(kafka_bootstrap, prefix)
    assert state[web["identity"]] is None, "the state entry is tombstoned"
    assert sum(v is not None for v in state.values()) == len(first) - 1

    # Nothing changed: a third scan publishes nothing, and archives onto the same objects.
    archive = boto3.client("s3", endpoint_url=archive_moto.url, region_name="us-east-1", **CREDS)
    objects = archive.list_objects_v2(Bucket=ARCHIVE_BUCKET, Prefix="raw/scan/")["KeyCount"]
    clock.advance(60)
    assert run_scan(settings, session=base_session(), clock=clock).ok
    assert len(alerts(kafka_bootstrap, topic(prefix, "alerts"))) == len(after)
    assert archive.list_objects_v2(Bucket=ARCHIVE_BUCKET, Prefix="raw/scan/")["KeyCount"] == objects


def fix_everything(cloud: Moto, world: World) -> None:
    a, b = account_clients(cloud, A), account_clients(cloud, B)
    a["ec2"].revoke_security_group_ingress(
        GroupId=world.a_web_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    a["s3"].delete_bucket_policy(Bucket="a-public")
    a["iam"].delete_access_key(UserName="deploy", AccessKeyId=world.a_key_id)
    b["ec2"].revoke_security_group_ingress(
        GroupId=world.b_rdp_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
    )
    b["s3"].put_bucket_acl(Bucket="b-acl", ACL="private")
    b["ec2"].enable_ebs_encryption_by_default()


def since(
    before: list[tuple[str, dict[str, Any]]], now: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    """Records in ``now`` that were not in ``before`` (a topic read back is ordered per partition only)."""
    seen = {(k, a["revision"]) for k, a in before}
    return [(k, a) for k, a in now if (k, a["revision"]) not in seen]


def published_since(bootstrap: str, prefix: str, before: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [a for _, a in since(before, alerts(bootstrap, topic(prefix, "alerts")))]


def test_an_account_whose_role_cannot_be_assumed_resolves_nothing_and_fails_the_run(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str
) -> None:
    world = build_world(cloud)
    settings = settings_for(cloud, archive_moto, kafka_settings)
    clock = later_clock()
    assert run_scan(settings, session=base_session(), clock=clock).ok
    first = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    fix_everything(cloud, world)

    def deny_b(client: Any) -> None:
        # The role in B now refuses us (its trust policy changed): STS answers AccessDenied.
        def refuse(params: dict[str, Any], **_: Any) -> None:
            if f":{B}:" in params.get("RoleArn", ""):
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": f"not authorized to perform sts:AssumeRole on {B}"}},
                    "AssumeRole",
                )

        client.meta.events.register("provide-client-params.sts.AssumeRole", refuse)

    metrics = ScanMetrics()
    clock.advance(3600)
    report = run_scan(settings, session=base_session(), clock=clock, client_hook=deny_b, metrics=metrics)
    assert not report.ok
    by_unit = {u.unit: u for u in report.units}
    assert by_unit[f"aws:{B}:global"].outcome == by_unit[f"aws:{B}:{REGION}"].outcome == "incomplete"
    assert (
        "sts.AssumeRole" in by_unit[f"aws:{B}:global"].errors[0]
        and "AccessDenied" in by_unit[f"aws:{B}:global"].errors[0]
    )
    assert by_unit[f"aws:{A}:global"].outcome == by_unit[f"aws:{A}:{REGION}"].outcome == "complete"

    new = published_since(kafka_bootstrap, prefix, first)
    assert {a["account"] for a in new} == {A}, "B, not scanned, resolves nothing"
    assert {key_of(a) for a in new} == {
        (A, "aws-sg-open-admin-port", "web"),
        (A, "aws-s3-public-bucket", "a-public"),
        (A, "aws-iam-access-key-old", f"deploy/{world.a_key_id}"),
    }
    assert all(a["status"] == "resolved" for a in new)
    assert (
        metrics.registry.get_sample_value("alertline_scan_units_total", {"provider": "aws", "outcome": "incomplete"})
        == 2
    )
    assert metrics.registry.get_sample_value("alertline_scan_resolutions_held_total", {"provider": "aws"}) == 4
    assert metrics.registry.get_sample_value("alertline_scan_last_success_timestamp_seconds") == 0

    # B's role works again: now B's fixes resolve too.
    alerts_before = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    clock.advance(3600)
    assert run_scan(settings, session=base_session(), clock=clock).ok
    newer = published_since(kafka_bootstrap, prefix, alerts_before)
    assert {key_of(a) for a in newer} == {
        (B, "aws-sg-open-admin-port", "jump"),
        (B, "aws-s3-public-bucket", "b-acl"),
        (B, "aws-ebs-default-encryption-off", f"{B} {REGION}"),
    }


def test_the_cloud_going_away_mid_scan_resolves_nothing_the_scan_could_not_vouch_for(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str
) -> None:
    world = build_world(cloud)
    settings = settings_for(cloud, archive_moto, kafka_settings)
    clock = later_clock()
    assert run_scan(settings, session=base_session(), clock=clock).ok
    first = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    fix_everything(cloud, world)

    stopped: list[str] = []

    def stop_mid_unit(client: Any) -> None:
        # A's regional unit has listed its security groups; the endpoint dies before the
        # next call. Units run one at a time in order: A global, A region, B global, B region.
        def stop(**_: Any) -> None:
            if not stopped:
                stopped.append("ec2.DescribeNetworkInterfaces")
                cloud.stop()

        client.meta.events.register("before-call.ec2.DescribeNetworkInterfaces", stop)

    clock.advance(3600)
    report = run_scan(settings, session=base_session(), clock=clock, client_hook=stop_mid_unit)
    assert stopped and not report.ok
    outcomes = {u.unit: u.outcome for u in report.units}
    assert outcomes == {
        f"aws:{A}:global": "complete",
        f"aws:{A}:{REGION}": "incomplete",
        f"aws:{B}:global": "incomplete",
        f"aws:{B}:{REGION}": "incomplete",
    }
    new = published_since(kafka_bootstrap, prefix, first)
    assert {key_of(a) for a in new} == {
        (A, "aws-s3-public-bucket", "a-public"),
        (A, "aws-iam-access-key-old", f"deploy/{world.a_key_id}"),
    }, "only the unit that completed before the outage resolves"
    partial = next(u for u in report.units if u.unit == f"aws:{A}:{REGION}")
    assert partial.held == 1 and "DescribeNetworkInterfaces" in partial.errors[0]
    state = {k for k, v in state_entries(kafka_bootstrap, prefix).items() if v is not None}
    assert len(state) == len(first) - 2


def test_organizations_lists_the_accounts_to_scan(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    org = boto3.client("organizations", endpoint_url=cloud.url, region_name="us-east-1", **CREDS)
    org.create_organization(FeatureSet="ALL")
    made = org.create_account(Email="payments@example.com", AccountName="payments")["CreateAccountStatus"]
    new_id = made["AccountId"]
    settings = settings_for(cloud, archive_moto, kafka_settings, organizations=True, exclude_accounts=[B])
    report = run_scan(settings, dry_run=True, session=base_session(), clock=later_clock())
    assert report.ok
    scanned = {u.unit.split(":")[1] for u in report.units}
    assert new_id in scanned and A in scanned and B not in scanned
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(a["account"] == new_id and a["account_name"] == "payments" for a in printed)
