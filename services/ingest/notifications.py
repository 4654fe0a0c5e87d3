"""Recognise S3 "object created" notifications in a queue message. Pure.

Three wire shapes reach SQS: the S3 event notification itself (``Records[].s3``, keys
URL-encoded), the same wrapped by SNS (``Type: Notification``, ``Message`` a string), and the
EventBridge ``Object Created`` event (keys not encoded). S3 also sends ``s3:TestEvent`` once
when a notification is configured.
Docs: https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
and https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None
    event_time: datetime | None = None


def _time(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None


def s3_objects(body: bytes) -> list[ObjectRef] | None:
    """The objects a message announces; ``[]`` for a test event or a non-create event;
    ``None`` when the message is not an S3 notification at all (it is then a delivery itself)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return _refs(doc, sns_depth=1)


def _refs(doc: Any, sns_depth: int) -> list[ObjectRef] | None:
    if not isinstance(doc, dict):
        return None
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str) and sns_depth > 0:
        try:
            inner = json.loads(doc["Message"])
        except ValueError:
            return None
        return _refs(inner, sns_depth - 1)
    if doc.get("Event") == "s3:TestEvent" and doc.get("Service") == "Amazon S3":
        return []
    if doc.get("source") == "aws.s3" and isinstance(doc.get("detail"), dict):
        if doc.get("detail-type") != "Object Created":
            return [] if str(doc.get("detail-type", "")).startswith("Object ") else None
        d = doc["detail"]
        bucket, obj = d.get("bucket"), d.get("object")
        if not (isinstance(bucket, dict) and isinstance(obj, dict)):
            return None
        name, key = bucket.get("name"), obj.get("key")
        if not (isinstance(name, str) and isinstance(key, str) and name and key):
            return None
        version = obj.get("version-id")
        return [ObjectRef(name, key, version if isinstance(version, str) else None, _time(doc.get("time")))]
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        return None
    if not all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records):
        return None
    out: list[ObjectRef] = []
    for r in records:
        if not str(r.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = r.get("s3")
        if not isinstance(s3, dict):
            return None
        bucket, obj = s3.get("bucket"), s3.get("object")
        if not (isinstance(bucket, dict) and isinstance(obj, dict)):
            return None
        name, key = bucket.get("name"), obj.get("key")
        if not (isinstance(name, str) and isinstance(key, str) and name and key):
            return None
        version = obj.get("versionId")
        out.append(
            ObjectRef(name, unquote_plus(key), version if isinstance(version, str) else None, _time(r.get("eventTime")))
        )
    return out
