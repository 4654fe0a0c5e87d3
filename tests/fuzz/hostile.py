"""Hostile deliveries of every shape ingest accepts, made by mutating the real fixtures
(tests/fixtures/deliveries): inside the findings (also those wrapped in SQS/SNS bodies, Pub/Sub
base64 data, ndjson lines and gzip members) and at the byte level around them."""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "deliveries"

# shape -> (the transport that hands it to the pipeline, the fixtures it starts from)
SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "eventbridge-asff": (
        "sqs",
        ("securityhub/ec2-19-open-ports.json", "securityhub/multi-finding.json", "securityhub/clock-skew.json"),
    ),
    "guardduty": ("sqs", ("guardduty/tor-api-call.json", "guardduty/port-probe.json", "guardduty/archived.json")),
    "ocsf": ("sqs", ("securityhub-v2/detection-finding.json", "securityhub-v2/compliance-finding-passed.json")),
    "sqs-wrapped": (
        "sqs",
        ("sqs/lambda-sqs-event.json", "sqs/sns-notification.json", "sqs/raw-body-guardduty-port-probe.json"),
    ),
    "s3-ndjson": ("s3", ("s3/findings-export.ndjson",)),
    "s3-gzip": ("s3", ("s3/findings-export-firehose.json.gz",)),
    "pubsub-push-pull": ("pubsub", ("pubsub/push.json", "pubsub/pull-response.json")),
    "scc": ("pubsub", ("scc/v1-open-firewall-active.json", "scc/v2-bad-ip-active.json", "scc/v1-muted.json")),
    "eventhubs-batch": ("eventhubs", ("defender/array.json", "defender/records-wrapper.json")),
    "defender-flat-rest": (
        "eventhubs",
        ("defender/flat-ssh-brute-force.json", "defender/rest-dismissed.json", "defender/rest-storage-tor-access.json"),
    ),
}


@dataclass
class Embedded:
    """A document carried as a string inside another (SQS body, SNS Message, Pub/Sub data)."""

    value: Any
    encoding: str  # "json" | "b64"


@dataclass
class Frame:
    """The documents of one delivery and how they are laid out in its bytes."""

    docs: list[Any]
    sep: str  # "" (one document, or concatenated) | "\n" (ndjson)
    gzipped: bool
    ascii: bool = True  # False: raw UTF-8 (lone surrogates then make invalid UTF-8)


def _concatenated(text: str) -> list[Any]:
    dec = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        doc, i = dec.raw_decode(text, i)
        out.append(doc)
    return out


def _explode(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _explode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_explode(x) for x in v]
    if isinstance(v, str) and len(v) > 16:
        if v[:1] in "{[":
            try:
                return Embedded(_explode(json.loads(v)), "json")
            except ValueError:
                return v
        try:
            inner = json.loads(base64.b64decode(v, validate=True))
        except (ValueError, binascii.Error):
            return v
        if isinstance(inner, dict | list):
            return Embedded(_explode(inner), "b64")
    return v


