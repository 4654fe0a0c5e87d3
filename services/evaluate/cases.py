"""Rule test cases: build each case's alert over a neutral base, decide it with the WHOLE rule
set (so interplay between rules is tested too), and compare with what the case expects."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alertline.clock import Clock
from alertline.model import Alert, Decision
from services.evaluate.domain import RuleSet, decide
from services.evaluate.lookups import Lookups
from services.evaluate.rules import Loaded, TestCase

SCORE_OF = {"informational": 0, "low": 30, "medium": 50, "high": 70, "critical": 90}
_BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

BASE_RESOURCE: dict[str, Any] = {"type": "Other", "id": "resource-1", "name": None, "region": None, "tags": {}}


def base_alert() -> dict[str, Any]:
    """A neutral alert: medium severity, active, no control, no indicators."""
    return {
        "identity": "test:0",
        "source_id": "test-finding",
        "revision": "r1",
        "provider": "aws",
        "product": "securityhub",
        "account": "000000000000",
        "account_name": None,
        "organization": None,
        "region": "us-east-1",
        "resources": [],
        "title": "Test alert",
        "description": "",
        "finding_type": None,
        "severity": {"label": "medium", "score": 50, "source_label": None, "source_score": None},
        "status": "active",
        "status_raw": {},
        "first_seen": _BASE_TIME,
        "updated_at": _BASE_TIME,
        "updated_at_raw": None,
        "received_at": _BASE_TIME,
        "clock_skew": False,
        "indicators": {"ips": [], "domains": [], "users": [], "ports": []},
        "control_id": None,
        "console_url": None,
        "raw": {"uri": "test://rule-case", "sha256": "0" * 64, "index": 0},
        "attributes": {},
        "labels": {},
    }


def build_alert(overrides: Mapping[str, Any]) -> dict[str, Any]:
    a = base_alert()
    for k, v in overrides.items():
        if k == "severity" and isinstance(v, dict):
            sev = dict(a["severity"]) | v
            if "label" in v and "score" not in v:
                sev["score"] = SCORE_OF.get(str(v["label"]), sev["score"])
            a["severity"] = sev
        elif k == "resources" and isinstance(v, list):
            a["resources"] = [
                {**copy.deepcopy(BASE_RESOURCE), "addresses": [], **r} if isinstance(r, dict) else r for r in v
            ]
        elif k in ("indicators", "raw") and isinstance(v, dict):
            a[k] = dict(a[k]) | v
        elif k in ("first_seen", "updated_at", "received_at") and isinstance(v, str):
            a[k] = datetime.fromisoformat(v.replace("Z", "+00:00"))
        else:
            a[k] = copy.deepcopy(v)
    return a


@dataclass
class CaseResult:
    case: TestCase
    failures: list[str] = field(default_factory=list)
    decision: Decision | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


Validator = Callable[[Mapping[str, Any]], str | None]


def run_cases(loaded: Loaded, clock: Clock, validate: Validator | None = None) -> list[CaseResult]:
    rs = RuleSet(loaded)
    base_lk = Lookups(loaded.tables)
    results: list[CaseResult] = []
    for rule in loaded.rules:
        for case in rule.tests:
            results.append(run_case(rs, base_lk, case, clock, validate))
    return results


def run_case(
    rs: RuleSet, base_lk: Lookups, case: TestCase, clock: Clock, validate: Validator | None = None
) -> CaseResult:
    result = CaseResult(case)
    alert = build_alert(case.alert)
    if validate is not None:
        problem = validate(alert)
        if problem:
            result.failures.append(f"the test alert is not a valid alert: {problem}")
            return result
    lk = base_lk.overlay(case.lookups) if case.lookups else base_lk
    typed: Alert = alert  # type: ignore[assignment]  # built to the Alert shape above
    d = decide(rs, typed, lk, case.now or clock())
    result.decision = d
    result.failures = compare(case.expect, d)
    return result


def compare(expect: Mapping[str, Any], d: Decision) -> list[str]:
    out: list[str] = []
    got: Mapping[str, Any] = d
    for key in ("action", "priority", "repository", "auto_close", "group_key"):
        if key in expect and expect[key] != got[key]:
            out.append(f"{key}: expected {expect[key]!r}, got {got[key]!r}")
    if "reason" in expect:
        want = expect["reason"]
        if want is None and d["reason"] is not None:
            out.append(f"reason: expected none, got {d['reason']!r}")
        elif want is not None and (d["reason"] is None or str(want) not in d["reason"]):
            out.append(f"reason: expected it to contain {want!r}, got {d['reason']!r}")
    for key in ("labels", "assignees"):
        missing = [x for x in expect.get(key, []) if x not in got[key]]
        if missing:
            out.append(f"{key}: expected to include {missing}, got {got[key]}")
    ids = [m["rule_id"] for m in d["matched"]]
    missing = [x for x in expect.get("matched", []) if x not in ids]
    if missing:
        out.append(f"matched: expected {missing} to match, matched {ids or 'nothing'}")
    unexpected = [x for x in expect.get("not_matched", []) if x in ids]
    if unexpected:
        out.append(f"matched: expected {unexpected} not to match")
    return out


def format_result(r: CaseResult) -> str:
    c = r.case
    head = f"{'ok  ' if r.ok else 'FAIL'} {c.file}:{c.line}  {c.rule_id}: {c.name}"
    if r.ok:
        return head
    lines = [head, *(f"       {f}" for f in r.failures)]
    if r.decision is not None:
        d = r.decision
        lines.append(
            f"       decision: action={d['action']} priority={d['priority']} repository={d['repository']} "
            f"labels={d['labels']} reason={d['reason']!r}"
        )
        for m in d["matched"]:
            lines.append(f"         matched {m['rule_id']}: {m['why']}")
        if not d["matched"]:
            lines.append("         no rule matched (default decision)")
    return "\n".join(lines)
