"""Google SCC via Pub/Sub: the real google-cloud-pubsub client against devtools/pubsub_fake.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from alertline.settings import KafkaSettings
from devtools.pubsub_fake import PubSubFake
from services.ingest.sources.pubsub import PubSubSource
from tests.integration.ingest.support import (
    alerts,
    asff,
    boto,
    dead_letters,
    doc,
    fence,
    fixture,
    make_topics,
    pipeline,
    scc,
    source_ids,
    unique,
)

pytestmark = pytest.mark.kafka

TOPIC = "projects/scc-demo/topics/findings"
SUB = "projects/scc-demo/subscriptions/alertline-ingest"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubFake]:
    f = PubSubFake()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f.start())
    f.create_topic(TOPIC)
    f.create_subscription(SUB, TOPIC)
    yield f
    f.stop()


class Running:
    """A PubSubSource on its own thread, stopped (drained) at the end."""

    def __init__(self, src: PubSubSource) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=src.run, args=(self.stop,))

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def _source(p: Any) -> PubSubSource:
    from google.cloud import pubsub_v1

    return PubSubSource(pubsub_v1.SubscriberClient(), SUB, [p], p.metrics, backoff_initial_s=0.2, backoff_max_s=1)


def test_pubsub_message_is_archived_published_then_acked(
    fake: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    p, pub = pipeline(kafka_settings, s3, bucket)
    body = fixture("scc/v2-open-firewall-active.json")  # a decoded SCC NotificationMessage (v2 names)
    fake.publish(TOPIC, body)
    fake.publish(TOPIC, fixture("scc/v1-public-bucket-inactive.json"))
    with Running(_source(p)):
        assert fake.wait_acked(SUB, 2, 30)
    got = alerts(kafka_settings, expect=2)
    assert {a["source_id"] for a in got} == source_ids(body) | source_ids(fixture("scc/v1-public-bucket-inactive.json"))
    assert {a["status"] for a in got} == {"active", "resolved"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 2 and all(k.startswith("raw/pubsub/") for k in keys)
    assert fake.stats(SUB).unacked == 0
    pub.close()


def test_pubsub_archive_failure_nacks_and_the_message_is_redelivered(
    fake: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("not-yet")
    p, pub = pipeline(kafka_settings, s3, bucket)
    fake.publish(TOPIC, scc("-2"))
    with Running(_source(p)):
        deadline = time.monotonic() + 20
        while fake.stats(SUB).deliveries.get("1", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake.stats(SUB).acked == 0 and fake.stats(SUB).deliveries["1"] >= 2, "nacked and redelivered"
        assert alerts(kafka_settings, timeout=3) == []
        s3.create_bucket(Bucket=bucket)
        assert fake.wait_acked(SUB, 1, 30)
    assert {a["source_id"] for a in alerts(kafka_settings, expect=1)} == source_ids(scc("-2"))
    pub.close()


def test_pubsub_kafka_failure_nacks_and_the_message_is_redelivered(
    fake: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    txn = unique(kafka_settings.topic_prefix + "ingest-pubsub")
    p, pub = pipeline(kafka_settings, s3, bucket, txn_id=txn)
    with Running(_source(p)):
        fake.publish(TOPIC, scc("-3"))
        assert fake.wait_acked(SUB, 1, 30)
        fence(kafka_settings, txn)
        fake.publish(TOPIC, scc("-4"))
        assert fake.wait_acked(SUB, 2, 60)
    assert p.metrics.publish_failures.labels("pubsub")._value.get() >= 1
    assert fake.stats(SUB).deliveries["2"] >= 2, "the failed delivery was nacked and came again"
    assert {a["source_id"] for a in alerts(kafka_settings, expect=2)} == source_ids(scc("-3")) | source_ids(scc("-4"))
    pub.close()


def test_pubsub_bad_input_is_archived_dead_lettered_and_acked(
    fake: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    p, pub = pipeline(kafka_settings, s3, bucket)
    no_name = doc("scc/v1-open-firewall-active.json")
    no_name["finding"]["name"] = None
    bad_ip = doc("scc/v2-bad-ip-active.json")
    bad_ip["finding"]["connections"][0]["sourceIp"] = "10.0.0.300"
    bidi_ip = doc("scc/v2-bad-ip-active.json")
    bidi_ip["finding"]["connections"][0]["sourceIp"] = "203.0.113.9\u2067"
    huge = doc("scc/v1-open-firewall-active.json")
    huge["finding"]["name"] = "organizations/1/sources/2/findings/" + "f" * 2_500_000
    bad = [
        b"\xff\xfe not json",
        b'{"notificationConfigName": "x"}',
        json.dumps(no_name).encode(),
        json.dumps(bad_ip).encode(),
        json.dumps(bidi_ip).encode(),
        json.dumps(huge).encode(),
        asff("", Id=12345),
    ]
    for b in bad:
        fake.publish(TOPIC, b)
    with Running(_source(p)):
        assert fake.wait_acked(SUB, len(bad), 30)
    dead = dead_letters(kafka_settings, expect=len(bad))
    assert len(dead) == len(bad)
    assert alerts(kafka_settings, timeout=3) == []
    causes = " | ".join(sorted(d["error_message"] for d, _ in dead))
    expected = [
        "not UTF-8",
        "unknown delivery shape",
        "finding.name: expected a non-empty string",
        "'10.0.0.300' is not a valid IP address",
        "'203.0.113.9\\\\u2067' is not a valid IP address",
        "more than the 2048 an identifier may have",
        "Id: expected a non-empty string, got a int",
    ]
    for cause in expected:
        assert cause in causes, f"{cause!r} not among: {causes}"
    for d, h in dead:
        assert d["source"] == f"pubsub://{SUB}" and h["alertline.source.message_id"]
        assert d["raw_uri"].startswith(f"s3://{bucket}/raw/pubsub/")
    pub.close()
