"""Golden outputs of normalization, to prove that a speed-up changes no behaviour.

Two files under ``golden/``, generated from the code before an optimisation and compared
after it (test_normalize_golden.py):

- ``fixtures.jsonl``: for every delivery fixture, what ``alertline normalize`` prints for it
  (the summary line of each alert), the per-finding errors or the refusal, and the Avro
  single-object encoding of each alert (hex).
- ``mutations.jsonl``: for every JSON fixture and each value in ``VALUES``, a digest of the
  same outputs over every variant where one leaf of the delivery (a string, number, boolean
  or null anywhere in it) is replaced by that value: timestamps in odd forms, addresses,
  control and bidi characters, wrong types, long text.

Regenerate (only when a behaviour change is intended, and say so in the commit):
    .venv/bin/python -m tests.unit.ingest.golden
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alertline.avro import SingleObjectCodec
from alertline.errors import NormalizeError
from services.ingest.normalize import RawLocation, normalize
from services.ingest.normalize.view import summary

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "deliveries"
GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)

# Leaf replacements: each is tried in place of every leaf of every JSON fixture.
VALUES: list[Any] = [
    None,
    "",
    True,
    0,
    -1,
    1.5,
    1763895599123,
    "2026-11-23T10:59:59Z",
    "2026-11-23T10:59:59.123456789Z",
    "2026-11-23T10:59:59.1+05:30",
    "2026-11-23 10:59:59",
    "2026-11-23T10:59:59z",
    "2026-02-30T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
    "20261123T105959Z",
    "2099-01-01T00:00:00.000Z",
    "203.0.113.7",
    "010.0.0.1",
    "::ffff:198.51.100.9",
    "10.0.0.0/8",
    "Evil.Example.COM.",
    "ARCHIVED",
    "RESOLVED",
    "PASSED",
    "CRITICAL",
    "Dismissed",
    "a\u202eb\x00c\r\nd",
    "\ud800x",
    "x" * 5000,
    [],
    {},
]


def _leaves(v: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _leaves(x, (*path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _leaves(x, (*path, i))
    else:
        yield path


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: (_replaced(x, rest, value) if k == head else x) for k, x in doc.items()}
    return [(_replaced(x, rest, value) if i == head else x) for i, x in enumerate(doc)]


def outcome(body: bytes, name: str, codec: SingleObjectCodec) -> dict[str, Any]:
    """What normalizing ``body`` gives: summary lines + Avro hex, errors, or the refusal."""
    raw = RawLocation(f"file://{name}", hashlib.sha256(body).hexdigest())
    try:
        result = normalize(body, raw=raw, received_at=NOW)
    except NormalizeError as exc:
        return {"refused": str(exc)}
    return {
        "alerts": [summary(a) for a in result.alerts],
        "avro": [codec.encode("alert", a).hex() for a in result.alerts],
        "errors": [[e.index, e.error_class, e.message] for e in result.errors],
    }


def fixture_names() -> list[str]:
    return sorted(
        str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file() and p.suffix not in (".md", ".py")
    )


def fixture_outcomes(codec: SingleObjectCodec) -> list[dict[str, Any]]:
    return [{"fixture": n, **outcome((FIXTURES / n).read_bytes(), n, codec)} for n in fixture_names()]


def _dumps(v: Any) -> str:
    # ensure_ascii keeps lone surrogates representable.
    return json.dumps(v, sort_keys=True, ensure_ascii=True)


def mutation_digests(codec: SingleObjectCodec, values: list[int] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in fixture_names():
        if not name.endswith(".json"):
            continue
        doc = json.loads((FIXTURES / name).read_bytes())
        paths = list(_leaves(doc))
        for i in range(len(VALUES)) if values is None else values:
            value = VALUES[i]
            h = hashlib.sha256()
            for path in paths:
                body = json.dumps(_replaced(doc, path, value)).encode()
                h.update(_dumps(outcome(body, name, codec)).encode())
            out.append({"fixture": name, "value": i, "variants": len(paths), "sha256": h.hexdigest()})
    return out


def write() -> None:
    codec = SingleObjectCodec()
    GOLDEN.mkdir(exist_ok=True)
    for file, rows in (("fixtures.jsonl", fixture_outcomes(codec)), ("mutations.jsonl", mutation_digests(codec))):
        (GOLDEN / file).write_text("".join(_dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    write()
