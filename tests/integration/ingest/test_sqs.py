"""AWS via SQS against moto in server mode (real boto3) and the real broker."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

import pytest

from alertline.settings import KafkaSettings
from services.ingest.pipeline import Pipeline
from services.ingest.sources.backoff import Backoff
from services.ingest.sources.sqs import S3Objects, SqsSource
from tests.integration.ingest import standin
from tests.integration.ingest.support import (
    alerts,
    archived,
    boto,
    dead_letters,
    fence,
    make_topics,
    pipeline,
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


def test_sqs_message_is_archived_then_published_then_deleted(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    body = standin.delivery({"id": "f-1", "title": "one", "ip": "203.0.113.7"}, {"id": "f-2", "title": "two"})
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=body.decode())
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])
    src = _source(aws, p)

    assert src.poll_once() is False

    keys = archived(aws["s3"], aws["bucket"], body)
    assert len(keys) == 1 and keys[0].startswith("raw/sqs/20") and keys[0].count("/") == 5
    got = alerts(kafka_settings, expect=2)
    assert {a["source_id"] for a in got} == {"f-1", "f-2"}
    assert all(a["raw"]["uri"] == f"s3://{aws['bucket']}/{keys[0]}" for a in got)
    assert _counts(aws) == (0, 0), "deleted only after Kafka confirmed"
    pub.close()


def test_s3_notification_objects_gzip_and_ndjson_each_become_a_delivery(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    src_bucket = unique("export")
    aws["s3"].create_bucket(Bucket=src_bucket)
    lines = [json.dumps({"detail": {"findings": [{"id": f"ob-{i}", "title": f"t{i}"}]}}).encode() for i in range(3)]
    ndjson = b"\n".join(lines) + b"\n"
    aws["s3"].put_object(Bucket=src_bucket, Key="AWSLogs/2026/11/23/batch 1.json.gz", Body=gzip.compress(ndjson))
    aws["s3"].put_object(Bucket=src_bucket, Key="plain.json", Body=standin.delivery({"id": "ob-9", "title": "x"}))
    note = {
        "Records": [
            {
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T10:00:00.000Z", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": src_bucket}, "object": {"key": "AWSLogs/2026/11/23/batch+1.json.gz"}},
            },
            {
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T10:00:01.000Z", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": src_bucket}, "object": {"key": "plain.json"}},
            },
        ]
    }  # fmt: skip
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=json.dumps(note))
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])

    assert _source(aws, p).poll_once() is False

    got = alerts(kafka_settings, expect=4)
    assert sorted(a["source_id"] for a in got) == ["ob-0", "ob-1", "ob-2", "ob-9"]
    # The decompressed object is the delivery: archived under the notification's date.
    assert archived(aws["s3"], aws["bucket"], ndjson)[0].startswith("raw/s3/2026/11/23/")
    assert _counts(aws) == (0, 0)
    pub.close()


def test_archive_failure_leaves_the_message_unacknowledged_and_it_comes_again(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    missing = unique("not-yet")
    body = standin.delivery({"id": "late-1", "title": "t"})
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=body.decode())
    p, pub = pipeline(kafka_settings, aws["s3"], missing)
    src = _source(aws, p)

    assert src.poll_once() is True, "NoSuchBucket is a retry, not an ack"
    assert alerts(kafka_settings, timeout=5) == [], "nothing is published before it is archived"
    assert sum(_counts(aws)) == 1
    assert p.metrics.archive_failures.labels("sqs")._value.get() == 1

    aws["s3"].create_bucket(Bucket=missing)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and src.poll_once() is False and sum(_counts(aws)):
        pass  # the message is invisible for the back-off the failure asked for, then comes again
    assert [a["source_id"] for a in alerts(kafka_settings, expect=1)] == ["late-1"]
    assert archived(aws["s3"], missing, body)
    assert _counts(aws) == (0, 0)
    pub.close()


def test_kafka_failure_leaves_the_message_unacknowledged(aws: dict[str, Any], kafka_settings: KafkaSettings) -> None:
    make_topics(kafka_settings)
    txn = unique(kafka_settings.topic_prefix + "ingest-sqs")
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"], txn_id=txn)
    src = _source(aws, p)
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=standin.delivery({"id": "k-1", "title": "t"}).decode())
    assert src.poll_once() is False

    fence(kafka_settings, txn)  # the broker now refuses this producer's transactions
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=standin.delivery({"id": "k-2", "title": "t"}).decode())
    assert src.poll_once() is True
    assert sum(_counts(aws)) == 1, "not deleted: Kafka did not confirm"
    assert p.metrics.publish_failures.labels("sqs")._value.get() == 1

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(_counts(aws)):
        src.poll_once()
    assert sorted(a["source_id"] for a in alerts(kafka_settings, expect=2)) == ["k-1", "k-2"]
    pub.close()


def test_every_kind_of_bad_input_is_archived_and_dead_lettered_with_its_cause(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    big_bucket = unique("export")
    aws["s3"].create_bucket(Bucket=big_bucket)
    # SQS caps a message at 256 KiB: a multi-megabyte field arrives through an S3 object.
    multi_mb = standin.delivery({"id": "big", "title": "A" * (3 * 1024 * 1024)})
    aws["s3"].put_object(Bucket=big_bucket, Key="big.json", Body=multi_mb)
    bad = {
        "malformed": b'{"detail": {"findings": [',
        "unknown shape": json.dumps({"hello": "world"}).encode(),
        "missing fields": standin.delivery({"title": "no id"}),
        "invalid ip": standin.delivery({"id": "ip", "title": "t", "ip": "999.1.2.3"}),
        "control/bidi": standin.delivery({"id": "cc", "title": "safe\u202etxt.exe\x07"}),
    }
    for body in bad.values():
        aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=body.decode())
    note = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-11-23T10:00:00Z",
                         "s3": {"bucket": {"name": big_bucket}, "object": {"key": "big.json"}}}]}  # fmt: skip
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=json.dumps(note))
    gone = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": big_bucket}, "object": {"key": "gone.json"}}}]}  # fmt: skip
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=json.dumps(gone))
    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"])
    src = _source(aws, p, max_messages=10)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(_counts(aws)):
        assert src.poll_once() is False, "bad input is never a retry"

    dead = dead_letters(kafka_settings, expect=7)
    assert alerts(kafka_settings, timeout=5) == []
    by_msg = {d["error_message"]: (d, h) for d, h in dead}
    causes = " | ".join(sorted(by_msg))
    for expected in ("malformed JSON", "unknown shape", "missing field", "invalid IP", "control or bidi",
                     "record limit", "NoSuchKey"):  # fmt: skip
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


def test_visibility_is_extended_while_a_slow_delivery_is_processed(
    aws: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)

    def slow(body: bytes, **kw: Any) -> Any:
        time.sleep(4)
        return standin.normalize(body, **kw)

    p, pub = pipeline(kafka_settings, aws["s3"], aws["bucket"], normalize=slow)
    src = _source(aws, p, visibility_timeout_s=2)
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=standin.delivery({"id": "s-1", "title": "t"}).decode())
    t = threading.Thread(target=src.poll_once)
    t.start()
    time.sleep(3)  # past the 2 s visibility timeout: without extension another consumer would get it
    stolen = aws["sqs"].receive_message(QueueUrl=aws["queue"], WaitTimeSeconds=0).get("Messages", [])
    t.join(30)
    assert stolen == []
    assert versions(alerts(kafka_settings, expect=1))
    assert _counts(aws) == (0, 0)
    pub.close()
