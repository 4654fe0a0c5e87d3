"""The compiled Avro writer: byte for byte what fastavro writes, and fastavro's own errors for
anything it does not handle itself (it hands such records to fastavro)."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertline.avro import SingleObjectCodec, compile_writer
from alertline.testing.samples import alert


@pytest.fixture(scope="module")
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()


def reference(codec: SingleObjectCodec, name: str, value: Any) -> bytes | type[BaseException]:
    """fastavro's bytes for ``value`` (with the single-object header), or its exception type."""
    buf = io.BytesIO()
    buf.write(codec._prefix[name])
    try:
        fastavro.schemaless_writer(buf, codec.schema(name), value)
    except Exception as exc:  # whatever fastavro raises is the expectation
        return type(exc)
    return buf.getvalue()


def encoded(codec: SingleObjectCodec, name: str, value: Any) -> bytes | type[BaseException]:
    try:
        return codec.encode(name, value)
    except Exception as exc:
        return type(exc)


def fast_only(codec: SingleObjectCodec, name: str, value: Any) -> bytes:
    """The compiled writer alone (no fallback): it must handle the value itself."""
    writer = compile_writer(codec.schema(name))
    assert writer is not None
    out = [codec._prefix[name].decode("latin-1")]
    writer(out, value)
    return "".join(out).encode("latin-1")


def test_every_shipped_schema_gets_a_compiled_writer(codec: SingleObjectCodec) -> None:
    for name in codec._writers:
        assert compile_writer(codec.schema(name)) is not None, name


def test_a_normal_alert_is_written_by_the_compiled_writer_exactly_as_fastavro_writes_it(
    codec: SingleObjectCodec,
) -> None:
    for i in range(20):
        a = alert(i)
        if i % 2:  # non-ASCII text goes in as its UTF-8 bytes
            a = {**a, "title": "Zugriff über Tor — 端末 🚨 " * i, "labels": {"ü": "x" * 70 * i}}
        assert fast_only(codec, "alert", a) == reference(codec, "alert", a)
        assert codec.decode("alert", codec.encode("alert", a)) == a


def test_values_outside_the_compiled_writers_domain_are_written_or_refused_by_fastavro(
    codec: SingleObjectCodec,
) -> None:
    base = alert(3)
    cases: list[dict[str, Any]] = [
        {"received_at": base["received_at"].replace(tzinfo=None)},  # naive: fastavro's local time
        {"updated_at": int(base["updated_at"].timestamp() * 1000)},  # a long where a timestamp goes
        {"title": "lone \ud800 surrogate"},
        {"title": b"bytes"},
        {"title": None},
        {"region": 7},
        {"clock_skew": 1},
        {"severity": {**base["severity"], "score": True}},
        {"severity": {**base["severity"], "score": 1 << 40}},
        {"severity": {**base["severity"], "score": -5}},
        {"severity": {**base["severity"], "source_score": 3}},
        {"severity": {**base["severity"], "source_score": math.nan}},
        {"resources": ()},
        {"attributes": {"k": 5}},
        {"attributes": {5: "v"}},
        {"labels": None},
    ]
    for change in cases:
        value = {**base, **change}
        assert encoded(codec, "alert", value) == reference(codec, "alert", value), change
    missing = {k: v for k, v in base.items() if k not in ("description", "console_url")}
    assert encoded(codec, "alert", missing) == reference(codec, "alert", missing)
    assert encoded(codec, "alert", "not a record") == reference(codec, "alert", "not a record")


_TZ = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
_TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_TZ)
_TEXT = st.text(max_size=80) | st.text(min_size=60, max_size=120)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(1 << 64), max_value=1 << 64), st.floats(), _TEXT, st.binary()
)


