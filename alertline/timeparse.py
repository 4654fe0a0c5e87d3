"""Times given on the command line: ISO-8601, or relative like ``now-2h``, ``-30m``, ``3d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from alertline.errors import ConfigError

_REL = re.compile(r"^(?:now)?\s*-?\s*(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    t = text.strip().lower()
    if t == "now":
        return now
    m = _REL.match(t)
    if m:
        return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"not a time: {text!r} (use ISO-8601 like 2026-11-23T10:00Z, or now-2h)") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
