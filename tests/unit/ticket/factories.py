"""Records for ticket tests: enriched alerts, decisions, enrichment results."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from alertline.testing.samples import alert

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def decision(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "action": "ticket", "priority": "P2", "reason": None, "repository": None, "assignees": [],
        "labels": ["team:payments"], "auto_close": True, "group_key": None, "matched": [], "ruleset": "rs1",
        "evaluated_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }  # fmt: skip
    d.update(over)
    return d


def enrichment(subject: str, fp: str, verdict: str = "info", summary: str = "looked") -> dict[str, Any]:
    return {
        "enricher": "ip_reputation", "subject": subject, "summary": summary, "verdict": verdict,
        "data_json": "{}", "fingerprint": fp, "changed_from": None, "artifacts": {},
        "observed_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }  # fmt: skip


def enriched(i: int = 0, *, kind: str = "alert", enrichments: list[dict[str, Any]] | None = None,
             dec: dict[str, Any] | None = None, **alert_over: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": kind,
        "alert": alert(i, **alert_over),
        "decision": dec or decision(),
        "enrichments": enrichments or [],
        "enriched_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }


def revision(ea: dict[str, Any], rev: str, status: str = "active", minutes: int = 1) -> dict[str, Any]:
    """The same alert, a later version."""
    out = copy.deepcopy(ea)
    a = out["alert"]
    a["revision"] = rev
    a["status"] = status
    a["updated_at"] = datetime.fromtimestamp(a["updated_at"].timestamp() + 60 * minutes, UTC)
    return out
