"""Inventory exports read from an S3-compatible bucket (moto) or a file, published to the real
broker; bad records dead-lettered with their bytes and cause; a broken export resolves nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from alertline.avro import SingleObjectCodec
from alertline.clock import FixedClock
from alertline.settings import KafkaSettings
from alertline.testing.kafka import read_all
from alertline.topics import topic
from services.scan.app import run_scan
from services.scan.settings import ArchiveSettings, InventorySource, ScanSettings
from tests.integration.scan.support import ARCHIVE_BUCKET, CREDS, Moto, alerts, base_session

pytestmark = pytest.mark.kafka

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "scan"
GCP_RESOURCES = (FIX / "gcp" / "cai-resource-export.jsonl").read_bytes()
GCP_IAM = (FIX / "gcp" / "cai-iam-policy-export.jsonl").read_bytes()
AZURE = (FIX / "azure" / "arg-rest-response.json").read_bytes()


def settings(cloud: Moto, archive: Moto, kafka: KafkaSettings, **sources: InventorySource) -> ScanSettings:
    return ScanSettings(
        kafka=kafka,
        inventory=sources,
        archive=ArchiveSettings(bucket=ARCHIVE_BUCKET, endpoint_url=archive.url, region="us-east-1"),
        state_read_timeout_s=30,
    )


def s3(m: Moto) -> Any:
    return boto3.client("s3", endpoint_url=m.url, region_name="us-east-1", **CREDS)


def names(got: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, str, str]]:
    return {(a["control_id"], a["resources"][0]["name"], a["status"]) for _, a in got}


def test_exports_in_a_bucket_raise_the_expected_alerts_and_are_archived_as_delivered(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str
) -> None:
    bucket = s3(cloud)
    bucket.create_bucket(Bucket="exports")
    bucket.put_object(Bucket="exports", Key="gcp/org-7301/resource.json", Body=GCP_RESOURCES)
    bucket.put_object(Bucket="exports", Key="gcp/org-7301/iam_policy.json", Body=GCP_IAM)
    bucket.put_object(Bucket="exports", Key="azure/tenant.json", Body=AZURE)
    cfg = settings(
        cloud,
        archive_moto,
        kafka_settings,
        gcp_org=InventorySource(format="gcp-cai", uri="s3://exports/gcp/org-7301/", endpoint_url=cloud.url),
        azure_tenant=InventorySource(format="azure-arg", uri="s3://exports/azure/tenant.json", endpoint_url=cloud.url),
    )
    report = run_scan(cfg, session=base_session())
    assert report.ok, report.summary()

    got = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    assert names(got) == {
        ("gcp-firewall-open-admin-port", "allow-ssh-from-anywhere", "active"),
        ("gcp-firewall-open-admin-port", "legacy-db-access", "active"),
        ("gcp-storage-public-bucket", "shop-prod-4821-assets", "active"),
        ("gcp-storage-public-bucket", "data-lake-7733-exports", "active"),
        ("azure-nsg-open-admin-port", "web-nsg", "active"),
        ("azure-nsg-open-admin-port", "db-nsg", "active"),
        ("azure-nsg-open-admin-port", "jump-nsg", "active"),
        ("azure-storage-blob-public-access", "shopassets01", "active"),
    }
    by_name = {a["resources"][0]["name"]: a for _, a in got}
    ssh = by_name["allow-ssh-from-anywhere"]
    assert (ssh["provider"], ssh["account"], ssh["indicators"]["ports"]) == ("gcp", "shop-prod-4821", [22])
    assert ssh["attributes"]["scan.unit"] == "gcp-cai:gcp_org"
    assert by_name["shop-prod-4821-assets"]["attributes"]["scan.matched"] == (
        "roles/storage.objectViewer granted to allUsers"
    )
    nsg = by_name["db-nsg"]
    assert nsg["provider"] == "azure" and nsg["region"] == "westeurope" and nsg["indicators"]["ports"] == [1433, 3306]

    # The exports themselves are the raw deliveries: archived byte for byte, content-addressed.
    archive = s3(archive_moto)
    for body, line_of in ((GCP_RESOURCES, "allow-ssh-from-anywhere"), (AZURE, "db-nsg")):
        sha = hashlib.sha256(body).hexdigest()
        a = by_name[line_of]
        assert a["raw"]["sha256"] == sha and a["raw"]["uri"].endswith(f"/{sha}.json")
        key = a["raw"]["uri"].removeprefix(f"s3://{ARCHIVE_BUCKET}/")
        assert key.startswith("raw/scan/") and archive.get_object(Bucket=ARCHIVE_BUCKET, Key=key)["Body"].read() == body
    assert GCP_RESOURCES.split(b"\n")[ssh["raw"]["index"] - 1].find(b"allow-ssh-from-anywhere") > 0


def test_a_rule_fixed_in_the_next_export_resolves_exactly_that_alert(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    export = tmp_path / "export.jsonl"
    export.write_bytes(GCP_RESOURCES)
    cfg = settings(cloud, archive_moto, kafka_settings, org=InventorySource(format="gcp-cai", uri=str(export)))
    clock = FixedClock(datetime.now(UTC))
    assert run_scan(cfg, clock=clock, session=base_session()).ok
    first = alerts(kafka_bootstrap, topic(prefix, "alerts"))

    lines = [json.loads(x) for x in GCP_RESOURCES.splitlines()]
    for a in lines:
        if a["name"].endswith("/allow-ssh-from-anywhere"):
            a["resource"]["data"]["sourceRanges"] = ["35.235.240.0/20"]
    export.write_text("".join(json.dumps(a) + "\n" for a in lines))
    clock.advance(3600)
    report = run_scan(cfg, clock=clock, session=base_session())
    assert report.ok

    after = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    seen = {(k, a["revision"]) for k, a in first}
    new = [a for k, a in after if (k, a["revision"]) not in seen]
    assert [(a["resources"][0]["name"], a["status"]) for a in new] == [("allow-ssh-from-anywhere", "resolved")]


def test_bad_records_are_dead_lettered_and_a_broken_export_resolves_nothing(
    cloud: Moto, archive_moto: Moto, kafka_settings: KafkaSettings, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    export = tmp_path / "export.jsonl"
    export.write_bytes(GCP_RESOURCES)
    cfg = settings(cloud, archive_moto, kafka_settings, org=InventorySource(format="gcp-cai", uri=str(export)))
    assert run_scan(cfg, session=base_session()).ok
    first = alerts(kafka_bootstrap, topic(prefix, "alerts"))
    assert len(first) == 2

    # The next export is damaged: only the SSH rule survives, next to garbage. legacy-db-access
    # is absent, but a damaged export cannot vouch for its absence.
    bad = (FIX / "gcp" / "cai-bad.jsonl").read_bytes()
    export.write_bytes(bad)
    report = run_scan(cfg, session=base_session())
    assert not report.ok
    (u,) = report.units
    assert (u.outcome, u.bad_records, u.resolved, u.held) == ("incomplete", 4, 0, 1)
    assert len(alerts(kafka_bootstrap, topic(prefix, "alerts"))) == len(first), "nothing resolved, nothing re-raised"

    codec = SingleObjectCodec()
    dead = read_all(kafka_bootstrap, topic(prefix, "scan.dlq"), timeout=20)
    letters = sorted((codec.decode("dead_letter", m.value()) for m in dead), key=lambda d: d["offset"])
    assert [d["offset"] for d in letters] == [2, 3, 4, 6], "offset = line number in the export"
    lines = bad.split(b"\n")
    for d in letters:
        assert d["service"] == "scan" and d["source"] == str(export)
        assert d["value"] == lines[d["offset"] - 1], "the original bytes of the line"
        assert d["raw_uri"] == f"s3://{ARCHIVE_BUCKET}/raw/scan/" + d["raw_uri"].split("/raw/scan/")[1]
        assert d["raw_uri"].endswith(hashlib.sha256(bad).hexdigest() + ".json")
    assert letters[0]["error_message"].startswith("malformed JSON")
    h = dict(dead[0].headers())
    assert h["alertline.service"] == b"scan" and h["alertline.error.class"].endswith(b"LineError")

    # A missing export is reported, and resolves nothing either.
    export.unlink()
    report = run_scan(cfg, session=base_session())
    assert not report.ok and "No such file" in report.units[0].errors[0]
    assert report.units[0].held == 2
