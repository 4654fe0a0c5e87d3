"""Bad input never crashes normalization: the whole delivery raises ``NormalizeError`` with a
clear cause, or one bad finding among good ones becomes a ``FindingError``."""

from __future__ import annotations

import gzip
import json

import pytest

from alertline.errors import BadInput, NormalizeError
from services.ingest.normalize import RawLocation, envelope, normalize
from tests.unit.ingest.support import NOW, body_of, doc, one, run


def fails(body, match: str) -> NormalizeError:
    with pytest.raises(NormalizeError, match=match) as info:
        run(body)
    assert isinstance(info.value, BadInput)  # the runtime dead-letters it with its cause
    return info.value


# ---------------------------------------------------------------- not JSON at all
@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "empty delivery"),
        (b"  \n\t ", "empty delivery"),
        (b'{"detail-type": "GuardDuty Finding", "detail": {', r"malformed JSON at line 1 column \d+"),
        (b"{'single': 'quotes'}", "malformed JSON"),
        (b'{"severity": NaN}', "malformed JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["empty", "whitespace", "truncated", "single-quotes", "nan", "not-utf8", "deep-nesting"],
)
def test_a_delivery_that_is_not_json_raises_with_its_cause(body, match):
    fails(body, match)


def test_gzip_garbage_truncation_and_trailing_bytes_are_named():
    fails(b"\x1f\x8b" + b"\x00garbage-after-the-magic", "gzip: corrupt stream")
    good = gzip.compress(body_of("guardduty/archived.json"))
    fails(good[: len(good) // 2], "gzip: truncated stream")
    fails(good + b"trailing", "gzip: 8 bytes of trailing garbage")
    fails(gzip.compress(b"not json"), "malformed JSON")


def test_a_gzip_bomb_stops_at_the_size_limit(monkeypatch):
    monkeypatch.setattr(envelope, "MAX_DECOMPRESSED", 4096)
    fails(gzip.compress(b" " * 100_000), "decompresses to more than 4096 bytes")


# ---------------------------------------------------------------- JSON, but not ours
@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"hello": "world"}, r"unknown delivery shape \(keys: 'hello'\)"),
        ([], "delivery holds no findings"),
        ("42", "expected a JSON object, got a int"),
        ({"detail-type": "AWS API Call via CloudTrail", "detail": {}}, "unsupported EventBridge detail-type"),
        ({"detail-type": "Security Hub Findings - Imported", "detail": {"findings": []}}, "holds no findings"),
        ({"detail-type": "Security Hub Findings - Imported", "detail": {"findings": {}}}, "expected a list"),
        ({"Service": "Amazon S3", "Event": "s3:TestEvent"}, "S3 test event"),
    ],
    ids=["unknown", "empty-array", "scalar", "other-detail-type", "no-findings", "findings-not-list", "s3-test"],
)
def test_an_unknown_or_empty_shape_raises_naming_what_it_saw(body, match):
    fails(body, match)


def test_an_s3_notification_says_the_object_must_be_fetched():
    fails(body_of("sqs/s3-object-created.json"), "S3 event notification; the object must be fetched first")


def test_a_body_that_is_not_bytes_is_refused():
    with pytest.raises(NormalizeError, match="must be bytes"):
        normalize("text", raw=RawLocation("u", "s"), received_at=NOW)  # type: ignore[arg-type]


def test_a_naive_receipt_time_is_a_programming_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize(b"{}", raw=RawLocation("u", "s"), received_at=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("wrap", "match"),
    [
        ({"Records": [{"body": "{not json"}]}, r"Records\[0\].body: malformed JSON"),
        ({"Records": [{"body": 7}]}, r"Records\[0\].body: expected a string holding JSON"),
        ({"message": {"data": "***"}}, "message.data: not valid base64"),
        ({"message": {"data": "//79"}}, "message.data: decoded data is not UTF-8"),
        ({"receivedMessages": [{"message": {}}]}, r"receivedMessages\[0\].message.data: expected a base64 string"),
        ({"Type": "Notification", "TopicArn": "t", "Message": "{"}, "Message: malformed JSON"),
    ],
    ids=["sqs-body-json", "sqs-body-type", "b64", "b64-utf8", "pull-no-data", "sns-json"],
)
def test_a_broken_envelope_names_the_path_to_the_problem(wrap, match):
    fails(wrap, match)


