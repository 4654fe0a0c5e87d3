"""Normalization: one raw delivery (bytes, as the transport hands it) -> alerts.

Pure: no I/O. The ingest service archives the delivery first, then calls ``normalize``.
Shapes and rules: docs/normalization.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alertline.errors import NormalizeError
from alertline.model import Alert, RawRef

from . import asff, defender, guardduty, ocsf, scc
from .common import FindingProblem
from .envelope import ASFF, DEFENDER, GUARDDUTY, OCSF, SCC, findings

__all__ = [
    "FindingError",
    "NormalizeError",
    "NormalizeResult",
    "RawLocation",
    "normalize",
]


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


_Mapper = Callable[..., Alert]
_MAPPERS: dict[str, _Mapper] = {
    ASFF: asff.normalize_finding,
    GUARDDUTY: guardduty.normalize_finding,
    OCSF: ocsf.normalize_finding,
    SCC: scc.normalize_message,
    DEFENDER: defender.normalize_alert,
}


def normalize(body: bytes, *, raw: RawLocation, received_at: datetime, hint: str | None = None) -> NormalizeResult:
    """Normalize one delivery. Raises ``NormalizeError`` when nothing in it is usable
    (malformed JSON, unknown shape); per-finding problems are reported in ``errors``.

    Every finding (and every unusable slot) takes the next ``raw.index``, in delivery order,
    so the same bytes always give the same indexes. ``hint`` (the transport's name) only
    makes error messages clearer.
    """
    if type(body) is not bytes:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise NormalizeError(f"delivery must be bytes, got a {type(body).__name__}")
        body = bytes(body)
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    received = received_at if received_at.tzinfo is UTC else received_at.astimezone(UTC)
    if received.microsecond % 1000:
        received = received.replace(microsecond=received.microsecond // 1000 * 1000)
    try:
        items = findings(body)
    except NormalizeError as exc:
        raise NormalizeError(_with_hint(str(exc), hint)) from exc
    if not items:
        raise NormalizeError(_with_hint("delivery holds no findings", hint))
    result = NormalizeResult()
    for index, item in enumerate(items):
        if item.problem is not None or item.kind is None:
            result.errors.append(FindingError(index, "NormalizeError", item.problem or "unusable"))
            continue
        ref: RawRef = {"uri": raw.uri, "sha256": raw.sha256, "index": index}
        try:
            result.alerts.append(_MAPPERS[item.kind](item.value, raw=ref, received_at=received))
        except FindingProblem as exc:
            result.errors.append(FindingError(index, "FindingProblem", f"{item.where}: {exc}"))
    if not result.alerts:
        first = result.errors[0].message
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise NormalizeError(_with_hint(first + more, hint))
    return result


def _with_hint(msg: str, hint: str | None) -> str:
    return f"{msg} [{hint}]" if hint else msg
