"""Kill the ingest process (SIGKILL-equivalent ``os._exit(137)``) between the Kafka commit and
the source acknowledgement, restart it, and show: no alert lost, and no second alert
*version*. The redelivery re-publishes the same (identity, revision), so the alerts topic may
hold a version twice (at most twice here: one crash); evaluate, the first keyed stage, drops
the repeat by (identity, revision) (docs/decisions/0201-ack-after-kafka-commit.md). These
tests assert exactly that: every identity present, each (identity, revision) at most twice,
and the crashed delivery's versions really were published twice.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alertline.settings import KafkaSettings
from devtools.eventhubs import FakeEventHub, FileCheckpointStore
from devtools.pubsub_fake import PubSubFake
from tests.integration.ingest.support import (
    alerts,
    asff,
    aws_env,
    boto,
    defender,
    make_topics,
    scc,
    source_ids,
    spawn_ingest,
    spawn_service,
    unique,
    versions,
)

pytestmark = pytest.mark.kafka

N = 6  # deliveries per source


def _env(kafka: KafkaSettings, moto_endpoint: str, bucket: str) -> dict[str, str]:
    return aws_env(moto_endpoint) | {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka.bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "ALERTLINE_KAFKA__TRANSACTION_TIMEOUT_MS": "10000",
        "ALERTLINE_ARCHIVE__BUCKET": bucket,
        "ALERTLINE_RUNTIME__HTTP_PORT": "0",
        "ALERTLINE_RUNTIME__HTTP_HOST": "127.0.0.1",
        "ALERTLINE_RUNTIME__INSTANCE_ID": "crash-test",
        "ALERTLINE_RUNTIME__LOG_LEVEL": "WARNING",
        "ALERTLINE_RUNTIME__BACKOFF_MAX_S": "2",
    }


def _crash_then_recover(
    env: dict[str, str],
    drained: Callable[[], bool],
    kafka: KafkaSettings,
    bodies: list[bytes],
    spawn: Callable[[dict[str, str]], Any] = spawn_service,
) -> None:
    expected = set().union(*(source_ids(b) for b in bodies))
    first = spawn(env | {"ALERTLINE_TEST_CRASH_AFTER_PUBLISH": "1"})
    try:
        assert first.wait(90) == 137, "the test hook kills the process right after a Kafka commit"
    finally:
        if first.poll() is None:
            first.kill()
    committed = alerts(kafka, timeout=10)
    assert committed, "the crash came after the commit: those alerts are in Kafka"
    assert not drained(), "... and their source was not acknowledged"

    second = spawn(env)
    try:
        deadline = time.monotonic() + 90
        while not drained() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert drained(), "after the restart every delivery is acknowledged"
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, "SIGTERM drains and exits cleanly"
    finally:
        if second.poll() is None:
            second.kill()

    got = alerts(kafka, expect=len(expected) + len(committed))
    ids = {a["source_id"] for a in got}
    assert ids == expected, f"lost {len(expected - ids)} alerts"
    v = versions(got)
    assert max(v.values()) <= 2, "no version more than twice after one crash"
    repeated = {k for k, c in v.items() if c == 2}
    assert repeated == set(versions([a for a in committed])), "exactly the crashed delivery came again"


def test_sqs_crash_between_kafka_commit_and_delete_loses_nothing(
    moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3, sqs = boto("s3", moto_endpoint), boto("sqs", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=unique("crash"))["QueueUrl"]
    bodies = [asff(f"-{i}-a", f"-{i}-b") for i in range(N)]  # two Security Hub findings each
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body.decode())

    def drained() -> bool:
        a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]) == 0

    env = _env(kafka_settings, moto_endpoint, bucket) | {
        "ALERTLINE_INGEST__SQS__QUEUE_URLS": json.dumps([queue]),
        "ALERTLINE_INGEST__SQS__WAIT_S": "1",
        "ALERTLINE_INGEST__SQS__MAX_MESSAGES": "2",
        "ALERTLINE_INGEST__SQS__VISIBILITY_TIMEOUT_S": "3",
    }
    _crash_then_recover(env, drained, kafka_settings, bodies)


@pytest.fixture
def pubsub() -> Iterator[PubSubFake]:
    f = PubSubFake()
    f.start()
    yield f
    f.stop()


def test_pubsub_crash_between_kafka_commit_and_ack_loses_nothing(
    pubsub: PubSubFake, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    topic, sub = "projects/p/topics/scc", "projects/p/subscriptions/ingest"
    pubsub.create_topic(topic)
    pubsub.create_subscription(sub, topic)
    bodies = [scc(f"-{i}") for i in range(N)]
    for body in bodies:
        pubsub.publish(topic, body)
    env = _env(kafka_settings, moto_endpoint, bucket) | {
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "ALERTLINE_INGEST__PUBSUB__SUBSCRIPTIONS": json.dumps([sub]),
        "ALERTLINE_INGEST__PUBSUB__CONCURRENCY": "1",
    }
    _crash_then_recover(env, lambda: pubsub.stats(sub).acked == N, kafka_settings, bodies)
    assert max(pubsub.stats(sub).deliveries.values()) >= 2, "unacked messages were redelivered after their lease"


def test_eventhubs_crash_between_kafka_commit_and_checkpoint_loses_nothing(
    tmp_path: Path, moto_endpoint: str, kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    hub = FakeEventHub(tmp_path / "hub", partitions=2)
    bodies = [defender(f"-{i}") for i in range(N)]
    for i, body in enumerate(bodies):
        hub.send(body, str(i % 2))
    store = FileCheckpointStore(tmp_path / "checkpoints.json")

    def drained() -> bool:
        cps = store.list_checkpoints("alertline-demo.servicebus.windows.net", "defender-export", "$Default")
        return {c["partition_id"]: c["sequence_number"] for c in cps} == {"0": N // 2 - 1, "1": N // 2 - 1}

    env = _env(kafka_settings, moto_endpoint, bucket) | {
        # The receiver is driven at the SDK boundary (ingest_proc.py); these only switch the source on.
        "ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE": "alertline-demo.servicebus.windows.net",
        "ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME": "defender-export",
        "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL": "https://unused.blob.core.windows.net/checkpoints",
        "INGEST_TEST_EVENTHUB_DIR": str(tmp_path / "hub"),
        "INGEST_TEST_CHECKPOINTS": str(tmp_path / "checkpoints.json"),
    }
    _crash_then_recover(env, drained, kafka_settings, bodies, spawn=spawn_ingest)
    assert json.loads((tmp_path / "checkpoints.json").read_text())["ownership"]