# ---------------------------------------------------------------- findings with missing or wrong fields
def asff(**changes):
    event = doc("securityhub/ec2-19-open-ports.json")
    f = event["detail"]["findings"][0]
    for k, v in changes.items():
        if v is KeyError:
            del f[k]
        else:
            f[k] = v
    return event


@pytest.mark.parametrize(
    ("event", "match"),
    [
        (asff(Id=KeyError), "Id: expected a non-empty string, got missing"),
        (asff(ProductArn="  "), "ProductArn: expected a non-empty string, got an empty one"),
        (asff(AwsAccountId=111122223333), "AwsAccountId: expected a non-empty string, got a int"),
        (asff(Severity={}), "Severity: neither Label nor Normalized is set"),
        (asff(Resources=["sg-1"]), r"Resources\[0\]: expected an object, got a str"),
        (asff(Resources=[{"Type": "AwsEc2SecurityGroup"}]), r"Resources\[0\].Id: expected a non-empty string"),
    ],
    ids=["no-id", "blank-product-arn", "account-int", "no-severity", "resource-str", "resource-no-id"],
)
def test_asff_finding_missing_or_mistyped_required_fields(event, match):
    err = fails(event, match)
    assert "detail.findings[0]" in str(err)


def test_guardduty_scc_ocsf_and_defender_required_fields():
    gd = doc("guardduty/port-probe.json")
    del gd["detail"]["arn"]
    fails(gd, "detail: arn: expected a non-empty string, got missing")
    gd = doc("guardduty/port-probe.json")
    gd["detail"]["severity"] = "high"
    fails(gd, "severity: expected a number")
    scc = doc("scc/v1-muted.json")
    scc["finding"]["name"] = None
    fails(scc, "finding.name: expected a non-empty string")
    scc = doc("scc/v1-muted.json")
    scc["finding"] = "x"
    fails(scc, "unknown delivery shape")
    ocsf = doc("securityhub-v2/detection-finding.json")
    del ocsf["detail"]["findings"][0]["cloud"]
    fails(ocsf, "cloud.account.uid: expected a non-empty string")
    de = doc("defender/flat-ssh-brute-force.json")
    de["SystemAlertId"] = ""
    fails(de, "SystemAlertId: expected a non-empty string")
    de = doc("defender/rest-dismissed.json")
    de["id"] = "no-subscription-here"
    de["properties"]["resourceIdentifiers"] = []
    fails(de, "no subscription id")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("999.1.1.1", "'999.1.1.1' is not a valid IP address"),
        ("0.0.0.0/0", "'0.0.0.0/0' is not a valid IP address"),
        (12345, "expected an IP address string, got a int"),
        ("1.2.3.4\u202e", r"'1.2.3.4\\\\u202e' is not a valid IP address"),
    ],
    ids=["octet", "cidr", "int", "bidi"],
)
def test_an_invalid_ip_in_an_address_field_is_bad_input_naming_the_field(value, match):
    event = doc("guardduty/tor-api-call.json")
    event["detail"]["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"] = value
    err = fails(event, match)
    assert "service.action.awsApiCallAction.remoteIpDetails.ipAddressV4" in str(err)


def test_free_text_that_merely_mentions_addresses_is_not_an_error():
    alert = doc("defender/flat-ssh-brute-force.json")
    alert["ExtendedProperties"]["Attacker source IP"] = "IP Address: 999.1.1.1 and 0.0.0.0/0, then 203.0.113.5"
    assert one(alert)["indicators"]["ips"] == ["198.51.100.45", "203.0.113.5"]


# ---------------------------------------------------------------- one bad finding among good ones
def test_one_bad_finding_among_good_ones_is_a_finding_error_and_the_rest_go_through():
    event = doc("securityhub/multi-finding.json")
    del event["detail"]["findings"][1]["AwsAccountId"]
    result = run(event)
    assert [a["raw"]["index"] for a in result.alerts] == [0, 2]
    [err] = result.errors
    assert (err.index, err.error_class) == (1, "FindingProblem")
    assert err.message == "detail.findings[1]: AwsAccountId: expected a non-empty string, got missing"


def test_a_bad_line_in_newline_delimited_json_is_a_finding_error():
    lines = body_of("s3/findings-export.ndjson").splitlines()
    body = b"\n".join([lines[0], b'{"truncated": ', lines[1], b"", lines[2]]) + b"\n"
    result = run(body)
    assert len(result.alerts) == 3
    [err] = result.errors
    assert err.index == 1
    assert err.message.startswith("line 2: malformed JSON")


