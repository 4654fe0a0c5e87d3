"""The decision: which rules an alert meets, and what they decide. Pure: no Kafka, no I/O.

Precedence (docs/rules.md):
1. Suppressions, then rules, each in file-name order and top to bottom within a file.
2. Every matching rule is recorded in ``matched`` with why it matched.
3. A decision field (action, priority, repository, auto_close, group_key) is set by the
   FIRST matching rule that sets it; later rules cannot override it. Labels and assignees
   accumulate from every matching rule, in order, without duplicates.
4. ``stop: true`` ends evaluation after its rule; an active suppression always stops.
   Suppressions past their ``until`` are skipped as if absent.
5. What no rule set takes the default: action ticket, priority from severity
   (critical P1, high P2, medium P3, low and informational P4), auto_close true.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alertline.model import Alert, Decision, RuleMatch
from services.evaluate import paths
from services.evaluate.expr import LookupSource
from services.evaluate.lookups import LiveTables, Lookups
from services.evaluate.match import INDEX_FIELDS
from services.evaluate.rules import Loaded, Rule

DEFAULT_PRIORITY: dict[str, str] = {
    "critical": "P1",
    "high": "P2",
    "medium": "P3",
    "low": "P4",
    "informational": "P4",
}
UNKNOWN_SEVERITY_PRIORITY = "P3"
_CACHE_LIMIT = 8192


class RuleSet:
    """A loaded rule set with its index: an alert meets only rules that can match it.

    Each rule is filed under one field it constrains by equality: one of control_id,
    finding_type, product, provider (most selective first) when it can, else any other
    field (``account``, ``resources.tags.env``, ...). Rules without such a constraint are met
    by every alert. The candidates for a combination of the four main fields are computed
    once and cached; rules filed under other fields are added per alert (usually none).
    """

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.rules = loaded.rules
        self.fingerprint = loaded.fingerprint
        self.tables = loaded.tables
        self.never: list[Rule] = []  # constraints that cannot all hold (lint reports these)
        by: dict[str, dict[str, list[int]]] = {}
        always: list[int] = []
        for i, r in enumerate(self.rules):
            key = index_key(r)
            if key is None:
                always.append(i)
                continue
            field, values = key
            if not values:
                self.never.append(r)
                continue
            for v in values:
                by.setdefault(field, {}).setdefault(v, []).append(i)
        self._fields = tuple(f for f in INDEX_FIELDS if f in by)
        self._by = by
        self._always = always
        self._secondary = tuple(
            (paths.getter(paths.parse_path(f)), table) for f, table in by.items() if f not in INDEX_FIELDS
        )
        self._cache: dict[tuple[Any, ...], tuple[Rule, ...]] = {}

    def candidates(self, alert: Mapping[str, Any]) -> tuple[Rule, ...]:
        key = tuple(alert.get(f) for f in self._fields)
        hit = self._cache.get(key)
        if hit is None:
            picked = set(self._always)
            for f, v in zip(self._fields, key, strict=True):
                if v.__class__ is str:
                    picked.update(self._by[f].get(v, ()))
            hit = tuple(self.rules[i] for i in sorted(picked))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = hit
        if not self._secondary:
            return hit
        extra: set[int] = set()
        for get, table in self._secondary:
            v = get(alert)
            if v.__class__ is str:
                extra.update(table.get(v, ()))
            elif v.__class__ is list:
                for e in v:
                    if e.__class__ is str:
                        extra.update(table.get(e, ()))
        if not extra:
            return hit
        return tuple(sorted((*hit, *(self.rules[i] for i in extra)), key=_position))

    @property
    def indexed(self) -> int:
        return len(self.rules) - len(self._always)


def _position(r: Rule) -> int:
    return r.position


def index_key(r: Rule) -> tuple[str, frozenset[str]] | None:
    """The index field and values for a rule, or None when it must meet every alert."""
    fields = [f for f in INDEX_FIELDS if any(h[0] == f for h in r.cond.hints)]
    fields += [h[0] for h in r.cond.hints if h[0] not in INDEX_FIELDS]
    if not fields:
        return None
    f = fields[0]
    return f, frozenset.intersection(*[vals for field, vals in r.cond.hints if field == f])


def default_priority(alert: Mapping[str, Any]) -> str:
    sev = alert.get("severity") or {}
    return DEFAULT_PRIORITY.get(sev.get("label") or "", UNKNOWN_SEVERITY_PRIORITY)


def decide(rs: RuleSet, alert: Alert, lk: LookupSource, now: datetime) -> Decision:
    """Evaluate one alert against a rule set at time ``now``."""
    a: Any = alert
    action: str | None = None
    reason: str | None = None
    priority: str | None = None
    repository: str | None = None
    auto_close: bool | None = None
    group_key: str | None = None
    labels: list[str] = []
    assignees: list[str] = []
    setter: dict[str, str] = {}
    ignored: dict[str, list[str]] = {}
    # The hot loop only tests; most alerts meet ~20 candidates and match one or two.
    hits: list[Rule] = []
    for r in rs.candidates(a):
        if r.test(a, lk) and (r.until is None or now < r.until):
            hits.append(r)
            if r.stop:
                break
    for r in hits:
        if r.action is not None:
            if action is None:
                action = r.action
                reason = r.reason.render(a, lk) if r.reason is not None else None
                setter["action"] = r.id
            else:
                ignored.setdefault(r.id, []).append("action")
        if r.priority is not None:
            if priority is None:
                priority = r.priority
                setter["priority"] = r.id
            else:
                ignored.setdefault(r.id, []).append("priority")
        if r.repository is not None:
            if repository is None:
                repository = r.repository.render(a, lk)
                if repository is not None:
                    setter["repository"] = r.id
            else:
                ignored.setdefault(r.id, []).append("repository")
        if r.auto_close is not None:
            if auto_close is None:
                auto_close = r.auto_close
                setter["auto_close"] = r.id
            else:
                ignored.setdefault(r.id, []).append("auto_close")
        if r.group_key is not None:
            if group_key is None:
                group_key = r.group_key.render(a, lk)
                if group_key is not None:
                    setter["group_key"] = r.id
            else:
                ignored.setdefault(r.id, []).append("group_key")
        for t in r.labels:
            for v in t.render_many(a, lk):
                if v not in labels:
                    labels.append(v)
        for t in r.assignees:
            for v in t.render_many(a, lk):
                if v not in assignees:
                    assignees.append(v)
    matched: list[RuleMatch] = []
    for r in hits:
        why = r.cond.explain(a, lk)
        if r.kind == "suppression":
            why = f"suppressed {_until(r.until)} by {r.by}: {why}"
        skipped = ignored.get(r.id)
        if skipped:
            why += " [not applied: " + ", ".join(f"{f} already set by {setter.get(f, '?')}" for f in skipped) + "]"
        if r.stop and r.kind == "rule":
            why += " [stop]"
        matched.append({"rule_id": r.id, "why": why})
    return {
        "action": action or "ticket",
        "priority": priority or default_priority(a),
        "reason": reason,
        "repository": repository,
        "assignees": assignees,
        "labels": labels,
        "auto_close": True if auto_close is None else auto_close,
        "group_key": group_key,
        "matched": matched,
        "ruleset": rs.fingerprint,
        "evaluated_at": now,
    }


def _until(until: datetime | None) -> str:
    return "until " + until.isoformat().replace("+00:00", "Z") if until else "with no expiry"


class Evaluator:
    """The current rule set plus the lookups it sees; ``install`` swaps in a new set atomically."""

    def __init__(self, loaded: Loaded, live: LiveTables | None = None) -> None:
        self.live = live
        self._current: tuple[RuleSet, Lookups] = self._prepare(loaded)

    def _prepare(self, loaded: Loaded) -> tuple[RuleSet, Lookups]:
        return RuleSet(loaded), Lookups(loaded.tables, self.live)

    def install(self, loaded: Loaded) -> None:
        self._current = self._prepare(loaded)

    @property
    def ruleset(self) -> RuleSet:
        return self._current[0]

    @property
    def lookups(self) -> Lookups:
        return self._current[1]

    def decide(self, alert: Alert, now: datetime) -> Decision:
        rs, lk = self._current
        return decide(rs, alert, lk, now)
