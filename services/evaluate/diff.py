"""What a rule change would change: compare two decisions for the same alert, and tally."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alertline.model import Decision

UNCHANGED = "unchanged"


def change_kinds(old: Decision, new: Decision) -> list[str]:
    """Every way ``new`` differs from ``old``; [UNCHANGED] when the outcome and the rules are equal."""
    kinds: list[str] = []
    if old["action"] != new["action"]:
        kinds.append(f"{old['action']} -> {new['action']}")
    if old["priority"] != new["priority"]:
        kinds.append(f"priority {old['priority']} -> {new['priority']}")
    if old["repository"] != new["repository"]:
        kinds.append("repository changed")
    if set(old["labels"]) != set(new["labels"]):
        kinds.append("labels changed")
    if set(old["assignees"]) != set(new["assignees"]):
        kinds.append("assignees changed")
    if old["auto_close"] != new["auto_close"]:
        kinds.append(f"auto_close {str(old['auto_close']).lower()} -> {str(new['auto_close']).lower()}")
    if old["group_key"] != new["group_key"]:
        kinds.append("group_key changed")
    if old["reason"] != new["reason"] and old["action"] == new["action"] == "drop":
        kinds.append("drop reason changed")
    if not kinds:
        if _ids(old) != _ids(new):
            return ["same outcome, different rules"]
        return [UNCHANGED]
    return kinds


def _ids(d: Decision) -> list[str]:
    return [m["rule_id"] for m in d["matched"]]


@dataclass
class Example:
    identity: str
    title: str
    product: str
    account: str
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass
class DiffReport:
    examples_per_kind: int = 3
    alerts: int = 0
    duplicates: int = 0
    undecodable: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=dict)

    def add(self, alert: Mapping[str, Any], old: Decision, new: Decision) -> None:
        self.alerts += 1
        for kind in change_kinds(old, new):
            self.counts[kind] += 1
            if kind in (UNCHANGED,):
                continue
            ex = self.examples.setdefault(kind, [])
            if len(ex) < self.examples_per_kind:
                ex.append(
                    Example(
                        str(alert.get("identity")), str(alert.get("title"))[:100], str(alert.get("product")),
                        str(alert.get("account")), summary(old), summary(new),
                    )
                )  # fmt: skip

    @property
    def changed(self) -> int:
        return self.alerts - self.counts.get(UNCHANGED, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "changed": self.changed,
            "duplicates_skipped": self.duplicates,
            "undecodable": self.undecodable,
            "counts": dict(self.counts.most_common()),
            "examples": {k: [e.__dict__ for e in v] for k, v in self.examples.items()},
        }

    def as_text(self) -> str:
        lines = [
            f"{self.alerts} alerts evaluated with both rule sets; {self.changed} would change"
            + (f" ({self.duplicates} redeliveries skipped)" if self.duplicates else "")
            + (f"; {self.undecodable} undecodable records skipped" if self.undecodable else ""),
            "",
            "changes by kind:",
        ]
        for kind, n in self.counts.most_common():
            lines.append(f"  {n:8d}  {kind}")
        for kind, exs in self.examples.items():
            lines.append("")
            lines.append(f"examples of '{kind}':")
            for e in exs:
                lines.append(f"  {e.identity}  [{e.product} {e.account}] {e.title}")
                lines.append(f"      old: {_line(e.old)}")
                lines.append(f"      new: {_line(e.new)}")
        return "\n".join(lines)


def summary(d: Decision) -> dict[str, Any]:
    return {
        "action": d["action"],
        "priority": d["priority"],
        "repository": d["repository"],
        "labels": d["labels"],
        "reason": d["reason"],
        "rules": _ids(d),
    }


def _line(s: Mapping[str, Any]) -> str:
    out = f"{s['action']} {s['priority']}"
    if s["repository"]:
        out += f" repo={s['repository']}"
    if s["labels"]:
        out += f" labels={','.join(s['labels'])}"
    if s["reason"]:
        out += f" reason={s['reason']!r}"
    out += f" rules={','.join(s['rules']) or '-'}"
    return out


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO timestamp with a zone (``2026-11-20T00:00:00Z``) or an age (``24h``, ``7d``)."""
    m = _RELATIVE.match(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 2026-11-20T00:00:00Z or an age like 24h, 7d)") from None
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone, e.g. 2026-11-20T00:00:00Z")
    return dt
