"""The pipeline's ordering and bad-input handling, with in-memory archive and publisher fakes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.errors import NormalizeError, Transient
from alertline.stage import Output
from services.ingest.domain import Delivery, Done, Retry
from services.ingest.normalize import NormalizeResult, normalize
from services.ingest.pipeline import CRASH_EXIT_CODE, IngestMetrics, Pipeline, Topics
from tests.integration.ingest.support import asff

T = datetime(2026, 11, 23, 10, tzinfo=UTC)
CODEC = SingleObjectCodec()


class MemoryArchive:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.down = False
        self.log: list[str] = []

    def put(self, key: str, body: bytes, sha256_hex: str) -> str:
        self.log.append("archive")
        if self.down:
            raise Transient("s3 down", retry_after=3)
        self.objects[key] = body
        return f"s3://bucket/{key}"


class MemoryPublisher:
    def __init__(self, log: list[str]) -> None:
        self.committed: list[Output] = []
        self.down = False
        self.log = log

    def publish(self, outputs: Iterable[Output]) -> int:
        self.log.append("publish")
        outs = list(outputs)
        if self.down:
            raise Transient("kafka down")
        self.committed.extend(outs)
        return len(outs)


def _pipeline(**kw: Any) -> tuple[Pipeline, MemoryArchive, MemoryPublisher]:
    archive = MemoryArchive()
    pub = MemoryPublisher(archive.log)
    kw.setdefault("normalize", normalize)
    p = Pipeline(
        archive=archive, archive_prefix="raw/", publisher=pub, codec=CODEC,
        topics=Topics("alerts", "dlq"), metrics=IngestMetrics(CollectorRegistry()), clock=lambda: T, **kw,
    )  # fmt: skip
    return p, archive, pub


def _d(body: bytes) -> Delivery:
    return Delivery("sqs", "q#1", body, T, T, "sqs")


def test_archive_comes_before_publish_and_done_means_committed() -> None:
    p, archive, pub = _pipeline()
    [out] = p.run([_d(asff("-a"))])
    assert isinstance(out, Done) and out.alerts == 1
    assert archive.log == ["archive", "publish"]
    assert [o.topic for o in pub.committed] == ["alerts"]


def test_archive_failure_publishes_nothing_and_asks_for_retry() -> None:
    p, archive, pub = _pipeline()
    archive.down = True
    [out] = p.run([_d(asff("-a"))])
    assert isinstance(out, Retry) and out.retry_after == 3
    assert archive.log == ["archive"] and pub.committed == []


def test_one_archive_failure_does_not_hold_back_the_rest_of_a_batch() -> None:
    class FlakyArchive(MemoryArchive):
        def put(self, key: str, body: bytes, sha256_hex: str) -> str:
            if b'-b"' in body:
                raise Transient("this object failed")
            return super().put(key, body, sha256_hex)

    archive = FlakyArchive()
    p, _, pub = _pipeline()
    p.archive = archive
    out = p.run([_d(asff("-a")), _d(asff("-b"))])
    assert isinstance(out[0], Done) and isinstance(out[1], Retry)
    assert len(pub.committed) == 1


def test_kafka_failure_turns_every_archived_delivery_into_a_retry() -> None:
    p, _, pub = _pipeline()
    pub.down = True
    out = p.run([_d(asff("-a")), _d(b"{bad json")])
    assert all(isinstance(o, Retry) for o in out)


def test_a_delivery_nothing_can_be_made_of_is_dead_lettered_with_bytes_and_cause() -> None:
    p, _, pub = _pipeline()
    [out] = p.run([_d(b"{not json")])
    assert isinstance(out, Done) and out.dead_letters == 1 and out.alerts == 0
    [dl] = pub.committed
    env = CODEC.decode("dead_letter", dl.value)  # type: ignore[arg-type]
    assert env["value"] == b"{not json" and env["error_class"] == "alertline.errors.NormalizeError"
    assert env["raw_uri"] == out.raw_uri and env["source"] == "q#1"
    assert dl.headers and dl.headers["alertline.error.class"] == b"alertline.errors.NormalizeError"


def test_a_normalizer_bug_is_a_dead_letter_not_a_crash() -> None:
    def buggy(body: bytes, **_: Any) -> NormalizeResult:
        raise KeyError("Findings")

    p, _, pub = _pipeline(normalize=buggy)
    [out] = p.run([_d(b"{}")])
    assert isinstance(out, Done) and out.dead_letters == 1
    assert CODEC.decode("dead_letter", pub.committed[0].value)["error_class"] == "builtins.KeyError"  # type: ignore[arg-type]


def test_an_alert_that_does_not_fit_the_schema_is_dead_lettered() -> None:
    def wrong(body: bytes, **kw: Any) -> NormalizeResult:
        r = normalize(asff("-a"), **kw)
        r.alerts[0]["severity"] = {"label": "high"}  # type: ignore[typeddict-item]
        return r

    p, _, pub = _pipeline(normalize=wrong)
    [out] = p.run([_d(b"{}")])
    assert isinstance(out, Done) and out.alerts == 0 and out.dead_letters == 1
    assert "schema" in CODEC.decode("dead_letter", pub.committed[0].value)["error_message"]  # type: ignore[arg-type]


def test_oversized_bytes_are_left_in_the_archive_and_named_in_the_dead_letter() -> None:
    def inflating(body: bytes, **kw: Any) -> NormalizeResult:
        # A normalizer that let a huge field through: the record limit still holds.
        r = normalize(body, **kw)
        r.alerts[0]["description"] = "x" * 200_000
        return r

    p, archive, pub = _pipeline(max_record_bytes=100_000, normalize=inflating)
    body = asff("-a", Description="y" * 150_000)
    [out] = p.run([_d(body)])
    assert isinstance(out, Done) and out.dead_letters == 1 and out.alerts == 0
    env = CODEC.decode("dead_letter", pub.committed[0].value)  # type: ignore[arg-type]
    assert env["value"] is None and "record limit" in env["error_message"]
    assert archive.objects[env["raw_uri"].removeprefix("s3://bucket/")] == body


def test_crash_hook_exits_after_the_commit_and_before_the_ack() -> None:
    exits: list[int] = []
    p, _, pub = _pipeline(crash_after_publish=True, exit=exits.append)
    p.run([_d(asff("-a"))])
    assert exits == [CRASH_EXIT_CODE] and len(pub.committed) == 1


def test_normalize_error_class_is_kept_for_whole_delivery_failures() -> None:
    def refuse(body: bytes, **_: Any) -> NormalizeResult:
        raise NormalizeError("unknown shape: neither ASFF nor OCSF")

    p, _, pub = _pipeline(normalize=refuse)
    p.run([_d(b"{}")])
    env = CODEC.decode("dead_letter", pub.committed[0].value)  # type: ignore[arg-type]
    assert env["error_message"] == "unknown shape: neither ASFF nor OCSF"


@pytest.mark.parametrize("n_bad", [1, 40])
def test_dead_letters_of_one_delivery_share_a_byte_budget(n_bad: int) -> None:
    event = json.loads(asff(*(f"-{i}" for i in range(n_bad + 1))))
    for f in event["detail"]["findings"][1:]:
        del f["Id"]  # one good finding, n_bad without an identity
    body = json.dumps(event).encode()
    p, _, pub = _pipeline(dead_letter_budget_bytes=len(body) * 10)
    [out] = p.run([_d(body)])
    assert isinstance(out, Done) and out.alerts == 1 and out.dead_letters == n_bad
    dead = [o for o in pub.committed if o.topic == "dlq"]
    values = [CODEC.decode("dead_letter", o.value)["value"] for o in dead]  # type: ignore[arg-type]
    assert len(values) == n_bad
    assert sum(1 for v in values if v is not None) == min(n_bad, 10)
    assert {o.headers["alertline.finding.index"] for o in dead if o.headers} == {
        str(i).encode() for i in range(1, n_bad + 1)
    }