def implode(v: Any) -> Any:
    if isinstance(v, Embedded):
        # Raw non-ASCII inside: escapes would double at every level of embedding.
        text = json.dumps(implode(v.value), separators=(",", ":"), ensure_ascii=False)
        return text if v.encoding == "json" else base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
    if isinstance(v, dict):
        return {k: implode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [implode(x) for x in v]
    return v


@functools.cache
def _raw(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


def load(rel: str) -> Frame:
    raw = _raw(rel)
    gz = raw[:2] == b"\x1f\x8b"
    text = (gzip.decompress(raw) if gz else raw).decode()
    docs = [_explode(d) for d in _concatenated(text)]
    return Frame(docs, "\n" if rel.endswith(".ndjson") else "", gz)


def render(f: Frame) -> bytes:
    parts = [json.dumps(implode(d), separators=(",", ":"), ensure_ascii=f.ascii) for d in f.docs]
    body = (f.sep.join(parts) + ("\n" if f.sep else "")).encode("utf-8", "surrogatepass")
    return gzip.compress(body, mtime=0) if f.gzipped else body


# ---------------------------------------------------------------------------- values
HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "\x1b[31mred\x1b[0m",
    "\u202e\u2066txt.exe\u2069",
    "\u200b\u200c\u200d\u2060\ufeff",
    "\ud800",
    "<script>alert(1)</script>",
    "--> <!--",
    "@everyone #1 GH-2",
    "999.1.1.1",
    "1.2.3",
    "::ffff:999.1.1.1",
    "fe80::1%eth0",
    "0.0.0.0/0",
    "203.0.113.7/33",
    "-1",
    "2031-04-01T00:00:00Z",
    "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "ARCHIVED",
    "RESOLVED",
    "null",
]

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and infinities too: dumped as bare NaN/Infinity, which is not JSON
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=24),
)
HUGE = 70_000
# About 2 MB however the characters are written (\uXXXX escapes are 6 bytes).
_huge = st.builds(
    lambda ch, n: ch * (n if ch.isascii() else n // 5),
    st.sampled_from(["A", "\u202e", "é", "\u200b", "<"]),
    st.sampled_from([HUGE, 2_100_000]),
)
_deep = st.builds(lambda n: json.loads("[" * n + "]" * n), st.sampled_from([40, 400]))
hostile_value = st.one_of(
    _scalar,
    _huge,
    _deep,
    st.recursive(
        _scalar,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    ),
)


# ---------------------------------------------------------------------------- mutations
def _paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a document, also inside embedded documents (``None`` steps into one)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(v, Embedded):
        return _paths(v.value, (*prefix, None))
    if isinstance(v, dict):
        for k, x in v.items():
            out.append((*prefix, k))
            out += _paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out.append((*prefix, i))
            out += _paths(x, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    cur = doc
    for step in path[:-1]:
        cur = cur.value if step is None else cur[step]
    return cur.value if isinstance(cur, Embedded) else cur


def _mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> None:
    parent, last = _parent(doc, path), path[-1]
    old = parent[last]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = value
    elif op == "wrap":
        parent[last] = [implode(old), value]
    elif op == "stringify":  # an object where a string belongs, or the reverse
        parent[last] = json.dumps(implode(old), ensure_ascii=False) if not isinstance(old, str) else {"value": old}


def _envelope(doc: Any, depth: int) -> Any:
    """The document wrapped in SQS event records ``depth`` times (past the normalizer's limit)."""
    for _ in range(depth):
        doc = {"Records": [{"body": Embedded(doc, "json")}]}
    return doc


@st.composite
def mutated_frame(draw: st.DrawFn, shape: str) -> Frame:
    f = load(draw(st.sampled_from(SHAPES[shape][1])))
    f.ascii = draw(st.booleans())
    heavy = False  # one huge string per delivery is enough (and keeps the run fast)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(f.docs) - 1))
        paths = _paths(f.docs[i])
        op = draw(st.sampled_from(["delete", "replace", "replace", "wrap", "stringify", "envelope", "doc"]))
        value = draw(hostile_value)
        if isinstance(value, str) and len(value) >= HUGE // 5:
            if heavy:
                value = value[:64]
            heavy = True
        if op == "envelope":
            f.docs[i] = _envelope(f.docs[i], draw(st.integers(1, 9)))
        elif op == "doc" or not paths:
            f.docs[i] = value
        else:
            _mutate(f.docs[i], draw(st.sampled_from(paths)), op, value)
    return f


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    op = draw(st.sampled_from(["none", "none", "truncate", "flip", "insert", "random", "gzip-cut",
                               "gzip-trailer", "gzip-magic", "bom", "utf16", "empty"]))  # fmt: skip
    if op == "truncate":
        return body[: draw(st.integers(0, max(0, len(body) - 1)))]
    if op == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    if op == "insert":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(min_size=1, max_size=32)) + body[at:]
    if op == "random":
        return draw(st.binary(max_size=256))
    if op == "gzip-cut":
        z = gzip.compress(body, mtime=0)
        return z[: draw(st.integers(2, len(z) - 1))]
    if op == "gzip-trailer":
        return gzip.compress(body, mtime=0) + draw(st.binary(min_size=1, max_size=16))
    if op == "gzip-magic":
        return b"\x1f\x8b" + draw(st.binary(max_size=64))
    if op == "bom":
        return b"\xef\xbb\xbf" + body
    if op == "utf16":
        return body.decode("utf-8", "replace").encode("utf-16")
    if op == "empty":
        return draw(st.sampled_from([b"", b" \n", b"null", b"[]", b"{}", b'""']))
    return body


MAX_BODY = 3 * 1024 * 1024  # quotes double at every level of embedding; keep the run fast


@st.composite
def hostile_delivery(draw: st.DrawFn, shape: str) -> bytes:
    return draw(damaged(render(draw(mutated_frame(shape)))[:MAX_BODY]))
