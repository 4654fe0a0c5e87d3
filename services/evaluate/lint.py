"""``alertline rules lint``: everything the loader rejects (unknown fields, bad regexes, bad
CIDRs, bad expressions), plus warnings about rules that load but cannot do what they say."""

from __future__ import annotations

from datetime import datetime

from alertline.clock import iso
from services.evaluate import expr as ex
from services.evaluate.diagnostics import Problem, RulesError
from services.evaluate.domain import RuleSet
from services.evaluate.rules import Loaded, Rule, Sources, Template, compile_sources

SETTINGS = ("action", "priority", "repository", "auto_close", "group_key")


def lint_sources(sources: Sources, now: datetime) -> list[Problem]:
    try:
        loaded = compile_sources(sources)
    except RulesError as exc:
        return sorted(exc.problems)
    return lint(loaded, now)


def lint(loaded: Loaded, now: datetime) -> list[Problem]:
    out: list[Problem] = list(loaded.warnings)

    def warn(file: str, line: int, message: str) -> None:
        out.append(Problem(file, line, message, "warning"))

    def error(file: str, line: int, message: str) -> None:
        # Loads and runs, but is certainly a mistake: lint fails on it.
        out.append(Problem(file, line, message, "error"))

    rs = RuleSet(loaded)
    for r in rs.never:
        error(r.file, r.line, f"{r.id}: its equality conditions contradict each other; it can never match")

    stopped_by = None
    fixed: dict[str, str] = {}  # setting -> the earlier unconditional rule that always sets it
    stop_conditions: dict[str, str] = {}  # condition text -> earlier rule with stop
    known_tables = set(loaded.tables)
    for r in loaded.rules:
        if r.kind == "suppression":
            if r.until is not None and r.until <= now:
                warn(r.file, r.line, f"suppression {r.id} expired at {iso(r.until)}; remove it")
        elif stopped_by is not None:
            error(r.file, r.line, f"{r.id} is unreachable: {stopped_by} always matches and stops")
        elif r.cond.text in stop_conditions:
            error(r.file, r.line, f"{r.id} is unreachable: {stop_conditions[r.cond.text]} has the same match and stops")
        else:
            dead = [s for s in r.sets if s in fixed]
            if dead and len(dead) == len(r.sets) and not r.labels and not r.assignees and not r.stop:
                by = fixed[dead[0]]
                warn(r.file, r.line, f"{r.id} never changes a decision: {', '.join(dead)} always set by {by}")
            elif dead:
                for s in dead:
                    warn(r.file, r.line, f"{r.id}: its {s} never applies; {fixed[s]} always sets it first")
        if r.kind == "rule" and r.cond.always:
            for s in r.sets:
                fixed.setdefault(s, r.id)
            if r.stop and stopped_by is None:
                stopped_by = r.id
        if r.kind == "rule" and r.stop and not r.cond.always:
            stop_conditions.setdefault(r.cond.text, r.id)
        for t in sorted(tables_used(r) - known_tables):
            warn(r.file, r.line, f"{r.id} uses lookup table {t!r}, which no lookup file defines (topic-only?)")
        if not r.tests:
            warn(r.file, r.line, f"{r.id} has no test cases")
    return sorted(out)


def tables_used(r: Rule) -> set[str]:
    """Lookup tables a rule reads, in its match and in its action templates."""
    out = set(r.cond.tables)
    templates: list[Template | None] = [r.reason, r.repository, r.group_key, *r.labels, *r.assignees]
    for t in templates:
        if t is not None:
            for p in t.parts:
                if not isinstance(p, str):
                    out |= ex.tables_of(p.node)
    return out
