"""Normalization: one raw delivery (bytes, as the transport hands it) -> alerts.

Pure: no I/O. The ingest service archives the delivery first, then calls ``normalize``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from alertline.model import Alert


@dataclass(frozen=True)
class RawLocation:
    """Where the raw delivery was archived."""

    uri: str
    sha256: str


@dataclass(frozen=True)
class FindingError:
    """One finding inside a delivery that could not be normalized (the rest still are)."""

    index: int
    error_class: str
    message: str


@dataclass
class NormalizeResult:
    alerts: list[Alert] = field(default_factory=list)
    errors: list[FindingError] = field(default_factory=list)


def normalize(body: bytes, *, raw: RawLocation, received_at: datetime, hint: str | None = None) -> NormalizeResult:
    """Normalize one delivery. Raises ``NormalizeError`` when nothing in it is usable
    (malformed JSON, unknown shape); per-finding problems are reported in ``errors``."""
    raise NotImplementedError("being written (issue 3)")
