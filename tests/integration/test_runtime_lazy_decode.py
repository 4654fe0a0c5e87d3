"""Lazy decoding in the runtime, against the real broker: an unread record is forwarded byte for
byte, a corrupt body still ends in a dead-letter topic with its cause, and an output that cannot
be encoded dead-letters its input while the rest flow on."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create
from alertline.kafka.runtime import Runner, Stage
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Handler, Output, Record
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert

pytestmark = pytest.mark.kafka
CODEC = SingleObjectCodec()
N = 200


def _topics(bootstrap: str, prefix: str, *names: str) -> list[str]:
    create(AdminClient({"bootstrap.servers": bootstrap}), [NewTopic(prefix + n, 3, 1) for n in names])
    return [prefix + n for n in names]


@contextmanager
def _running(bootstrap: str, group: str, src: str, handler: Handler, dlq: str) -> Iterator[Runner]:
    runner = Runner(
        Stage("lazy", group, [src], "alert", handler, dlq),
        KafkaSettings(bootstrap=bootstrap, transaction_timeout_ms=10000),
        RuntimeSettings(http_port=0, instance_id="x", session_timeout_ms=6000, batch_size=50),
        CODEC,
    )
    t = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    try:
        yield runner
    finally:
        runner.stop()
        t.join(60)
        assert not t.is_alive()


def _corrupt_body() -> bytes:
    data = CODEC.encode("alert", alert(N + 1))
    return data[:10] + b"\xff" * (len(data) - 10)  # a known writer schema, an undecodable body


def _produce(bootstrap: str, topic: str, extra: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    sent = {}
    for i in range(N):
        a = alert(i)
        sent[a["identity"].encode()] = data = CODEC.encode("alert", a)
        p.produce(topic, data, a["identity"].encode())
        if i == N // 2:
            for key, value in extra:
                p.produce(topic, value, key)
    p.flush()
    return sent


def test_a_corrupt_body_forwarded_unread_is_dead_lettered_by_the_next_stage_that_reads_it(
    kafka_bootstrap: str, prefix: str
) -> None:
    src, mid, out, dlq1, dlq2 = _topics(kafka_bootstrap, prefix, "in", "mid", "out", "dlq1", "dlq2")
    sent = _produce(kafka_bootstrap, src, [(b"corrupt-body", _corrupt_body()), (b"bad-header", b"\x00not avro")])

    def forward(rec: Record, ctx: Context) -> Iterable[Output]:
        return [Output(mid, rec.value, key=rec.key, schema="alert")]

    def read(rec: Record, ctx: Context) -> Iterable[Output]:
        return [Output(out, rec.value | {"title": rec.value["title"] + " (read)"}, key=rec.key, schema="alert")]

    with (
        _running(kafka_bootstrap, prefix + "forward", src, forward, dlq1),
        _running(kafka_bootstrap, prefix + "read", mid, read, dlq2),
    ):
        got = read_all(kafka_bootstrap, out, timeout=90, expect=N)
        dead1 = read_all(kafka_bootstrap, dlq1, timeout=30, expect=1)
        dead2 = read_all(kafka_bootstrap, dlq2, timeout=30, expect=1)

    forwarded = read_all(kafka_bootstrap, mid, timeout=30)
    assert {m.key(): m.value() for m in forwarded if m.key() in sent} == sent, "unread records keep their bytes"
    assert len(got) == N
    assert all(CODEC.decode("alert", m.value())["title"].endswith(" (read)") for m in got)
    # The header is checked where the record enters: a bad one stops at the first stage.
    [h1] = [dict(m.headers()) for m in dead1]
    assert h1["alertline.error.class"] == b"alertline.errors.DecodeError"
    assert h1["alertline.source.topic"] == src.encode()
    # A corrupt body nobody read travels on, and the first stage that reads it dead-letters it.
    [d2] = dead2
    h2 = dict(d2.headers())
    assert h2["alertline.error.class"] == b"alertline.errors.DecodeError"
    assert b"corrupt 'alert' payload" in h2["alertline.error.message"]
    assert h2["alertline.source.topic"] == mid.encode()
    envelope = CODEC.decode("dead_letter", d2.value())
    assert envelope["value"] == _corrupt_body() and envelope["key"] == b"corrupt-body"


def test_a_handler_that_reads_a_corrupt_body_or_writes_an_unencodable_output_dead_letters_that_record(
    kafka_bootstrap: str, prefix: str
) -> None:
    src, out, dlq = _topics(kafka_bootstrap, prefix, "in", "out", "dlq")
    _produce(
        kafka_bootstrap,
        src,
        [(b"corrupt-body", _corrupt_body()), (b"unencodable", CODEC.encode("alert", alert(N + 2)))],
    )

    def handle(rec: Record, ctx: Context) -> Iterable[Output]:
        if rec.key == b"unencodable":
            return [Output(out, {"not": "an alert"}, key=rec.key, schema="alert")]
        return [Output(out, {"identity": rec.value["identity"]} | rec.value, key=rec.key, schema="alert")]

    with _running(kafka_bootstrap, prefix + "g", src, handle, dlq):
        got = read_all(kafka_bootstrap, out, timeout=90, expect=N)
        dead = read_all(kafka_bootstrap, dlq, timeout=30, expect=2)

    assert len(got) == N
    by_key = {m.key(): dict(m.headers()) for m in dead}
    assert set(by_key) == {b"corrupt-body", b"unencodable"}
    assert by_key[b"corrupt-body"]["alertline.error.class"] == b"alertline.errors.DecodeError"
    assert by_key[b"unencodable"]["alertline.source.topic"] == src.encode()
