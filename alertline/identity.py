"""Alert identity: a stable fingerprint of the source's own finding identity."""

from __future__ import annotations

import hashlib


def identity_of(source: str, source_id: str) -> str:
    """``source`` names the producer (``aws.securityhub``, ``gcp.scc``, ``alertline.scan``...);
    ``source_id`` is its own finding id (never a delivery id). Same inputs, same identity."""
    h = hashlib.sha256(f"{source}\x00{source_id}".encode()).hexdigest()
    return f"{source}:{h[:32]}"