def _values(s: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for schema ``s``: mostly valid, now and then of a wrong type (fastavro decides)."""
    valid = _valid(s, named, depth)
    if not depth:
        return valid
    return st.integers(0, 19).flatmap(lambda r: _SCALARS if r == 0 else valid)


def _valid(s: Any, named: dict[str, Any], depth: int, mixed: bool = True) -> st.SearchStrategy[Any]:
    """Valid values for ``s``; with ``mixed``, fields and items are sometimes of a wrong type."""
    inner = _values if mixed else (lambda s, named, depth: _valid(s, named, depth, mixed=False))
    if isinstance(s, list):
        return st.one_of(*(_valid(b, named, depth, mixed) for b in s))
    if isinstance(s, str):
        if s in named:
            return _valid(named[s], named, depth, mixed)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
            "long": st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
            "double": st.floats(),
            "string": _TEXT,
            "bytes": st.binary(max_size=100),
        }[s]
    t = s["type"]
    if s.get("logicalType") == "timestamp-millis":
        return _TIMES
    if t == "record":
        fields = {f["name"]: inner(f["type"], named, depth + 1) for f in s["fields"]}
        return st.fixed_dictionaries(fields)
    if t == "array":
        return st.lists(inner(s["items"], named, depth + 1), max_size=3)
    if t == "map":
        return st.dictionaries(_TEXT, inner(s["values"], named, depth + 1), max_size=3)
    return _valid(t, named, depth, mixed)


_CODEC = SingleObjectCodec()


@pytest.mark.parametrize("name", sorted(_CODEC._writers))
def test_any_value_is_encoded_exactly_as_fastavro_encodes_it_or_refused_as_fastavro_refuses_it(
    codec: SingleObjectCodec, name: str
) -> None:
    schema = codec.schema(name)

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_values(schema, schema["__named_schemas"]))
    def check(value: Any) -> None:
        assert encoded(codec, name, value) == reference(codec, name, value)

    check()


@pytest.mark.parametrize("name", sorted(_CODEC._writers))
def test_every_valid_value_fastavro_accepts_is_written_by_the_compiled_writer_identically(
    codec: SingleObjectCodec, name: str
) -> None:
    schema = codec.schema(name)

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_valid(schema, schema["__named_schemas"], 0, mixed=False))
    def check(value: Any) -> None:
        expected = reference(codec, name, value)
        if isinstance(expected, bytes):
            assert fast_only(codec, name, value) == expected

    check()


@given(_TIMES | st.datetimes(timezones=st.just(UTC)))
@settings(max_examples=200, deadline=None)
def test_timestamps_of_any_time_and_offset_are_written_as_fastavro_writes_them(t: datetime) -> None:
    a = {**alert(1), "updated_at": t, "first_seen": t}
    assert fast_only(_CODEC, "alert", a) == reference(_CODEC, "alert", a)


def test_recursive_and_reused_record_types_are_written_as_fastavro_writes_them() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Node",
            "namespace": "t",
            "fields": [
                {"name": "value", "type": "string"},
                {"name": "at", "type": {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "long"}]}},
                {"name": "also", "type": "t.Point"},
                {"name": "next", "type": ["null", "t.Node"]},
                {"name": "kids", "type": {"type": "array", "items": "t.Node"}},
            ],
        }
    )
    writer = compile_writer(schema)
    assert writer is not None
    leaf = {"value": "leaf", "at": {"x": -3}, "also": {"x": 1 << 40}, "next": None, "kids": []}
    tree = {"value": "root", "at": {"x": 0}, "also": {"x": 7}, "next": leaf, "kids": [leaf, {**leaf, "next": leaf}]}
    for value in (leaf, tree):
        out: list[str] = []
        writer(out, value)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, value)
        assert "".join(out).encode("latin-1") == buf.getvalue()


def test_timestamps_at_the_edges_of_the_six_byte_range_are_written_as_fastavro_writes_them() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for ms in (0, 1, -1, (1 << 34) - 1, 1 << 34, (1 << 34) + 1, (1 << 41) - 1, 1 << 41, -(1 << 34), (1 << 62)):
        a = {**alert(1), "updated_at": ms, "received_at": epoch + timedelta(milliseconds=min(ms, 1 << 41))}
        assert fast_only(_CODEC, "alert", a) == reference(_CODEC, "alert", a), ms


@pytest.mark.parametrize(
    "field_type",
    [
        ["null", "string", "long"],
        ["string", "long"],
        {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "string", "logicalType": "uuid"},
        "float",
    ],
)
def test_a_schema_using_what_the_compiled_writer_does_not_cover_is_left_to_fastavro(field_type: Any) -> None:
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]})
    assert compile_writer(schema) is None
