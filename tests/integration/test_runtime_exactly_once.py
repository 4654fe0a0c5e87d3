"""The runtime against the real broker: exactly once through SIGKILLs, poison to the DLQ."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert
from tests.conftest import REPO

pytestmark = pytest.mark.kafka

N = 20_000


def _topics(bootstrap: str, prefix: str, names: list[str], partitions: int = 3) -> list[str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    full = [prefix + n for n in names]
    create(AdminClient({"bootstrap.servers": bootstrap}), [NewTopic(t, partitions, 1) for t in full])
    return full


def _end_offsets(bootstrap: str, topic: str) -> int:
    """Progress, cheaply: high watermarks (they also count transaction markers)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "progress"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3))
    finally:
        c.close()


def _spawn(bootstrap: str, *args: str) -> subprocess.Popen[bytes]:
    # Small transactions keep the stages busy long enough for the kills to land mid-stream.
    env = os.environ | {"KAFKA_BOOTSTRAP": bootstrap, "PYTHONPATH": str(REPO), "BATCH": "25", "SLEEP_MS": "0.5"}
    return subprocess.Popen([sys.executable, "-m", "tests.integration.toy_stage", *args], env=env, cwd=REPO)


def test_two_stage_pipeline_holds_every_record_exactly_once_through_sigkills(kafka_bootstrap: str, prefix: str) -> None:
    src, mid, out, dlq1, dlq2 = _topics(kafka_bootstrap, prefix, ["in", "mid", "out", "dlq1", "dlq2"])
    codec = SingleObjectCodec()
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"})
    for i in range(N):
        a = alert(i)
        p.produce(src, codec.encode("alert", a), a["identity"].encode())
        if i == N // 2:
            p.produce(src, b"\x00not avro at all", b"poison-1")
            poison = alert(N + 1, title="poison")
            p.produce(src, codec.encode("alert", poison), poison["identity"].encode())
        if i % 5000 == 0:
            p.flush()
    p.flush()

    s1 = _spawn(kafka_bootstrap, src, mid, dlq1, prefix + "stage1", "a")
    s2 = _spawn(kafka_bootstrap, mid, out, dlq2, prefix + "stage2", "b")
    kills = 0
    mid_stream = 0
    try:
        # Kill both stages each time another sixth of the records has come through.
        for k in range(1, 5):
            deadline = time.monotonic() + 120
            while (seen := _end_offsets(kafka_bootstrap, out)) < k * N // 6:
                assert time.monotonic() < deadline, f"stalled at {seen}"
                time.sleep(0.2)
            mid_stream += seen < N
            for proc in (s1, s2):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
            s1 = _spawn(kafka_bootstrap, src, mid, dlq1, prefix + "stage1", "a")
            s2 = _spawn(kafka_bootstrap, mid, out, dlq2, prefix + "stage2", "b")
        got = read_all(kafka_bootstrap, out, timeout=180, expect=N)
        # Let anything extra (a duplicate) arrive before judging.
        time.sleep(3)
        got = read_all(kafka_bootstrap, out, timeout=60)
    finally:
        for proc in (s1, s2):
            proc.send_signal(signal.SIGTERM)
        for proc in (s1, s2):
            assert proc.wait(timeout=60) == 0, "SIGTERM must drain and exit cleanly"

    assert kills == 8
    assert mid_stream == 4, "the kills must land while records are flowing"
    ids = Counter(m.key().decode() for m in got)
    assert len(ids) == N, f"lost {N - len(ids)} records"
    dupes = {k: c for k, c in ids.items() if c > 1}
    assert not dupes, f"{len(dupes)} duplicated, e.g. {list(dupes)[:3]}"
    for m in got[:50]:
        v = codec.decode("alert", m.value())
        assert v["labels"] == {prefix + "stage1": "seen", prefix + "stage2": "seen"}

    dead = read_all(kafka_bootstrap, dlq1, timeout=30)
    assert len(dead) == 2
    by_class = {dict(m.headers())["alertline.error.class"].decode(): m for m in dead}
    assert set(by_class) == {"alertline.errors.DecodeError", "alertline.errors.BadInput"}
    undecodable = codec.decode("dead_letter", by_class["alertline.errors.DecodeError"].value())
    assert undecodable["value"] == b"\x00not avro at all"
    assert undecodable["source"] == src and undecodable["offset"] is not None
    h = dict(by_class["alertline.errors.BadInput"].headers())
    assert h["alertline.error.message"] == b"poison title"
    assert h["alertline.source.topic"] == src.encode()
    assert int(h["alertline.source.offset"]) >= 0
    assert read_all(kafka_bootstrap, dlq2, timeout=10) == []
