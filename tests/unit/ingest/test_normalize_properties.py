"""Property: whatever a delivery turns into (fields deleted or replaced, bytes cut or
flipped), normalize returns alerts the Avro codec accepts, or raises NormalizeError. No other
exception escapes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertline.avro import SingleObjectCodec
from alertline.errors import NormalizeError
from tests.unit.ingest.support import body_of, fixture_paths, run

CODEC = SingleObjectCodec()
BODIES = {rel: body_of(rel) for rel in fixture_paths()}
DOCS: dict[str, Any] = {}
for rel, body in BODIES.items():
    try:
        DOCS[rel] = json.loads(body)
    except ValueError:
        continue  # ndjson / gzip: mutated at the byte level only

# Text that reaches the awkward paths: control, bidi, surrogates, address- and date-like values.
_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(
        [
            "",
            "0.0.0.0/0",
            "999.1.1.1",
            "203.0.113.7",
            "::1",
            "fe80::1%eth0",
            "private",
            "2031-04-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "ARCHIVED",
            "RESOLVED",
            "MUTED",
            "INACTIVE",
            "Dismissed",
            "\u202e\x00",
            "\ud800",
        ]
    ),
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_text, inner, max_size=4),
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = value
    elif op == "wrap":
        parent[last] = [parent[last], value]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    rel = draw(st.sampled_from(sorted(DOCS)))
    doc = json.loads(BODIES[rel])
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["delete", "replace", "replace", "wrap"])) if path else "replace"
        doc = _mutate(doc, path, op, draw(_json))
    return json.dumps(doc).encode()


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    body = bytearray(BODIES[draw(st.sampled_from(sorted(BODIES)))])
    op = draw(st.sampled_from(["truncate", "flip", "insert"]))
    at = draw(st.integers(0, len(body)))
    if op == "truncate":
        return bytes(body[:at])
    if op == "flip" and at < len(body):
        body[at] ^= draw(st.integers(1, 255))
        return bytes(body)
    return bytes(body[:at]) + draw(st.binary(max_size=16)) + bytes(body[at:])


def _check(body: bytes) -> None:
    try:
        result = run(body)
    except NormalizeError:
        return
    assert result.alerts
    for alert in result.alerts:
        assert CODEC.decode("alert", CODEC.encode("alert", alert)) == alert
    for err in result.errors:
        assert err.message and 0 <= err.index


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_json())
def test_mutated_fixtures_give_encodable_alerts_or_normalize_error(body):
    _check(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bytes())
def test_damaged_bytes_give_encodable_alerts_or_normalize_error(body):
    _check(body)
