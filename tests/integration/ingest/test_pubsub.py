"""Google SCC via Pub/Sub: the real google-cloud-pubsub client against devtools/pubsub_fake.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from alertline.settings import KafkaSettings
from devtools.pubsub_fake import PubSubFake
from services.ingest.sources.pubsub import PubSubSource
from tests.integration.ingest import standin
from tests.integration.ingest.support import alerts, boto, dead_letters, fence, make_topics, pipeline, unique

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
    body = standin.delivery({"id": "scc-1", "title": "open firewall"})
    fake.publish(TOPIC, body)
    with Running(_source(p)):
        assert fake.wait_acked(SUB, 1, 30)
    assert [a["source_id"] for a in alerts(kafka_settings, expect=1)] == ["scc-1"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("raw/pubsub/")
    assert fake.stats(SUB).unacked == 0
    pub.close()


def test_pubsub_archive_failure_nacks_and_the_message_is_redelivered(
    fake: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("not-yet")
    p, pub = pipeline(kafka_settings, s3, bucket)
    fake.publish(TOPIC, standin.delivery({"id": "scc-2", "title": "t"}))
    with Running(_source(p)):
        deadline = time.monotonic() + 20
        while fake.stats(SUB).deliveries.get("1", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake.stats(SUB).acked == 0 and fake.stats(SUB).deliveries["1"] >= 2, "nacked and redelivered"
        assert alerts(kafka_settings, timeout=3) == []
        s3.create_bucket(Bucket=bucket)
        assert fake.wait_acked(SUB, 1, 30)
    assert [a["source_id"] for a in alerts(kafka_settings, expect=1)] == ["scc-2"]
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
        fake.publish(TOPIC, standin.delivery({"id": "scc-3", "title": "t"}))
        assert fake.wait_acked(SUB, 1, 30)
        fence(kafka_settings, txn)
        fake.publish(TOPIC, standin.delivery({"id": "scc-4", "title": "t"}))
        assert fake.wait_acked(SUB, 2, 60)
    assert p.metrics.publish_failures.labels("pubsub")._value.get() >= 1
    assert fake.stats(SUB).deliveries["2"] >= 2, "the failed delivery was nacked and came again"
    assert sorted(a["source_id"] for a in alerts(kafka_settings, expect=2)) == ["scc-3", "scc-4"]
    pub.close()


def test_pubsub_bad_input_is_archived_dead_lettered_and_acked(
    fake: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    p, pub = pipeline(kafka_settings, s3, bucket)
    bad = [
        b"\xff\xfe not json",
        b'{"notificationConfigName": "x"}',
        standin.delivery({"title": "no id"}),
        standin.delivery({"id": "ip", "title": "t", "ip": "10.0.0.300"}),
        standin.delivery({"id": "big", "title": "B" * (2 * 1024 * 1024)}),
        standin.delivery({"id": "cc", "title": "x\u2067y\x1b[31m"}),
    ]
    for b in bad:
        fake.publish(TOPIC, b)
    with Running(_source(p)):
        assert fake.wait_acked(SUB, len(bad), 30)
    dead = dead_letters(kafka_settings, expect=len(bad))
    assert len(dead) == len(bad)
    assert alerts(kafka_settings, timeout=3) == []
    causes = sorted(d["error_message"].split(":")[0] for d, _ in dead)
    assert any(c.startswith("malformed JSON") for c in causes) and any("record limit" in c for c in causes)
    for d, h in dead:
        assert d["source"] == f"pubsub://{SUB}" and h["alertline.source.message_id"]
        assert d["raw_uri"].startswith(f"s3://{bucket}/raw/pubsub/")
    pub.close()