def test_an_unknown_record_in_an_event_hubs_batch_is_a_finding_error():
    result = run({"records": [doc("defender/flat-ssh-brute-force.json"), {"what": 1}, "x"]})
    assert len(result.alerts) == 1
    assert [(e.index, e.message) for e in result.errors] == [
        (1, "records[1]: unknown delivery shape (keys: 'what')"),
        (2, "records[2]: expected a JSON object, got a str"),
    ]


def test_when_every_finding_is_bad_the_delivery_raises_with_the_first_cause_and_a_count():
    event = doc("securityhub/multi-finding.json")
    for f in event["detail"]["findings"]:
        del f["Id"]
    fails(event, r"detail.findings\[0\]: Id: expected a non-empty string, got missing \(and 2 more\)")


# ---------------------------------------------------------------- oversized fields, control and bidi characters
def test_a_multi_megabyte_description_is_truncated_with_a_marker(codec):
    event = asff(Description="A" * 5_000_000, Title="T" * 100_000)
    alert = one(event)
    assert len(alert["description"]) < 33_000
    assert alert["description"].endswith("[truncated; 5000000 characters in the source; the raw delivery is archived]")
    assert len(alert["title"]) < 1_100
    assert alert["title"].endswith("…[truncated; 100000 characters in the source]")
    codec.encode("alert", alert)


def test_a_multi_megabyte_field_of_control_characters_stays_bounded(codec):
    alert = one(asff(Description="\x07\u202e" * 2_000_000, Title="\x00" * 3_000_000))
    assert len(alert["description"]) < 33_000
    assert alert["description"].startswith("\\u0007\\u202e")
    assert len(alert["title"]) < 1_100
    codec.encode("alert", alert)


def test_a_multi_megabyte_identifier_is_bad_input():
    fails(asff(Id="x" * 3_000_000), "Id: 3000000 characters, more than the 2048 an identifier may have")


def test_oversized_optional_fields_are_bounded(codec):
    event = asff()
    f = event["detail"]["findings"][0]
    f["GeneratorId"] = "g" * 1_000_000
    f["Resources"][0]["Tags"] = {f"k{i}": "v" * 10_000 for i in range(1000)}
    alert = one(event)
    assert len(alert["attributes"]["GeneratorId"]) < 600
    assert len(alert["resources"][0]["tags"]) == 64
    assert all(len(v) < 600 for v in alert["resources"][0]["tags"].values())
    codec.encode("alert", alert)


def test_control_and_bidi_characters_are_escaped_visibly(codec):
    event = asff(
        Title="Invoice\u202efdp.exe\x00 ready\n\tnow",
        Description="line one\r\nline two\x07 \u2066isolate\u2069",
    )
    alert = one(event)
    assert alert["title"] == "Invoice\\u202efdp.exe\\u0000 ready now"
    assert alert["description"] == "line one\nline two\\u0007 \\u2066isolate\\u2069"
    codec.encode("alert", alert)


def test_lone_surrogates_in_identifiers_and_text_still_encode(codec):
    event = asff(Id="finding-\ud800-1", Title="bad \udfff half")
    alert = one(event)
    assert alert["source_id"].endswith("finding-\ufffd-1")
    assert alert["title"] == "bad \ufffd half"
    codec.encode("alert", alert)


def test_wrong_types_in_optional_fields_are_dropped_not_fatal(codec):
    event = asff(
        Title=["not", "a", "string"],
        Description={"x": 1},
        Types="not-a-list",
        Region=5,
        UpdatedAt=12.5e300,
        FirstObservedAt="yesterday",
        Workflow="NEW",
        Compliance=[],
    )
    alert = one(event)
    assert alert["title"] == "(untitled finding)"
    assert alert["description"] == ""
    assert alert["region"] == "us-east-1"  # from the ProductArn
    assert alert["updated_at"] == NOW
    assert alert["first_seen"] is not None  # CreatedAt still parses
    codec.encode("alert", alert)


def test_an_extremely_large_array_of_bad_lines_stops_early():
    body = ("{}" + "\n{bad\n" * 1500).encode()
    fails(body, "more than 1000 bad lines")


def test_json_inside_json_inside_json_is_bounded():
    inner: object = doc("securityhub/archived.json")
    for _ in range(12):
        inner = {"Type": "Notification", "TopicArn": "t", "Message": json.dumps(inner)}
    fails(inner, "envelopes nested deeper than 8")
