"""Helpers the collectors share: JSON-safe copies of SDK output and network-rule normalization.

Every collector turns its cloud's firewall rules into the same element shape, so one kind of
check ("open to the internet on an admin port") reads the same on every cloud:

    {"name": ..., "direction": "ingress"|"egress", "action": "allow"|"deny",
     "protocol": "tcp"|"udp"|"icmp"|"all"|<other>, "from_port": int, "to_port": int,
     "sources": [...], "priority": int|None, "disabled": bool}

Ports are -1..-1 for protocols without ports (ICMP), 0..65535 for "all ports".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

ALL_PORTS = (0, 65535)
NO_PORTS = (-1, -1)

_PROTOCOLS = {"-1": "all", "all": "all", "*": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}


def protocol(v: Any) -> str:
    s = str(v).strip().lower() if v is not None else "all"
    return _PROTOCOLS.get(s, s)


def port_range(text: Any) -> tuple[int, int] | None:
    """``"22"``, ``"8000-9000"``, ``"*"`` -> a range; None when unreadable."""
    s = str(text).strip()
    if s in ("*", "", "any", "Any"):
        return ALL_PORTS
    lo, sep, hi = s.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        return None
    if not (0 <= a <= b <= 65535):
        return None
    return a, b


def rule(
    *,
    name: str | None,
    direction: str,
    action: str,
    proto: str,
    ports: tuple[int, int],
    sources: list[str],
    priority: int | None = None,
    disabled: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "direction": direction,
        "action": action,
        "protocol": proto,
        "from_port": ports[0],
        "to_port": ports[1],
        "sources": sources,
        "priority": priority,
        "disabled": disabled,
    }


def jsonable(v: Any) -> Any:
    """A deep copy that ``json.dumps`` accepts: datetimes as ISO-8601 UTC, bytes as text,
    botocore's ResponseMetadata dropped."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items() if k != "ResponseMetadata"}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, datetime):
        dt = v if v.tzinfo else v.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def str_tags(pairs: Any, key: str = "Key", value: str = "Value") -> dict[str, str]:
    """AWS ``[{"Key": k, "Value": v}]`` or a plain mapping -> ``{k: v}``."""
    if isinstance(pairs, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in pairs.items()}
    out: dict[str, str] = {}
    for p in pairs or []:
        if isinstance(p, Mapping) and p.get(key) is not None:
            out[str(p[key])] = "" if p.get(value) is None else str(p.get(value))
    return out
