"""The Pub/Sub fake behaves like Pub/Sub where ingest depends on it, seen through the real client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devtools.pubsub_fake import PubSubFake

TOPIC, SUB = "projects/p/topics/t", "projects/p/subscriptions/s"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubFake]:
    f = PubSubFake()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f.start())
    yield f
    f.stop()


def _clients() -> tuple[Any, Any]:
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


def test_published_messages_are_streamed_and_acked(fake: PubSubFake) -> None:
    pub, sub = _clients()
    pub.create_topic(name=TOPIC)
    sub.create_subscription(name=SUB, topic=TOPIC)
    for i in range(5):
        pub.publish(TOPIC, f"m{i}".encode(), origin="test").result(10)
    got: list[bytes] = []

    def cb(m: Any) -> None:
        got.append(m.data)
        assert m.attributes["origin"] == "test" and m.publish_time.tzinfo is not None
        m.ack()

    future = sub.subscribe(SUB, cb)
    assert fake.wait_acked(SUB, 5, 20)
    future.cancel()
    assert sorted(got) == [f"m{i}".encode() for i in range(5)]
    assert fake.stats(SUB).unacked == 0


def test_a_nack_redelivers_at_once_with_a_new_ack_id(fake: PubSubFake) -> None:
    fake.create_topic(TOPIC)
    fake.create_subscription(SUB, TOPIC)
    fake.publish(TOPIC, b"x")
    _, sub = _clients()
    ack_ids: list[str] = []

    def cb(m: Any) -> None:
        ack_ids.append(m.ack_id)
        m.nack() if len(ack_ids) == 1 else m.ack()

    future = sub.subscribe(SUB, cb)
    assert fake.wait_acked(SUB, 1, 10)
    future.cancel()
    assert len(set(ack_ids)) == 2 and fake.stats(SUB).deliveries == {"1": 2}


def test_a_message_whose_consumer_died_is_redelivered_after_its_lease(fake: PubSubFake) -> None:
    fake.create_topic(TOPIC)
    fake.create_subscription(SUB, TOPIC)
    fake.publish(TOPIC, b"x")
    _, sub = _clients()
    held = threading.Event()
    future = sub.subscribe(SUB, lambda m: held.set())  # never acks
    assert held.wait(10)
    future.cancel()  # the consumer goes away holding the lease
    t0 = time.monotonic()
    future2 = sub.subscribe(SUB, lambda m: m.ack())
    assert fake.wait_acked(SUB, 1, 30)
    future2.cancel()
    assert time.monotonic() - t0 >= 5, "not before the lease expired"
    assert fake.stats(SUB).deliveries == {"1": 2}


def test_pull_acknowledge_and_modify_ack_deadline(fake: PubSubFake) -> None:
    fake.create_topic(TOPIC)
    fake.create_subscription(SUB, TOPIC)
    fake.publish(TOPIC, b"a")
    fake.publish(TOPIC, b"b")
    _, sub = _clients()
    resp = sub.pull(subscription=SUB, max_messages=10)
    assert [m.message.data for m in resp.received_messages] == [b"a", b"b"]
    assert sub.pull(subscription=SUB, max_messages=10).received_messages == [], "leased"
    a, b = resp.received_messages
    sub.acknowledge(subscription=SUB, ack_ids=[a.ack_id])
    sub.modify_ack_deadline(subscription=SUB, ack_ids=[b.ack_id], ack_deadline_seconds=0)
    again = sub.pull(subscription=SUB, max_messages=10).received_messages
    assert [m.message.data for m in again] == [b"b"]
    sub.acknowledge(subscription=SUB, ack_ids=[b.ack_id])  # stale ack id: ignored
    assert fake.stats(SUB).acked == 1


def test_unknown_subscription_is_not_found(fake: PubSubFake) -> None:
    _, sub = _clients()
    with pytest.raises(gexc.NotFound):
        sub.pull(subscription="projects/p/subscriptions/missing", max_messages=1)
