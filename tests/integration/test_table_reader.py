"""The compacted-topic table reader against the real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from alertline.kafka.admin import create
from alertline.kafka.table import TableReader
from alertline.settings import KafkaSettings

pytestmark = pytest.mark.kafka


def _topic(bootstrap: str, name: str, partitions: int = 3) -> str:
    create(AdminClient({"bootstrap.servers": bootstrap}), [NewTopic(name, partitions, 1)])
    return name


def _eventually(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_reader_catches_up_then_follows_updates_and_tombstones(kafka_bootstrap: str, prefix: str) -> None:
    topic = _topic(kafka_bootstrap, prefix + "lookups")
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(30):
        p.produce(topic, json.dumps({"n": i}).encode(), f"k{i}".encode())
    p.produce(topic, json.dumps({"n": 100}).encode(), b"k1")
    p.flush()

    seen: list[tuple[str, object]] = []
    reader = TableReader(KafkaSettings(bootstrap=kafka_bootstrap), topic, on_change=lambda k, v: seen.append((k, v)))
    reader.start()
    try:
        assert reader.wait_ready(20), "must report ready after reading every partition to its end"
        assert len(reader.rows) == 30
        assert reader.get("k1") == {"n": 100}, "the latest value of a key wins"

        p.produce(topic, json.dumps({"n": 7}).encode(), b"new")
        p.produce(topic, None, b"k2")
        p.flush()
        assert _eventually(lambda: reader.get("new") == {"n": 7} and "k2" not in reader.rows)
        assert ("k2", None) in seen, "tombstones reach on_change as None"
        assert reader.healthy()
    finally:
        reader.stop()


def test_undecodable_row_is_skipped_counted_and_keeps_the_previous_value(kafka_bootstrap: str, prefix: str) -> None:
    topic = _topic(kafka_bootstrap, prefix + "lookups", partitions=1)
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    p.produce(topic, b'{"ok": 1}', b"a")
    p.produce(topic, b"{not json", b"a")
    p.produce(topic, b'{"ok": 2}', b"b")
    p.flush()
    reader = TableReader(KafkaSettings(bootstrap=kafka_bootstrap), topic).start()
    try:
        assert reader.wait_ready(20)
        assert _eventually(lambda: reader.get("b") == {"ok": 2})
        assert reader.get("a") == {"ok": 1}
        assert reader.bad_rows == 1
    finally:
        reader.stop()


def test_aborted_transactions_are_never_applied(kafka_bootstrap: str, prefix: str) -> None:
    topic = _topic(kafka_bootstrap, prefix + "lookups", partitions=1)
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": prefix + "tx"})
    tx.init_transactions(30)
    tx.begin_transaction()
    tx.produce(topic, b'{"v": "aborted"}', b"a")
    tx.abort_transaction(30)
    tx.begin_transaction()
    tx.produce(topic, b'{"v": "committed"}', b"b")
    tx.commit_transaction(30)
    reader = TableReader(KafkaSettings(bootstrap=kafka_bootstrap), topic).start()
    try:
        assert reader.wait_ready(20)
        assert _eventually(lambda: "b" in reader.rows)
        assert reader.rows == {"b": {"v": "committed"}}
    finally:
        reader.stop()


def test_reader_waits_for_a_topic_that_does_not_exist_yet(kafka_bootstrap: str, prefix: str) -> None:
    topic = prefix + "later"
    reader = TableReader(KafkaSettings(bootstrap=kafka_bootstrap), topic, poll_timeout_s=0.2).start()
    try:
        assert not reader.wait_ready(1.5), "no topic, no readiness"
        _topic(kafka_bootstrap, topic, partitions=2)
        assert reader.wait_ready(20), "ready once the topic appears (empty partitions count as caught up)"
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        p.produce(topic, b"[1, 2]", b"x")
        p.flush()
        assert _eventually(lambda: reader.get("x") == [1, 2])
    finally:
        reader.stop()
