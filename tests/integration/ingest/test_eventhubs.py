"""Defender for Cloud via Event Hubs at the SDK boundary: the handler gets real
``azure.eventhub.EventData`` (decoded from AMQP by the SDK's own codec) and checkpoints through
a real ``CheckpointStore`` via ``PartitionContext.update_checkpoint``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alertline.settings import KafkaSettings
from devtools.eventhubs import FakeEventHub, FileCheckpointStore, PartitionPump
from services.ingest.sources.backoff import Backoff
from services.ingest.sources.eventhubs import EventHubsHandler
from tests.integration.ingest.support import (
    alerts,
    boto,
    dead_letters,
    defender,
    doc,
    fence,
    fixture,
    make_topics,
    pipeline,
    source_ids,
    unique,
)

pytestmark = pytest.mark.kafka


class Running:
    def __init__(self, pump: PartitionPump, handler: EventHubsHandler) -> None:
        self.stop = handler.stop
        self.thread = threading.Thread(target=pump, args=(handler, self.stop))

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def _checkpoints(store: FileCheckpointStore, pump: PartitionPump) -> dict[str, int]:
    cps = store.list_checkpoints(pump.namespace, pump.eventhub, pump.consumer_group)
    return {c["partition_id"]: c["sequence_number"] for c in cps}


def _wait(cond: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def parts(tmp_path: Path, moto_endpoint: str) -> dict[str, Any]:
    hub = FakeEventHub(tmp_path / "hub", partitions=2)
    store = FileCheckpointStore(tmp_path / "checkpoints.json")
    s3 = boto("s3", moto_endpoint)
    return {"hub": hub, "store": store, "pump": PartitionPump(hub, store), "s3": s3}


def test_event_batch_is_archived_published_then_checkpointed(
    parts: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    bucket = unique("archive")
    parts["s3"].create_bucket(Bucket=bucket)
    p, pub = pipeline(kafka_settings, parts["s3"], bucket)
    hub = parts["hub"]
    # Defender's continuous export: one alert per event, a bare array, or a records wrapper.
    bodies = {
        "flat": fixture("defender/flat-ssh-brute-force.json"),
        "array": fixture("defender/array.json"),
        "records": fixture("defender/records-wrapper.json"),
        "rest": fixture("defender/rest-storage-tor-access.json"),
    }
    hub.send(bodies["flat"], "0")
    hub.send(bodies["array"], "0")
    hub.send(bodies["records"], "1", properties={"x-ms-export": "continuous"})
    hub.send(bodies["rest"].decode(), "1")  # an AMQP value (string) body, not data sections
    handler = EventHubsHandler(p, p.metrics, threading.Event(), backoff=Backoff(0.1, 0.5))
    with Running(parts["pump"], handler):
        assert _wait(lambda: _checkpoints(parts["store"], parts["pump"]) == {"0": 1, "1": 1})
    expected = set().union(*(source_ids(b) for b in bodies.values()))
    got = alerts(kafka_settings, expect=6)
    assert {a["source_id"] for a in got} == expected and {a["provider"] for a in got} == {"azure"}
    keys = [o["Key"] for o in parts["s3"].list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 4 and all(k.startswith("raw/eventhubs/") for k in keys)
    pub.close()


def test_archive_failure_holds_the_checkpoint_until_the_event_is_archived(
    parts: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    bucket = unique("not-yet")
    p, pub = pipeline(kafka_settings, parts["s3"], bucket)
    parts["hub"].send(defender("-5"), "0")
    handler = EventHubsHandler(p, p.metrics, threading.Event(), backoff=Backoff(0.1, 0.5))
    with Running(parts["pump"], handler):
        assert _wait(lambda: p.metrics.archive_failures.labels("eventhubs")._value.get() >= 2)
        assert _checkpoints(parts["store"], parts["pump"]) == {}
        assert alerts(kafka_settings, timeout=3) == []
        parts["s3"].create_bucket(Bucket=bucket)
        assert _wait(lambda: _checkpoints(parts["store"], parts["pump"]) == {"0": 0})
    assert {a["source_id"] for a in alerts(kafka_settings, expect=1)} == source_ids(defender("-5"))
    pub.close()


def test_kafka_failure_holds_the_checkpoint(parts: dict[str, Any], kafka_settings: KafkaSettings) -> None:
    make_topics(kafka_settings)
    bucket = unique("archive")
    parts["s3"].create_bucket(Bucket=bucket)
    txn = unique(kafka_settings.topic_prefix + "ingest-eh")
    p, pub = pipeline(kafka_settings, parts["s3"], bucket, txn_id=txn)
    hub, store, pump = parts["hub"], parts["store"], parts["pump"]
    hub.send(defender("-6"), "0")
    handler = EventHubsHandler(p, p.metrics, threading.Event(), backoff=Backoff(0.5, 1))
    with Running(pump, handler):
        assert _wait(lambda: _checkpoints(store, pump) == {"0": 0})
        fence(kafka_settings, txn)
        hub.send(defender("-7"), "0")
        assert _wait(lambda: p.metrics.publish_failures.labels("eventhubs")._value.get() >= 1)
        assert _checkpoints(store, pump) == {"0": 0}, "not checkpointed past an unconfirmed event"
        assert _wait(lambda: _checkpoints(store, pump) == {"0": 1})
    assert {a["source_id"] for a in alerts(kafka_settings, expect=2)} == source_ids(defender("-6")) | source_ids(
        defender("-7")
    )
    pub.close()


def test_bad_events_are_archived_dead_lettered_and_checkpointed(
    parts: dict[str, Any], kafka_settings: KafkaSettings
) -> None:
    make_topics(kafka_settings)
    bucket = unique("archive")
    parts["s3"].create_bucket(Bucket=bucket)
    p, pub = pipeline(kafka_settings, parts["s3"], bucket)

    def alert(**changes: object) -> bytes:
        a = doc("defender/flat-ssh-brute-force.json")
        a.update(changes)
        return json.dumps(a).encode()

    bad = [
        b"[{]",
        json.dumps({"records": [{"what": 1}]}).encode(),
        alert(SystemAlertId=""),
        alert(SystemAlertId=7),
        alert(SystemAlertId="s" * 3_000_000),
        _rest_without_subscription(),
    ]
    for b in bad:
        parts["hub"].send(b, "1")
    handler = EventHubsHandler(p, p.metrics, threading.Event(), backoff=Backoff(0.1, 0.5))
    with Running(parts["pump"], handler):
        assert _wait(lambda: _checkpoints(parts["store"], parts["pump"]) == {"1": len(bad) - 1})
    dead = dead_letters(kafka_settings, expect=len(bad))
    assert len(dead) == len(bad) and alerts(kafka_settings, timeout=3) == []
    causes = " | ".join(sorted(d["error_message"] for d, _ in dead))
    for cause in ("malformed JSON", "unknown delivery shape", "SystemAlertId: expected a non-empty string",
                  "more than the 2048 an identifier may have", "no subscription id"):  # fmt: skip
        assert cause in causes, f"{cause!r} not among: {causes}"
    for d, h in dead:
        assert d["partition"] == 1 and d["offset"] is not None and h["alertline.source.sequence_number"]
        assert d["raw_uri"].startswith(f"s3://{bucket}/raw/eventhubs/")
    pub.close()


def _rest_without_subscription() -> bytes:
    a = doc("defender/rest-dismissed.json")
    a["id"] = "no-subscription-here"
    a["properties"]["resourceIdentifiers"] = []
    return json.dumps(a).encode()
