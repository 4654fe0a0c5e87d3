"""JSON views of a normalized alert (for ``alertline normalize`` and people reading alerts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alertline.clock import iso
from alertline.model import Alert


def jsonable(v: Any) -> Any:
    """Datetimes as ISO-8601 UTC strings; everything else as JSON has it."""
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    return v


def summary(alert: Alert) -> dict[str, Any]:
    """The flat keys the ``alertline normalize`` contract promises, then the full alert."""
    first = alert["resources"][0] if alert["resources"] else None
    return {
        "identity": alert["identity"],
        "provider": alert["provider"],
        "product": alert["product"],
        "account": alert["account"],
        "region": alert["region"],
        "resource_id": first["id"] if first else None,
        "resource_type": first["type"] if first else None,
        "title": alert["title"],
        "severity_label": alert["severity"]["label"],
        "severity_score": alert["severity"]["score"],
        "status": alert["status"],
        "ip_indicators": list(alert["indicators"]["ips"]),
        "domain_indicators": list(alert["indicators"]["domains"]),
        "control_id": alert["control_id"],
        "updated_at": iso(alert["updated_at"]),
        "revision": alert["revision"],
        "clock_skew": alert["clock_skew"],
        "alert": jsonable(alert),
    }
