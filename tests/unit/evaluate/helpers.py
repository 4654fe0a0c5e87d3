"""Build rule sets from YAML text for the unit tests (no files needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alertline.model import Decision
from services.evaluate.cases import build_alert
from services.evaluate.domain import Evaluator
from services.evaluate.lookups import LiveTables
from services.evaluate.rules import Loaded, Sources, compile_sources

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def loaded(*files: str, lookups: dict[str, str] | None = None) -> Loaded:
    return compile_sources(
        Sources(
            tuple((Path(f"rules/{i:02d}.yaml"), text) for i, text in enumerate(files)),
            tuple((Path(f"rules/lookups/{name}"), text) for name, text in (lookups or {}).items()),
        )
    )


def evaluator(*files: str, lookups: dict[str, str] | None = None, live: LiveTables | None = None) -> Evaluator:
    return Evaluator(loaded(*files, lookups=lookups), live)


def decide(ev: Evaluator, now: datetime = NOW, **alert: Any) -> Decision:
    return ev.decide(build_alert(alert), now)  # type: ignore[arg-type]


def rule(match: str, actions: str = "{priority: P1}", rid: str = "r", extra: str = "") -> str:
    """One rule in a file; ``match`` is the YAML flow value of match:."""
    return f"""
rules:
  - id: {rid}
    description: test rule
    owner: test
    match: {match}
    actions: {actions}
{extra}"""


def ids(d: Decision) -> list[str]:
    return [m["rule_id"] for m in d["matched"]]
