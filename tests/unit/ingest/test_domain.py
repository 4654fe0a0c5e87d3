"""Archive keys, bounded gzip, and S3 notification recognition."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from alertline.errors import BadInput
from services.ingest.domain import Delivery, TooLarge, archive_key, gunzip_bounded, maybe_gunzip
from services.ingest.notifications import ObjectRef, s3_objects

T0 = datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)
T1 = datetime(2026, 11, 24, 0, 0, 5, tzinfo=UTC)


def test_archive_key_is_content_addressed_under_the_source_date() -> None:
    d = Delivery("sqs", "q#1", b'{"a": 1}', received_at=T1, sent_at=T0)
    key = archive_key("raw/", d)
    assert key == f"raw/sqs/2026/11/23/{d.sha256}.json"


def test_a_redelivery_received_another_day_lands_on_the_same_key() -> None:
    first = Delivery("pubsub", "s", b"same bytes", received_at=T0, sent_at=T0)
    again = Delivery("pubsub", "s", b"same bytes", received_at=T1, sent_at=T0)
    assert archive_key("raw/", first) == archive_key("raw/", again)


def test_archive_key_falls_back_to_receipt_time_without_a_source_time() -> None:
    d = Delivery("file", "f", b"x", received_at=T1)
    assert archive_key("p/", d).startswith("p/file/2026/11/24/")


def test_gzip_multi_member_is_decoded() -> None:
    data = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}\n')
    assert gunzip_bounded(data, 1000) == b'{"a":1}\n{"b":2}\n'


def test_gzip_bomb_is_refused_as_too_large() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    with pytest.raises(TooLarge):
        gunzip_bounded(bomb, 1_000_000)


def test_corrupt_or_truncated_gzip_is_bad_input() -> None:
    with pytest.raises(BadInput):
        gunzip_bounded(b"\x1f\x8b\x08\x00garbage", 1000)
    with pytest.raises(BadInput):
        gunzip_bounded(gzip.compress(b"x" * 1000)[:20], 10_000)


def test_plain_bytes_pass_through_maybe_gunzip() -> None:
    assert maybe_gunzip(b'{"x": 1}', 10) == b'{"x": 1}'


def _record(key: str, event: str = "ObjectCreated:Put") -> dict[str, object]:
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event, "eventTime": "2026-11-23T10:00:00.000Z",
        "s3": {"bucket": {"name": "exports"}, "object": {"key": key, "versionId": "v1"}},
    }  # fmt: skip


def test_s3_notification_keys_are_url_decoded() -> None:
    refs = s3_objects(json.dumps({"Records": [_record("a/b+c%3D.json.gz")]}).encode())
    assert refs == [ObjectRef("exports", "a/b c=.json.gz", "v1", datetime(2026, 11, 23, 10, tzinfo=UTC))]


def test_removed_objects_and_test_events_announce_nothing() -> None:
    assert s3_objects(json.dumps({"Records": [_record("k", "ObjectRemoved:Delete")]}).encode()) == []
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "exports", "RequestId": "x"}
    assert s3_objects(json.dumps(test_event).encode()) == []


def test_sns_wrapped_and_eventbridge_object_created_are_recognised() -> None:
    sns = {"Type": "Notification", "MessageId": "m", "Message": json.dumps({"Records": [_record("k1")]})}
    assert [r.key for r in s3_objects(json.dumps(sns).encode()) or []] == ["k1"]
    eb = {
        "version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": "2026-11-23T10:00:00Z",
        "detail": {"bucket": {"name": "exports"}, "object": {"key": "raw key.json"}},
    }  # fmt: skip
    assert s3_objects(json.dumps(eb).encode()) == [
        ObjectRef("exports", "raw key.json", None, datetime(2026, 11, 23, 10, tzinfo=UTC))
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub"}).encode(),
        json.dumps({"Records": [{"eventSource": "aws:sqs"}]}).encode(),
        json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}).encode(),
    ],
)
def test_anything_else_is_a_delivery_of_its_own(body: bytes) -> None:
    assert s3_objects(body) is None
