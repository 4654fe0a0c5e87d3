"""Reading the JSON documents of a delivery: the orjson fast paths for newline-delimited and
back-to-back documents give exactly what the standard path gives (documents, bad-line items
and refusals alike)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertline.errors import NormalizeError
from services.ingest.normalize.envelope import documents, parse_text, to_text

_strings = st.sampled_from(["}{", "}\n{", "a\\nb", "\u202e", "\\ud800", "x", "", "{}", '"}{"'])
_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _strings, st.text(max_size=8))
_values = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_strings, inner, max_size=3), max_leaves=8
)
_objects = st.dictionaries(_strings, _values, min_size=0, max_size=4)
_separators = st.sampled_from(["", "\n", "\r\n", "\n\n", " \n", "\n \t\n", " "])
_bad = st.sampled_from(["{", "}{", '{"a": }', "nul", "[1,", "\ud800", '{"n": 123456789012345678901234567890}', "1"])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 5)) == 0:
            parts.append(draw(_bad))
        else:
            indent = draw(st.sampled_from([None, None, 1]))
            value = draw(_objects) if draw(st.booleans()) else draw(_values)
            parts.append(json.dumps(value, indent=indent))
        parts.append(draw(_separators))
    return "".join(parts).encode("utf-8", "surrogatepass")


def _standard(body: bytes) -> Any:
    try:
        return parse_text(to_text(body))
    except NormalizeError as exc:
        return ("refused", str(exc))


def _fast(body: bytes) -> Any:
    try:
        return documents(body)
    except NormalizeError as exc:
        return ("refused", str(exc))


@given(bodies())
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_several_documents_in_one_delivery_read_the_same_by_the_fast_and_the_standard_path(body: bytes) -> None:
    try:
        json.loads(body)
    except ValueError:
        pass
    else:
        return  # one document: read by orjson before either path
    assert _fast(body) == _standard(body)


def test_back_to_back_objects_and_newline_delimited_lines_are_each_one_document() -> None:
    assert documents(b'{"a": "}{"}{"b": 1}{"c": [{}]}') == [{"a": "}{"}, {"b": 1}, {"c": [{}]}]
    assert documents(b'{"a": 1}\r\n\n \t\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]


def test_lines_holding_only_scalars_are_still_refused_as_malformed_json() -> None:
    assert _fast(b"1\n2\n") == _standard(b"1\n2\n")
    assert _fast(b"1\n2\n")[0] == "refused"
