"""The runtime's optional batch hook: ``Stage.prepare`` sees each decoded batch before its handlers."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import pytest
from confluent_kafka import Producer

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create
from alertline.kafka.runtime import Runner, Stage
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Output, Record
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert

pytestmark = pytest.mark.kafka


def test_prepare_sees_the_whole_batch_before_handlers_and_poison_still_dead_letters(
    kafka_bootstrap: str, prefix: str
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    src, out, dlq = (prefix + n for n in ("in", "out", "dlq"))
    create(AdminClient({"bootstrap.servers": kafka_bootstrap}), [NewTopic(t, 1, 1) for t in (src, out, dlq)])
    codec = SingleObjectCodec()
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(50):
        a = alert(i)
        p.produce(src, codec.encode("alert", a), a["identity"].encode())
    p.produce(src, b"\x00garbage", b"poison")
    p.flush()

    prepared: set[str] = set()
    batches: list[int] = []
    unprepared: list[str] = []

    def prepare(records: Sequence[Record]) -> None:
        batches.append(len(records))
        prepared.update(r.value["identity"] for r in records)

    def handle(rec: Record, ctx: Context) -> Iterable[Output]:
        if rec.value["identity"] not in prepared:
            unprepared.append(rec.value["identity"])
        yield Output(out, rec.value, key=rec.value["identity"], schema="alert")

    stage = Stage("t", prefix + "g", [src], "alert", handle, dlq, prepare=prepare)
    runner = Runner(
        stage,
        KafkaSettings(bootstrap=kafka_bootstrap, transaction_timeout_ms=10000),
        RuntimeSettings(instance_id="p1", http_port=0, http_host="127.0.0.1", session_timeout_ms=6000),
        codec,
    )
    t = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    try:
        got = read_all(kafka_bootstrap, out, timeout=60, expect=50)
        dead = read_all(kafka_bootstrap, dlq, timeout=30, expect=1)
    finally:
        runner.stop()
        t.join(30)
    assert len(got) == 50 and not unprepared
    assert sum(batches) == 50, "the undecodable record is not handed to prepare"
    assert dict(dead[0].headers())["alertline.error.class"] == b"alertline.errors.DecodeError"
