"""A test-only stand-in normalizer with the contract of services.ingest.normalize.normalize.

It lets the transport tests run before the real normalizers land; it is injected through the
composition root, exactly where the real one goes. Accepted shape: a JSON object (or, for
hint="s3", newline-delimited JSON objects) with ``detail.findings`` or ``findings``: a list of
``{"id", "title", "ip"?, "rev"?}``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import unicodedata
from datetime import datetime
from typing import Any

from alertline.errors import NormalizeError
from alertline.identity import identity_of
from alertline.testing.samples import alert
from services.ingest.normalize import FindingError, NormalizeResult, RawLocation


def _docs(body: bytes, hint: str | None) -> list[Any]:
    try:
        return [json.loads(body)]
    except (ValueError, UnicodeDecodeError) as exc:
        if hint == "s3":
            try:
                return [json.loads(line) for line in body.splitlines() if line.strip()]
            except (ValueError, UnicodeDecodeError):
                pass
        raise NormalizeError(f"malformed JSON: {exc}") from exc


def _bad_chars(s: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in s)


def normalize(body: bytes, *, raw: RawLocation, received_at: datetime, hint: str | None = None) -> NormalizeResult:
    findings: list[Any] = []
    for doc in _docs(body, hint):
        f = (doc.get("detail") or {}).get("findings") if isinstance(doc, dict) and "detail" in doc else None
        if f is None and isinstance(doc, dict):
            f = doc.get("findings")
        if not isinstance(f, list):
            raise NormalizeError("unknown shape: no findings")
        findings.extend(f)
    out = NormalizeResult()
    for i, f in enumerate(findings):
        if not isinstance(f, dict) or not isinstance(f.get("id"), str) or not isinstance(f.get("title"), str):
            out.errors.append(FindingError(i, "alertline.errors.NormalizeError", "missing field: id or title"))
            continue
        if _bad_chars(f["title"]):
            out.errors.append(FindingError(i, "alertline.errors.NormalizeError", "control or bidi characters in title"))
            continue
        ips: list[str] = []
        if "ip" in f:
            try:
                ips.append(str(ipaddress.ip_address(f["ip"])))
            except ValueError:
                out.errors.append(FindingError(i, "alertline.errors.NormalizeError", f"invalid IP {f['ip']!r}"))
                continue
        rev = hashlib.sha256(json.dumps(f, sort_keys=True).encode()).hexdigest()[:16]
        a = alert(i, title=f["title"], received_at=received_at)
        a.update(
            identity=identity_of("test.standin", f["id"]),
            source_id=f["id"],
            revision=rev,
            indicators={"ips": ips, "domains": [], "users": [], "ports": []},
            raw={"uri": raw.uri, "sha256": raw.sha256, "index": i},
        )
        out.alerts.append(a)  # type: ignore[arg-type]
    return out


def delivery(*findings: dict[str, Any]) -> bytes:
    """An EventBridge-like delivery the stand-in accepts."""
    return json.dumps(
        {"detail-type": "Test Finding", "source": "test", "detail": {"findings": list(findings)}}
    ).encode()
