"""Property: hostile deliveries of every accepted shape, pushed through the real ingest pipeline
(the S3 archive on a moto server, the real Kafka broker), never crash it, and every delivery is
accounted for: archived byte for byte, and turned into exactly as many alerts plus dead letters
(each with its cause) as the normalizer finds findings plus unusable slots in the same bytes."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertline.errors import BadInput
from alertline.settings import KafkaSettings
from services.ingest.domain import Delivery, Done
from services.ingest.normalize import RawLocation, normalize
from tests.fuzz.hostile import SHAPES, hostile_delivery
from tests.integration.ingest.support import (
    alerts,
    boto,
    dead_letters,
    make_topics,
    pipeline,
    unique,
)

pytestmark = pytest.mark.kafka

EXAMPLES = 60  # batches; each batch holds one delivery of every shape


def expected_records(d: Delivery) -> tuple[int, int]:
    """(alerts at most, alerts + dead letters) the normalizer itself finds in the bytes.
    Anything but ``BadInput`` escaping the normalizer is a crash and fails the test."""
    try:
        r = normalize(d.body, raw=RawLocation("s3://reference/x", d.sha256), received_at=d.received_at, hint=d.hint)
    except BadInput:
        return 0, 1
    return len(r.alerts), len(r.alerts) + len(r.errors)


def test_hostile_deliveries_of_every_shape_are_archived_and_fully_accounted_for(
    moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("fuzz-archive")
    s3.create_bucket(Bucket=bucket)
    pipe, publisher = pipeline(kafka_settings, s3, bucket)
    bodies: dict[str, bytes] = {}
    want_alerts: Counter[str] = Counter()
    want_dead: Counter[str] = Counter()
    shapes_seen: Counter[str] = Counter()
    received = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)

    batch = st.fixed_dictionaries({shape: hostile_delivery(shape) for shape in SHAPES})

    @settings(
        max_examples=EXAMPLES,
        deadline=timedelta(seconds=20),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(batch)
    def push(deliveries: dict[str, bytes]) -> None:
        ds = [
            Delivery(SHAPES[shape][0], f"fuzz://{shape}", body, received, hint=SHAPES[shape][0], meta={"shape": shape})
            for shape, body in deliveries.items()
        ]
        outcomes = pipe.run(ds)
        for d, o in zip(ds, outcomes, strict=True):
            assert isinstance(o, Done), f"{d.meta['shape']}: not done: {o}"
            most, total = expected_records(d)
            assert o.alerts + o.dead_letters == total, (d.meta["shape"], o, most, total, d.body[:200])
            assert o.alerts <= most
            assert o.raw_uri == f"s3://{bucket}/raw/{d.source}/2026/11/23/{d.sha256}.json"
            bodies[d.sha256] = d.body
            want_alerts[d.sha256] += o.alerts
            want_dead[d.sha256] += o.dead_letters
            shapes_seen[d.meta["shape"]] += 1

    try:
        push()
    finally:
        publisher.close()

    assert set(shapes_seen) == set(SHAPES)
    got_alerts: Counter[str] = Counter()
    for a in alerts(kafka_settings, timeout=60, expect=sum(want_alerts.values())):
        got_alerts[a["raw"]["sha256"]] += 1
    assert got_alerts == +want_alerts, "alerts per delivery in the alerts topic"

    got_dead: Counter[str] = Counter()
    for envelope, headers in dead_letters(kafka_settings, timeout=60, expect=sum(want_dead.values())):
        sha = headers["alertline.raw.sha256"].decode()
        got_dead[sha] += 1
        assert headers["alertline.error.class"] and headers["alertline.error.message"], headers
        assert envelope["error_class"] and envelope["error_message"]
        assert envelope["raw_uri"] == headers["alertline.raw.uri"].decode()
        if envelope["value"] is None:
            assert b"read them from alertline.raw.uri" in headers["alertline.value.omitted"]
        else:
            assert envelope["value"] == bodies[sha]
    assert got_dead == +want_dead, "dead letters per delivery in the ingest DLQ"

    archived = _archive(s3, bucket)
    for sha in bodies:
        assert sha in archived, f"delivery {sha} is not in the archive"
        assert hashlib.sha256(_get(s3, bucket, archived[sha])).hexdigest() == sha
    print(f"\nfuzz: {len(bodies)} distinct deliveries, {sum(want_alerts.values())} alerts, "
          f"{sum(want_dead.values())} dead letters; per shape {dict(shapes_seen)}")  # fmt: skip


def _archive(s3: Any, bucket: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/"):
        for o in page.get("Contents", []):
            out[o["Key"].rsplit("/", 1)[-1].removesuffix(".json")] = o["Key"]
    return out


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
