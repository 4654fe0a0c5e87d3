"""Normalization rules per source, on the documented wire formats in tests/fixtures/deliveries."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import pytest

from alertline.identity import identity_of
from services.ingest.normalize.view import summary
from tests.unit.ingest.support import NOW, body_of, doc, fixture_paths, one, run


# ---------------------------------------------------------------- every fixture
@pytest.mark.parametrize("rel", fixture_paths())
def test_every_fixture_normalizes_to_alerts_that_round_trip_through_the_avro_codec(rel, codec):
    result = run(body_of(rel))
    assert result.alerts and not result.errors
    for i, alert in enumerate(result.alerts):
        data = codec.encode("alert", alert)
        assert codec.decode("alert", data) == alert
        assert alert["raw"]["index"] >= i
        assert alert["status"] in ("active", "resolved", "suppressed")
        assert alert["severity"]["label"] in ("informational", "low", "medium", "high", "critical")
        assert 0 <= alert["severity"]["score"] <= 100
        assert alert["identity"] == identity_of(alert["identity"].split(":")[0], alert["source_id"])
        json.dumps(summary(alert))  # the CLI view is plain JSON


# ---------------------------------------------------------------- Security Hub (ASFF)
def test_security_hub_event_with_several_findings_gives_one_alert_per_finding():
    result = run(body_of("securityhub/multi-finding.json"))
    assert [a["product"] for a in result.alerts] == ["inspector", "access-analyzer", "guardduty"]
    assert [a["raw"]["index"] for a in result.alerts] == [0, 1, 2]
    assert len({a["identity"] for a in result.alerts}) == 3


def test_asff_identity_is_product_arn_and_id_never_the_event_id():
    event = doc("securityhub/ec2-19-open-ports.json")
    f = event["detail"]["findings"][0]
    first = one(event)
    assert first["source_id"] == f"{f['ProductArn']}|{f['Id']}"
    assert first["identity"] == identity_of("aws.securityhub", first["source_id"])
    event["id"] = "another-delivery-id"
    event["time"] = "2026-11-23T10:00:00Z"
    assert one(event)["identity"] == first["identity"]


def test_redelivery_in_another_envelope_keeps_identity_and_revision():
    direct = one(body_of("guardduty/port-probe.json"))
    raw_sqs = one(body_of("sqs/raw-body-guardduty-port-probe.json"))
    firehose = [a for a in run(body_of("s3/findings-export-firehose.json.gz")).alerts if a["product"] == "guardduty"]
    assert (raw_sqs["identity"], raw_sqs["revision"]) == (direct["identity"], direct["revision"])
    assert (firehose[0]["identity"], firehose[0]["revision"]) == (direct["identity"], direct["revision"])


def test_a_new_version_of_a_finding_changes_revision_but_not_identity():
    event = doc("securityhub/ec2-19-open-ports.json")
    before = one(event)
    event["detail"]["findings"][0]["UpdatedAt"] = "2026-11-23T10:13:58.604Z"
    event["detail"]["findings"][0]["Workflow"]["Status"] = "NOTIFIED"
    after = one(event)
    assert after["identity"] == before["identity"]
    assert after["revision"] != before["revision"]


def test_cross_region_aggregated_finding_takes_account_and_region_from_the_finding():
    alert = one(body_of("securityhub/cross-region-aggregated.json"))
    assert (alert["account"], alert["region"]) == ("444455556666", "eu-west-1")
    assert alert["account_name"] == "analytics-eu"
    assert "region=eu-west-1" in alert["console_url"]


@pytest.mark.parametrize(
    ("rel", "status", "raw"),
    [
        ("securityhub/ec2-19-open-ports.json", "active", {"Workflow.Status": "NEW", "Compliance.Status": "FAILED"}),
        ("securityhub/archived.json", "resolved", {"RecordState": "ARCHIVED"}),
        ("securityhub/ec2-18-passed-resolved.json", "resolved", {"Compliance.Status": "PASSED"}),
        ("securityhub/workflow-suppressed.json", "resolved", {"Workflow.Status": "SUPPRESSED"}),
    ],
)
def test_security_hub_status_follows_record_state_workflow_and_compliance(rel, status, raw):
    alert = one(body_of(rel))
    assert alert["status"] == status
    assert raw.items() <= alert["status_raw"].items()


def test_security_hub_workflow_resolved_alone_resolves():
    event = doc("securityhub/ec2-19-open-ports.json")
    event["detail"]["findings"][0]["Workflow"]["Status"] = "RESOLVED"
    assert one(event)["status"] == "resolved"


def test_ec2_19_consolidated_control_finding_carries_control_id_and_the_ports_open_to_the_world():
    alert = one(body_of("securityhub/ec2-19-open-ports.json"))
    assert alert["control_id"] == "EC2.19"
    assert "EC2.19" not in alert["title"]
    # 22 and 3389 to 0.0.0.0/0; 8000-9000 to ::/0 keeps the high-risk ports in it;
    # 5432 is open to 10.20.0.0/16 only.
    assert alert["indicators"]["ports"] == [22, 3389, 8080, 8088, 8888]
    assert alert["indicators"]["ips"] == []  # a CIDR is never an indicator
    assert alert["resources"][0]["name"] == "bastion-legacy"
    assert alert["severity"] == {"label": "critical", "score": 90, "source_label": "CRITICAL", "source_score": 90.0}


@pytest.mark.parametrize(
    "fields",
    [
        {"ProductFields": {"ControlId": "EC2.19"}},
        {"ProductFields": {"aws/securityhub/ControlId": "EC2.19"}},
        {"GeneratorId": "security-control/EC2.19"},
    ],
)
def test_control_id_falls_back_to_product_fields_and_generator_id(fields):
    event = doc("securityhub/ec2-19-open-ports.json")
    f = event["detail"]["findings"][0]
    del f["Compliance"]["SecurityControlId"]
    f["ProductFields"] = {}
    f["GeneratorId"] = "arn:aws:securityhub:::ruleset/x"
    f.update(fields)
    assert one(event)["control_id"] == "EC2.19"


def test_asff_network_out_treats_the_destination_as_the_other_party():
    alert = one(body_of("securityhub/clock-skew.json"))
    assert alert["indicators"]["ips"] == ["198.51.100.14"]
    assert alert["indicators"]["domains"] == ["c2.example.net"]
    assert alert["resources"][0]["addresses"] == ["10.20.9.31"]
    assert alert["product"] == "acme/edr"


def test_asff_guardduty_finding_gives_the_caller_ip_and_principal():
    alert = run(body_of("securityhub/multi-finding.json")).alerts[2]
    assert alert["indicators"]["ips"] == ["203.0.113.58"]
    assert alert["indicators"]["users"] == ["alice.admin"]
    assert alert["severity"]["source_score"] == 5.0


def test_security_hub_console_url_links_to_the_finding():
    alert = one(body_of("securityhub/ec2-19-open-ports.json"))
    url = alert["console_url"]
    assert url.startswith("https://console.aws.amazon.com/securityhub/home?region=us-east-1#/findings?search=Id%3D")
    assert "security-control%252FEC2.19%252Ffinding" in url


def test_severity_from_normalized_when_label_is_missing():
    event = doc("securityhub/ec2-19-open-ports.json")
    event["detail"]["findings"][0]["Severity"] = {"Normalized": 45}
    assert one(event)["severity"]["label"] == "medium"
    assert one(event)["severity"]["score"] == 45


# ---------------------------------------------------------------- GuardDuty
def test_guardduty_port_probe_sources_are_indicators_and_the_instance_addresses_are_not():
    alert = one(body_of("guardduty/port-probe.json"))
    assert alert["indicators"]["ips"] == ["198.51.100.23", "203.0.113.77"]
    assert alert["indicators"]["ports"] == [22, 3389]
    assert alert["resources"][0]["addresses"] == ["10.20.1.25", "192.0.2.10"]
    assert alert["resources"][0]["id"] == "i-0b1c2d3e4f5a6b7c8"
    assert alert["resources"][0]["name"] == "bastion-1"
    assert alert["identity"] == identity_of("aws.guardduty", doc("guardduty/port-probe.json")["detail"]["arn"])
    assert alert["status_raw"] == {"service.archived": "false", "service.count": "17"}


def test_guardduty_api_call_from_a_tor_exit_gives_caller_ip_user_and_threat_list():
    alert = one(body_of("guardduty/tor-api-call.json"))
    assert alert["indicators"]["ips"] == ["198.51.100.200"]
    assert alert["indicators"]["users"] == ["ci-deployer"]
    assert alert["finding_type"] == "UnauthorizedAccess:IAMUser/TorIPCaller"
    assert alert["attributes"]["threatListName"] == "TorIPs"
    assert alert["resources"][0]["type"] == "AwsIamAccessKey"
    assert "fId=e4c8b2f6a0d4e8c2b6f0a4d8e2c6b0f4" in alert["console_url"]


def test_guardduty_archived_finding_is_suppressed_and_keeps_its_inbound_port():
    alert = one(body_of("guardduty/archived.json"))
    assert alert["status"] == "suppressed"
    assert alert["status_raw"]["service.archived"] == "true"
    assert alert["indicators"]["ips"] == ["203.0.113.140"]
    assert alert["indicators"]["ports"] == [22]
    assert alert["region"] == "eu-central-1"


@pytest.mark.parametrize(
    ("number", "label", "score"),
    [(1.0, "low", 10), (3.9, "low", 39), (4.0, "medium", 40), (6.9, "medium", 69), (7.0, "high", 70),
     (8.9, "high", 89), (9.0, "critical", 90), (10.0, "critical", 100), (0.5, "low", 5)],
)  # fmt: skip
def test_guardduty_severity_follows_its_documented_bands(number, label, score):
    event = doc("guardduty/port-probe.json")
    event["detail"]["severity"] = number
    sev = one(event)["severity"]
    assert (sev["label"], sev["score"], sev["source_score"]) == (label, score, number)


# ---------------------------------------------------------------- Security Hub V2 (OCSF)
def test_ocsf_detection_finding_identity_and_indicators():
    event = doc("securityhub-v2/detection-finding.json")
    f = event["detail"]["findings"][0]
    alert = one(event)
    assert alert["identity"] == identity_of(
        "aws.securityhub.ocsf", f"{f['metadata']['product']['uid']}|111122223333|{f['finding_info']['uid']}"
    )
    assert alert["product"] == "guardduty"
    assert alert["indicators"]["domains"] == ["update.c2.example.org"]
    assert alert["indicators"]["ips"] == []  # the querying instance's own private address
    assert alert["severity"]["label"] == "high"
    assert alert["finding_type"] == "Backdoor:EC2/C&CActivity.B!DNS"


def test_ocsf_compliance_finding_that_passed_is_resolved_with_its_control():
    alert = one(body_of("securityhub-v2/compliance-finding-passed.json"))
    assert (alert["status"], alert["control_id"], alert["product"]) == ("resolved", "S3.5", "securityhub")


@pytest.mark.parametrize(("status_id", "status"), [(1, "active"), (2, "active"), (3, "suppressed"), (4, "resolved")])
def test_ocsf_status_id_maps_to_status(status_id, status):
    event = doc("securityhub-v2/detection-finding.json")
    event["detail"]["findings"][0]["status_id"] = status_id
    assert one(event)["status"] == status


# ---------------------------------------------------------------- SCC
def test_scc_v1_and_v2_names_of_the_same_finding_give_the_same_identity():
    v1 = one(body_of("scc/v1-open-firewall-active.json"))
    v2 = one(body_of("scc/v2-open-firewall-active.json"))
    assert v1["identity"] == v2["identity"]
    assert v1["source_id"] == (
        "organizations/200000000001/sources/7182838485868788899/findings/3f1c0a9e8d7b6c5a4f3e2d1c0b9a8f7e"
    )
    assert (v1["account"], v1["region"]) == (v2["account"], v2["region"]) == ("shop-prod-4471", "global")
    assert v1["indicators"]["ports"] == v2["indicators"]["ports"] == [22, 3389]
    assert v1["control_id"] == "OPEN_FIREWALL"
    assert v1["organization"] == "200000000001"


@pytest.mark.parametrize(
    ("rel", "status"),
    [
        ("scc/v1-open-firewall-active.json", "active"),
        ("scc/v1-public-bucket-inactive.json", "resolved"),
        ("scc/v1-muted.json", "suppressed"),
    ],
)
def test_scc_status_inactive_is_resolved_and_muted_is_suppressed(rel, status):
    assert one(body_of(rel))["status"] == status


def test_scc_inactive_wins_over_muted_and_v2_static_mute_suppresses():
    msg = doc("scc/v1-muted.json")
    msg["finding"]["state"] = "INACTIVE"
    assert one(msg)["status"] == "resolved"
    v2 = doc("scc/v2-open-firewall-active.json")
    v2["finding"]["mute"] = "UNDEFINED"
    v2["finding"]["muteInfo"]["staticMute"]["state"] = "MUTED"
    assert one(v2)["status"] == "suppressed"


def test_scc_threat_finding_indicators_exclude_the_vm_private_address():
    alert = one(body_of("scc/v2-bad-ip-active.json"))
    assert alert["indicators"]["ips"] == ["198.51.100.66"]
    assert alert["region"] == "europe-west1"
    assert alert["console_url"].startswith("https://console.cloud.google.com/security/command-center/findingsv2;name=")


def test_scc_caller_ip_and_principal_become_indicators():
    alert = one(body_of("scc/v1-iam-anomalous-grant.json"))
    assert alert["indicators"]["ips"] == ["203.0.113.201"]
    assert alert["indicators"]["users"] == ["ops-bot@shop-prod-4471.iam.gserviceaccount.com"]


@pytest.mark.parametrize("placeholder", ["private", "gce-internal-ip", ""])
def test_scc_caller_ip_placeholders_are_not_errors(placeholder):
    msg = doc("scc/v1-iam-anomalous-grant.json")
    msg["finding"]["access"]["callerIp"] = placeholder
    assert one(msg)["indicators"]["ips"] == []


def test_pubsub_push_and_pull_bodies_unwrap_to_the_notification():
    push = one(body_of("pubsub/push.json"))
    assert push["identity"] == one(body_of("scc/v2-bad-ip-active.json"))["identity"]
    pulled = run(body_of("pubsub/pull-response.json")).alerts
    assert [a["status"] for a in pulled] == ["active", "suppressed"]
    assert pulled[0]["identity"] == one(body_of("scc/v1-open-firewall-active.json"))["identity"]


# ---------------------------------------------------------------- Defender for Cloud
def test_defender_flat_shape():
    alert = one(body_of("defender/flat-ssh-brute-force.json"))
    assert (alert["provider"], alert["product"], alert["account"]) == (
        "azure",
        "defender",
        "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    )
    system_alert_id = "2517238401236549999_2f6c0e1a-7d3b-4c58-9a2e-5b4d8c7f1e06"
    assert alert["identity"] == identity_of("azure.defender", system_alert_id)
    assert alert["indicators"]["ips"] == ["198.51.100.45"]
    assert alert["indicators"]["ports"] == [22]
    assert alert["resources"][0]["type"] == "Microsoft.Compute/virtualMachines"
    assert alert["region"] == "westeurope"
    assert alert["organization"] == "8e7d6c5b-4a39-4281-b0c9-d8e7f6a5b4c3"
    assert "\r" not in alert["description"]


def test_defender_rest_shape():
    alert = one(body_of("defender/rest-storage-tor-access.json"))
    assert alert["status"] == "active"
    assert alert["indicators"]["ips"] == ["203.0.113.9"]
    assert alert["resources"][0]["type"] == "Microsoft.Storage/storageAccounts"
    assert alert["console_url"].startswith("https://portal.azure.com/")
    assert alert["attributes"]["AlertType"] == "Storage.Blob_TorAnomaly"


def test_defender_resolved_and_dismissed_are_resolved_and_keep_the_identity_whatever_the_case():
    active = one(body_of("defender/flat-ssh-brute-force.json"))
    resolved = one(body_of("defender/flat-resolved.json"))
    assert resolved["status"] == "resolved"
    assert resolved["identity"] == active["identity"]
    assert resolved["revision"] != active["revision"]
    assert one(body_of("defender/rest-dismissed.json"))["status"] == "resolved"


def test_defender_array_and_records_wrapper_give_every_alert():
    assert [a["status"] for a in run(body_of("defender/array.json")).alerts] == ["active", "resolved"]
    assert [a["status"] for a in run(body_of("defender/records-wrapper.json")).alerts] == ["active", "resolved"]


# ---------------------------------------------------------------- envelopes
def test_lambda_sqs_event_unwraps_every_body_in_order():
    alerts = run(body_of("sqs/lambda-sqs-event.json")).alerts
    assert [a["product"] for a in alerts] == ["inspector", "access-analyzer", "guardduty", "guardduty"]
    assert [a["raw"]["index"] for a in alerts] == [0, 1, 2, 3]


def test_sns_notification_unwraps_the_message():
    assert one(body_of("sqs/sns-notification.json"))["control_id"] == "EC2.19"
    lambda_sns = {"Records": [{"EventSource": "aws:sns", "Sns": doc("sqs/sns-notification.json")}]}
    assert one(lambda_sns)["control_id"] == "EC2.19"


def test_scc_list_findings_results_are_accepted():
    msg = doc("scc/v1-muted.json")
    result = run({"listFindingsResults": [{"finding": msg["finding"], "resource": msg["resource"]}]})
    assert [a["status"] for a in result.alerts] == ["suppressed"]


def test_s3_objects_ndjson_and_gzip_of_concatenated_events():
    assert len(run(body_of("s3/findings-export.ndjson")).alerts) == 3
    assert len(run(body_of("s3/findings-export-firehose.json.gz")).alerts) == 3
    multi_member = gzip.compress(body_of("securityhub/archived.json")) + gzip.compress(
        body_of("guardduty/archived.json")
    )
    assert len(run(multi_member).alerts) == 2


def test_bare_findings_and_the_findings_list_are_accepted():
    f = doc("securityhub/archived.json")["detail"]["findings"][0]
    assert one(f)["control_id"] == "S3.8"
    assert len(run({"Findings": [f, f]}).alerts) == 2
    assert one(doc("guardduty/tor-api-call.json")["detail"])["product"] == "guardduty"
    assert one(doc("securityhub-v2/detection-finding.json")["detail"]["findings"][0])["product"] == "guardduty"


# ---------------------------------------------------------------- time
def test_future_updated_at_is_clamped_to_receipt_time_and_flagged():
    alert = one(body_of("securityhub/clock-skew.json"))
    assert alert["clock_skew"] is True
    assert alert["updated_at"] == NOW
    assert alert["updated_at_raw"] == "2031-04-01T00:00:00Z"
    later = run(body_of("securityhub/clock-skew.json"), received_at=NOW + timedelta(hours=1)).alerts[0]
    assert later["updated_at"] > alert["updated_at"]  # a later receipt still orders later
    assert later["revision"] == alert["revision"]


def test_past_updated_at_is_kept_as_sent():
    alert = one(body_of("guardduty/port-probe.json"))
    assert alert["clock_skew"] is False
    assert alert["updated_at_raw"] == "2026-11-23T09:46:02.541Z"
    assert alert["updated_at"].isoformat() == "2026-11-23T09:46:02.541000+00:00"


def test_missing_updated_at_falls_back_to_receipt_time():
    event = doc("securityhub/archived.json")
    del event["detail"]["findings"][0]["UpdatedAt"]
    alert = one(event)
    assert (alert["updated_at"], alert["updated_at_raw"], alert["clock_skew"]) == (NOW, None, False)


# ---------------------------------------------------------------- indicators
def test_private_and_loopback_actor_addresses_are_not_indicators():
    event = doc("guardduty/port-probe.json")
    details = event["detail"]["service"]["action"]["portProbeAction"]["portProbeDetails"]
    details[0]["remoteIpDetails"]["ipAddressV4"] = "10.1.2.3"
    details[1]["remoteIpDetails"]["ipAddressV4"] = "127.0.0.1"
    assert one(event)["indicators"]["ips"] == []


def test_ipv6_actor_addresses_are_normalized():
    event = doc("guardduty/tor-api-call.json")
    remote = event["detail"]["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]
    remote["ipAddressV4"] = None
    remote["ipAddressV6"] = "2001:DB8:0:0::1"
    assert one(event)["indicators"]["ips"] == ["2001:db8::1"]
