"""Helpers for the normalization tests: fixtures on disk, a fixed receipt time, the codec."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.ingest.normalize import NormalizeResult, RawLocation, normalize

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "deliveries"
NOW = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
# Deliveries that are not findings (the transport handles them before normalizing).
NOT_FINDINGS = {"sqs/s3-object-created.json"}


def fixture_paths() -> list[str]:
    return sorted(
        str(p.relative_to(FIXTURES))
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".py") and str(p.relative_to(FIXTURES)) not in NOT_FINDINGS
    )


def body_of(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


def doc(rel: str) -> Any:
    return json.loads(body_of(rel))


def run(body: bytes | str | Any, received_at: datetime = NOW) -> NormalizeResult:
    """Normalize bytes, text, or a JSON document (dumped first)."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    raw = RawLocation("s3://archive/raw/test.json", hashlib.sha256(data).hexdigest())
    return normalize(data, raw=raw, received_at=received_at)


def one(body: bytes | str | Any) -> Any:
    result = run(body)
    assert not result.errors, result.errors
    assert len(result.alerts) == 1, [a["title"] for a in result.alerts]
    return result.alerts[0]
