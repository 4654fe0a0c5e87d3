"""The stage handler without Kafka: dedupe, bad input, and byte-exact output."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from alertline.avro import SingleObjectCodec
from alertline.clock import FixedClock
from alertline.errors import BadInput, DecodeError
from alertline.stage import Context, PartitionState, Record
from alertline.testing.samples import alert
from services.evaluate.handler import make_handler
from services.evaluate.splice import Splicer

from .helpers import evaluator

CODEC = SingleObjectCodec()
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
RULES = """
rules:
  - {id: gd, description: d, owner: o, match: {field: product, equals: guardduty}, actions: {priority: P1}}
  - {id: probe, description: d, owner: o, match: {field: finding_type, glob: "Recon:*"}, actions: {drop: noise}}
"""


def _handle(splice: bool = True):  # type: ignore[no-untyped-def]
    ev = evaluator(RULES)
    return make_handler(ev.decide, "out", CODEC, splicer=Splicer() if splice else None)


def _rec(a: dict, key: str | None = None, value: bytes | None = None) -> Record:  # type: ignore[type-arg]
    raw = CODEC.encode("alert", a) if value is None else value
    k = (key if key is not None else a["identity"]).encode()
    return Record("alerts", 0, 0, k, raw, {}, 0)


def test_a_redelivered_revision_produces_nothing_and_a_new_one_does() -> None:
    handle, state = _handle(), PartitionState()
    ctx = Context(now=FixedClock(NOW), state=state)
    a = alert(1, product="guardduty")
    assert len(list(handle(_rec(a), ctx))) == 1
    state.end_record(ok=True)
    assert list(handle(_rec(a), ctx)) == [], "same identity and revision: a redelivery"
    state.end_record(ok=True)
    assert len(list(handle(_rec(dict(a, revision="rev-1b")), ctx))) == 1
    state.end_record(ok=True)
    assert state.get(a["identity"]) == {"revision": "rev-1b", "decided_at": NOW}


def test_bad_records_raise_bad_input_with_the_cause() -> None:
    handle, ctx = _handle(), Context(now=FixedClock(NOW), state=PartitionState())
    with pytest.raises(DecodeError):
        list(handle(_rec(alert(1), value=b"\x00junk"), ctx))
    with pytest.raises(BadInput, match="not the alert identity"):
        list(handle(_rec(alert(1), key="other"), ctx))
    with pytest.raises(BadInput, match="empty"):
        list(handle(Record("alerts", 0, 0, b"k", None, {}, 0), ctx))
    with pytest.raises(BadInput, match="no identity"):
        list(handle(_rec(alert(1, identity=""), key=""), ctx))


def test_spliced_output_is_byte_for_byte_the_codec_encoding() -> None:
    rng = random.Random(3)
    spliced, plain = _handle(splice=True), _handle(splice=False)
    for i in range(200):
        a = alert(
            i,
            product=rng.choice(["guardduty", "securityhub"]),
            finding_type=rng.choice([None, "Recon:EC2/Portscan", "x"]),
            title="tïtle ✓ " * rng.randint(0, 5),
            indicators={"ips": ["192.0.2.1"] * rng.randint(0, 3), "domains": [], "users": [], "ports": [22]},
        )
        (s,) = spliced(_rec(a), Context(now=FixedClock(NOW), state=PartitionState()))
        (p,) = plain(_rec(a), Context(now=FixedClock(NOW), state=PartitionState()))
        assert isinstance(s.value, bytes) and s.schema is None
        assert s.value == CODEC.encode("decision", p.value)  # type: ignore[arg-type]
        assert CODEC.decode("decision", s.value) == {"alert": a, "decision": p.value["decision"]}  # type: ignore[index]


def test_an_alert_written_with_another_schema_version_is_encoded_normally() -> None:
    s = Splicer()
    other = b"\xc3\x01" + b"\x00" * 8 + b"body"
    assert s.splice(other, {}) is None  # type: ignore[arg-type]
