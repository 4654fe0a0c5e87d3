"""AWS via SQS against moto in server mode (real boto3), the real normalizer and the real broker."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

import pytest

from alertline.settings import KafkaSettings
from services.ingest.normalize import normalize
from services.ingest.pipeline import Pipeline
from services.ingest.sources.backoff import Backoff
from services.ingest.sources.sqs import S3Objects, SqsSource
from tests.integration.ingest.support import (
    alerts,
    archived,
    asff,
    boto,
    dead_letters,
    doc,
    fence,
    fixture,
    guardduty_with_ip,
    make_topics,
    pipeline,
    source_ids,
    unique,
    versions,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def aws(moto_endpoint: str) -> dict[str, Any]:
    s3, sqs = boto("s3", moto_endpoint), boto("sqs", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    url = sqs.create_queue(QueueName=unique("findings"), Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    return {"s3": s3, "sqs": sqs, "bucket": bucket, "queue": url}


def _source(aws: dict[str, Any], p: Pipeline, **kw: Any) -> SqsSource:
    kw.setdefault("visibility_timeout_s", 30)
    return SqsSource(
        aws["sqs"], aws["queue"], p, S3Objects(aws["s3"], 64 * 1024 * 1024), p.metrics, wait_s=1,
        backoff=Backoff(0.1, 0.5), **kw,
    )  # fmt: skip


def _counts(aws: dict[str, Any]) -> tuple[int, int]:
    a = aws["sqs"].get_queue_attributes(QueueUrl=aws["queue"], AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def _send(aws: dict[str, Any], body: bytes) -> None:
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=body.decode())


def test_sqs_message_is_archived_then_published_then_deleted(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    body = fixture("securityhub/multi-finding.json")  # EventBridge event carrying three ASFF findings
    _send(aws, body)
    _send(aws, fixture("guardduty/port-probe.json"))
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])
    src = _source(aws, p)

    assert src.poll_once() is False

    keys = archived(aws["s3"], aws["bucket"], body)
    assert len(keys) == 1 and keys[0].startswith("raw/sqs/20") and keys[0].count("/") == 5
    got = alerts(kafka_settings, expect=4)
    assert {a["source_id"] for a in got} == source_ids(body) | source_ids(fixture("guardduty/port-probe.json"))
    assert {a["raw"]["uri"] for a in got if a["source_id"] in source_ids(body)} == {f"s3://{aws['bucket']}/{keys[0]}"}
    assert _counts(aws) == (0, 0), "deleted only after Kafka confirmed"
    pub.close()


def test_s3_notification_objects_gzip_and_ndjson_each_become_a_delivery(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    note = doc("sqs/s3-object-created.json")  # the S3 event notification, as S3 sends it to SQS
    export = unique("acme-security-findings")
    aws["s3"].create_bucket(Bucket=export)
    gz_key = note["Records"][0]["s3"]["object"]["key"]
    aws["s3"].put_object(Bucket=export, Key=gz_key, Body=fixture("s3/findings-export-firehose.json.gz"))
    aws["s3"].put_object(Bucket=export, Key="exports/2026 11 23.ndjson", Body=fixture("s3/findings-export.ndjson"))
    second = json.loads(json.dumps(note["Records"][0]))
    second["s3"]["object"]["key"] = "exports/2026+11+23.ndjson"  # keys arrive URL-encoded
    note["Records"].append(second)
    for r in note["Records"]:
        r["s3"]["bucket"]["name"] = export
    _send(aws, json.dumps(note).encode())
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])

    assert _source(aws, p).poll_once() is False

    unzipped = gzip.decompress(fixture("s3/findings-export-firehose.json.gz"))
    expected = source_ids(unzipped) | source_ids(fixture("s3/findings-export.ndjson"))
    got = alerts(kafka_settings, expect=len(expected))
    assert {a["source_id"] for a in got} == expected
    # The decompressed object is the delivery: archived under the notification's date.
    assert archived(aws["s3"], aws["bucket"], unzipped)[0].startswith("raw/s3/2026/11/23/")
    assert archived(aws["s3"], aws["bucket"], fixture("s3/findings-export.ndjson"))
    assert _counts(aws) == (0, 0)
    pub.close()


def test_archive_failure_leaves_the_message_unacknowledged_and_it_comes_again(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    missing = unique("not-yet")
    body = asff("-late")
    _send(aws, body)
    p, pub = pipeline(kafka_settings, aws["s3"], missing)
    src = _source(aws, p)

    assert src.poll_once() is True, "NoSuchBucket is a retry, not an ack"
    assert alerts(kafka_settings, timeout=5) == [], "nothing is published before it is archived"
    assert sum(_counts(aws)) == 1
    assert p.metrics.archive_failures.labels("sqs")._value.get() == 1

    aws["s3"].create_bucket(Bucket=missing)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(_counts(aws)):
        src.poll_once()  # invisible for the back-off the failure asked for, then it comes again
    assert {a["source_id"] for a in alerts(kafka_settings, expect=1)} == source_ids(body)
    assert archived(aws["s3"], missing, body)
    assert _counts(aws) == (0, 0)
    pub.close()


def test_kafka_failure_leaves_the_message_unacknowledged(aws: dict[str, Any], kafka_settings: KafkaSettings) -> None:
    make_topics(kafka_settings)
    txn = unique(kafka_settings.topic_prefix + "ingest-sqs")
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"], txn_id=txn)
    src = _source(aws, p)
    _send(aws, asff("-k1"))
    assert src.poll_once() is False

    fence(kafka_settings, txn)  # the broker now refuses this producer's transactions
    _send(aws, asff("-k2"))
    assert src.poll_once() is True
    assert sum(_counts(aws)) == 1, "not deleted: Kafka did not confirm"
    assert p.metrics.publish_failures.labels("sqs")._value.get() == 1

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(_counts(aws)):
        src.poll_once()
    assert {a["source_id"] for a in alerts(kafka_settings, expect=2)} == source_ids(asff("-k1", "-k2"))
    pub.close()


def test_every_kind_of_bad_input_is_archived_and_dead_lettered_with_its_cause(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    export = unique("export")
    aws["s3"].create_bucket(Bucket=export)
    # SQS caps a message at 256 KiB: a multi-megabyte field arrives through an S3 object.
    aws["s3"].put_object(Bucket=export, Key="big.json", Body=asff("", Id="x" * 3_000_000))
    truncated = fixture("guardduty/port-probe.json")[:200]
    bad = {
        "malformed JSON": truncated,
        "unknown delivery shape": json.dumps({"hello": "world"}).encode(),
        "Id: expected a non-empty string, got missing": _without_id(),
        "'999.1.1.1' is not a valid IP address": guardduty_with_ip("999.1.1.1"),
        "is not a valid IP address": guardduty_with_ip("198.51.100.7\u202e"),  # bidi control in an address
    }
    for body in bad.values():
        _send(aws, body)
    note = doc("sqs/s3-object-created.json")
    note["Records"][0]["s3"]["bucket"]["name"] = export
    note["Records"][0]["s3"]["object"]["key"] = "big.json"
    _send(aws, json.dumps(note).encode())
    note["Records"][0]["s3"]["object"]["key"] = "gone.json"  # deleted before we read it
    _send(aws, json.dumps(note).encode())
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])
    src = _source(aws, p, max_messages=10)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(_counts(aws)):
        assert src.poll_once() is False, "bad input is never a retry"

    dead = dead_letters(kafka_settings, expect=7)
    assert alerts(kafka_settings, timeout=5) == []
    causes = " | ".join(sorted(d["error_message"] for d, _ in dead))
    for expected in [*bad, "more than the 2048 an identifier may have", "NoSuchKey"]:
        assert expected in causes, f"{expected!r} not among causes: {causes}"
    for d, h in dead:
        assert d["service"] == "ingest" and d["raw_uri"].startswith(f"s3://{aws['bucket']}/raw/")
        assert h["alertline.error.class"] and h["alertline.raw.sha256"]
        key = d["raw_uri"].split("/", 3)[3]
        original = aws["s3"].get_object(Bucket=aws["bucket"], Key=key)["Body"].read()
        if d["value"] is not None:
            assert d["value"] == original, "the dead letter carries the original bytes"
        else:
            assert len(original) > 900_000 and b"alertline.raw.uri" in h["alertline.value.omitted"]
    assert _counts(aws) == (0, 0), "bad input is acknowledged once dead-lettered"
    pub.close()


def test_oversized_text_and_control_characters_are_bounded_not_lost(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    """Bad *text* in a good finding is not a reason to lose it: the normalizer bounds and escapes
    it, the alert goes through, and the archive keeps the bytes as they came."""
    make_topics(kafka_settings)
    export = unique("export")
    aws["s3"].create_bucket(Bucket=export)
    body = asff("-text", Description="A" * 4_000_000, Title="Invoice\u202efdp.exe\x00\x1b[31m")
    aws["s3"].put_object(Bucket=export, Key="big-text.json", Body=body)
    note = doc("sqs/s3-object-created.json")
    note["Records"][0]["s3"]["bucket"]["name"] = export
    note["Records"][0]["s3"]["object"]["key"] = "big-text.json"
    _send(aws, json.dumps(note).encode())
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])
    assert _source(aws, p).poll_once() is False
    [a] = alerts(kafka_settings, expect=1)
    assert "\u202e" not in a["title"] and "\\u202e" in a["title"]
    assert len(a["description"]) < 40_000
    assert archived(aws["s3"], aws["bucket"], body), "the archive holds all 4 MB"
    pub.close()


def _without_id() -> bytes:
    event = doc("securityhub/ec2-19-open-ports.json")
    del event["detail"]["findings"][0]["Id"]
    return json.dumps(event).encode()


def test_visibility_is_extended_while_a_slow_delivery_is_processed(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)

    def slow(body: bytes, **kw: Any) -> Any:
        time.sleep(4)
        return normalize(body, **kw)

    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"], normalize=slow)
    src = _source(aws, p, visibility_timeout_s=2)
    _send(aws, asff("-slow"))
    t = threading.Thread(target=src.poll_once)
    t.start()
    time.sleep(3)  # past the 2 s visibility timeout: without extension another consumer would get it
    stolen = aws["sqs"].receive_message(QueueUrl=aws["queue"], WaitTimeSeconds=0).get("Messages", [])
    t.join(30)
    assert stolen == []
    assert versions(alerts(kafka_settings, expect=1))
    assert _counts(aws) == (0, 0)
    pub.close()
