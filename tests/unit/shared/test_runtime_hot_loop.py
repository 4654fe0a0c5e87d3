"""The runtime's per-record loop, without a broker: it is fed confluent-kafka Messages built in
memory. What it must keep exact while it inlines and batches its work: every record is timed
into the latency histogram once (failed ones not at all), an unread forwarded value keeps its
bytes, and anything else (a value read, another writer version, a bad header) takes the slow
path it always took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.errors import BadInput
from alertline.kafka.runtime import Runner, Stage, _Batch
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Output, Record
from alertline.testing.samples import alert
from tests.unit.shared.test_avro_codec import _evolved_schemas, _published


def _runner(codec: SingleObjectCodec, handler: Any) -> Runner:
    stage = Stage("hot", "hot-group", ["src"], "alert", handler, "dlq")
    return Runner(
        stage, KafkaSettings(bootstrap="127.0.0.1:9"), RuntimeSettings(http_port=0, instance_id="x"), codec,
        registry=CollectorRegistry(),
    )  # fmt: skip


def _msg(offset: int, value: bytes, partition: int = 0) -> Message:
    return Message(topic="src", partition=partition, offset=offset, key=b"k%d" % offset, value=value,
                   headers=None, timestamp=(1, 1_700_000_000_000 + offset))  # fmt: skip


def _histogram(r: Runner) -> dict[str, float]:
    reg = r.registry
    out = {"count": reg.get_sample_value("alertline_processing_seconds_count", {"service": "hot"}) or 0.0,
           "sum": reg.get_sample_value("alertline_processing_seconds_sum", {"service": "hot"}) or 0.0}  # fmt: skip
    for le in ("0.0001", "0.005", "0.01"):
        out[le] = reg.get_sample_value("alertline_processing_seconds_bucket", {"service": "hot", "le": le}) or 0.0
    return out


def test_each_record_is_timed_once_slow_ones_in_their_bucket_failed_ones_not_at_all() -> None:
    codec = SingleObjectCodec()
    data = codec.encode("alert", alert(1))

    def handler(rec: Record, ctx: Context) -> Iterator[Output]:
        if rec.offset == 3:
            time.sleep(0.006)
        if rec.offset == 5:
            raise BadInput("no")
        yield Output("dst", rec.value, key=rec.key, schema="alert")

    r = _runner(codec, handler)
    msgs = [_msg(i, data, partition=i % 2) for i in range(10)]
    batch = _Batch()
    r._process(msgs, batch)
    h = _histogram(r)
    assert h["count"] == 9  # the dead-lettered record is not timed
    assert h["0.005"] == 8 and h["0.01"] == 9  # the one slow record, in its own bucket
    assert 0.006 <= h["sum"] < 1.0
    assert [e[0] for e in batch.pending].count("dlq") == 1
    assert batch.next == {("src", 0): 9, ("src", 1): 10}
    assert r.registry.get_sample_value("alertline_consumed_total", {"service": "hot", "topic": "src"}) == 10


def test_an_unread_value_is_forwarded_as_the_same_bytes_and_a_read_one_is_encoded_again() -> None:
    codec = SingleObjectCodec()
    data = [codec.encode("alert", alert(i)) for i in range(4)]

    def handler(rec: Record, ctx: Context) -> Iterator[Output]:
        if rec.offset == 1:
            assert rec.value["title"]  # read: encoded again
        if rec.offset == 2:
            yield Output("dst", rec.value, key=rec.key, schema="decision_input_copy_is_not_a_schema")
            return
        yield Output("dst", rec.value, key=rec.key, schema="alert")

    r = _runner(codec, handler)
    batch = _Batch()
    r._process([_msg(i, d) for i, d in enumerate(data)], batch)
    out = {e[2]: e for e in batch.pending}
    assert out[b"k0"][1] is data[0] and out[b"k3"][1] is data[3]
    assert out[b"k1"][1] == data[1] and out[b"k1"][1] is not data[1]
    assert out[b"k2"][0] == "dlq"  # an unknown output schema dead-letters its input


def test_an_older_writer_is_upgraded_and_a_bad_header_is_dead_lettered(tmp_path: Path) -> None:
    old_dir = _evolved_schemas(tmp_path, "older")
    old = SingleObjectCodec(old_dir)
    codec = SingleObjectCodec(lookup=_published(old_dir))
    a = alert(7)
    del a["console_url"]
    older = old.encode("alert", a)

    def handler(rec: Record, ctx: Context) -> Iterator[Output]:
        yield Output("dst", rec.value, key=rec.key, schema="alert")

    r = _runner(codec, handler)
    batch = _Batch()
    r._process([_msg(0, older), _msg(1, b"\x00not avro"), _msg(2, b"\xc3\x01" + b"\x00" * 8 + b"x")], batch)
    first, *dead = batch.pending
    assert first[0] == "dst" and first[1] != older
    assert codec.decode("alert", first[1])["console_url"] is None
    assert [e[0] for e in dead] == ["dlq", "dlq"]


def test_headers_and_timestamp_are_read_from_the_message_when_a_handler_asks() -> None:
    codec = SingleObjectCodec()
    seen: list[tuple[Any, int]] = []

    def handler(rec: Record, ctx: Context) -> Iterator[Output]:
        seen.append((dict(rec.headers), rec.timestamp_ms))
        return iter(())

    r = _runner(codec, handler)
    data = codec.encode("alert", alert(1))
    with_headers = Message(topic="src", partition=0, offset=1, key=b"k", value=data,
                           headers=[("trace", b"t1"), ("text", "s"), ("none", None)], timestamp=(1, 1234))  # fmt: skip
    r._process([_msg(0, data), with_headers], _Batch())
    assert seen == [({}, 1_700_000_000_000), ({"trace": b"t1", "text": b"s", "none": b""}, 1234)]


def test_a_record_built_by_hand_keeps_what_it_was_given() -> None:
    rec = Record("t", 1, 2, b"k", {"a": 1}, {"h": b"v"}, 99)
    assert (rec.headers, rec.timestamp_ms, rec.key_str) == ({"h": b"v"}, 99, "k")
    bare = Record("t", 1, 2, None, None)
    assert (dict(bare.headers), bare.timestamp_ms, bare.key_str) == ({}, 0, "")
