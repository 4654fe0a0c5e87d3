"""Re-publish archived raw deliveries through normalization into the pipeline.

The archive is a replay source of its own (decision 0201): every delivery was written there
before anything was published. Replaying runs each object through the same pipeline as a
live delivery; the archive write lands on the same content-addressed key (a no-op), and
downstream idempotency — evaluate's (identity, revision) memory, the ticket service's
marker adoption — means replaying twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.ingest.domain import Delivery, Done
from services.ingest.pipeline import Pipeline

# <prefix><source>/YYYY/MM/DD/<sha256>.json
_KEY = re.compile(r"^(?P<source>[a-z0-9_-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<sha>[0-9a-f]{64})\.json$")
HINTS = {"sqs", "s3", "pubsub", "eventhubs"}


@dataclass(frozen=True)
class Archived:
    key: str
    source: str
    day: datetime
    modified: datetime


@dataclass
class ReplayResult:
    deliveries: int = 0
    alerts: int = 0
    dead_letters: int = 0
    failed: int = 0


def list_archived(s3: Any, bucket: str, prefix: str, start: datetime, end: datetime) -> Iterator[Archived]:
    """Objects written in [start, end], found by date folder first, then by write time."""
    paginator = s3.get_paginator("list_objects_v2")
    sources = set()
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for cp in page.get("CommonPrefixes", []):
            sources.add(cp["Prefix"][len(prefix) :].rstrip("/"))
    # A delivery's folder is its source's enqueue day, which precedes its archive time.
    first_day = (start - timedelta(days=1)).date()
    for source in sorted(sources):
        day = first_day
        while day <= end.date():
            folder = f"{prefix}{source}/{day:%Y/%m/%d}/"
            for page in paginator.paginate(Bucket=bucket, Prefix=folder):
                for obj in page.get("Contents", []):
                    m = _KEY.match(obj["Key"][len(prefix) :])
                    modified = obj["LastModified"].astimezone(UTC)
                    if m and start <= modified <= end:
                        yield Archived(
                            obj["Key"],
                            m["source"],
                            datetime(int(m["y"]), int(m["m"]), int(m["d"]), tzinfo=UTC),
                            modified,
                        )
            day += timedelta(days=1)


def replay(
    s3: Any,
    bucket: str,
    prefix: str,
    pipeline: Pipeline,
    start: datetime,
    end: datetime,
    now: Callable[[], datetime],
    progress: Callable[[int, int, Archived, str], None] = lambda *a: None,
) -> ReplayResult:
    items = list(list_archived(s3, bucket, prefix, start, end))
    result = ReplayResult()
    for n, item in enumerate(items, 1):
        body = s3.get_object(Bucket=bucket, Key=item.key)["Body"].read()
        d = Delivery(
            item.source,
            f"s3://{bucket}/{item.key}",
            body,
            now(),
            item.day,  # the same date folder: the archive write is the same object again
            item.source if item.source in HINTS else None,
            meta={"replay": "archive"},
        )
        (outcome,) = pipeline.run([d])
        result.deliveries += 1
        if isinstance(outcome, Done):
            result.alerts += outcome.alerts
            result.dead_letters += outcome.dead_letters
            progress(n, len(items), item, f"{outcome.alerts} alerts, {outcome.dead_letters} dead letters")
        else:
            result.failed += 1
            progress(n, len(items), item, f"FAILED: {outcome}")
    return result
