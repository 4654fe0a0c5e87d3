"""Rule files: parse, validate (every problem with file:line), compile.

A rule file is YAML with two optional lists::

    rules:
      - id: drop-guardduty-port-probes
        description: Port probes on unprotected ports are internet background noise.
        owner: secops@example.com
        match: {all: [{field: product, equals: guardduty}, {field: finding_type, glob: "Recon:EC2/PortProbe*"}]}
        expr: 'severity.score < 70'          # optional, ANDed with match
        actions: {drop: "internet background noise"}
        stop: false
        tests: [...]
    suppressions:
      - id: pentest-2026-q4
        match: {field: account, equals: "111122223333"}
        until: 2026-12-31T00:00:00Z
        by: alice@example.com
        why: Scheduled penetration test, ticket SEC-123.

See docs/rules.md for the language and the precedence.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from services.evaluate import expr as ex
from services.evaluate import lookups as lk_mod
from services.evaluate import paths, yamlsrc
from services.evaluate.diagnostics import Problem, RulesError
from services.evaluate.expr import LookupSource
from services.evaluate.match import ALWAYS, Cond, MatchError, compile_expr, compile_match
from services.evaluate.yamlsrc import LocatedDict, LocatedList

FILE_KEYS = ("rules", "suppressions")
RULE_KEYS = ("id", "description", "owner", "match", "expr", "actions", "stop", "tests")
SUPPRESSION_KEYS = ("id", "description", "match", "expr", "until", "by", "why", "tests")
ACTION_KEYS = ("drop", "keep", "priority", "labels", "repository", "assignees", "auto_close", "group_key")
TEST_KEYS = ("name", "alert", "now", "lookups", "expect")
EXPECT_KEYS = (
    "action", "priority", "reason", "repository", "labels", "assignees", "auto_close", "group_key",
    "matched", "not_matched",
)  # fmt: skip
PRIORITIES = ("P1", "P2", "P3", "P4")
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
RULE_SUFFIXES = (".yaml", ".yml")


# ---------------------------------------------------------------------------- templates
@dataclass(frozen=True)
class Template:
    """An action value; ``${expr}`` parts are evaluated against the alert and lookups.

    When a part evaluates to null the whole value counts as not set. A value that is exactly
    one ``${expr}`` yielding a list expands to several entries in labels/assignees.
    """

    text: str
    parts: tuple[str | ex.Compiled, ...]

    @property
    def constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, a: Any, lk: LookupSource) -> str | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v = _text(p.fn(a, lk))
            if v is None:
                return None
            out.append(v)
        return "".join(out)

    def render_many(self, a: Any, lk: LookupSource) -> list[str]:
        first = self.parts[0]
        if len(self.parts) == 1 and isinstance(first, str):
            return [first] if first else []
        if len(self.parts) == 1 and not isinstance(first, str):
            v = first.fn(a, lk)
            if isinstance(v, list):
                return [t for t in (_text(x) for x in v) if t]
        one = self.render(a, lk)
        return [one] if one else []


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, dict):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        items = [t for t in (_text(x) for x in v) if t]
        return ",".join(items) if items else None
    return str(v)


def compile_template(text: str) -> Template:
    parts: list[str | ex.Compiled] = []
    i = 0
    buf: list[str] = []
    while i < len(text):
        j = text.find("${", i)
        if j < 0:
            buf.append(text[i:])
            break
        buf.append(text[i:j])
        end = _closing_brace(text, j + 2)
        if end < 0:
            raise ex.ExprError(f"unclosed '${{' in {text!r}")
        if buf and "".join(buf):
            parts.append("".join(buf))
        buf = []
        parts.append(ex.compile_value(text[j + 2 : end]))
        i = end + 1
    if buf and "".join(buf):
        parts.append("".join(buf))
    return Template(text, tuple(parts) if parts else ("",))


def _closing_brace(text: str, start: int) -> int:
    quote: str | None = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "}":
            return i
        i += 1
    return -1


# ---------------------------------------------------------------------------- model
@dataclass(frozen=True)
class TestCase:
    name: str
    rule_id: str
    file: str
    line: int
    alert: dict[str, Any]
    now: datetime | None
    lookups: dict[str, dict[str, Any]]
    expect: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str  # rule | suppression
    file: str
    line: int
    position: int
    description: str
    owner: str
    cond: Cond
    test: Callable[[Any, LookupSource], bool]
    stop: bool
    action: str | None  # drop | ticket
    reason: Template | None
    priority: str | None
    repository: Template | None
    assignees: tuple[Template, ...]
    labels: tuple[Template, ...]
    auto_close: bool | None
    group_key: Template | None
    until: datetime | None
    by: str | None
    why: str | None
    tests: tuple[TestCase, ...]

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def sets(self) -> tuple[str, ...]:
        """Decision fields this rule sets (for lint)."""
        out = []
        for name in ("action", "priority", "repository", "auto_close", "group_key"):
            if getattr(self, name) is not None:
                out.append(name)
        return tuple(out)


@dataclass(frozen=True)
class Sources:
    """The raw text of a rule set: what a reload compares and what the fingerprint covers."""

    rule_files: tuple[tuple[Path, str], ...]
    lookup_files: tuple[tuple[Path, str], ...]

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for kind, files in (("rules", self.rule_files), ("lookups", self.lookup_files)):
            for p, text in files:
                h.update(f"{kind}\0{p.name}\0".encode())
                h.update(text.encode())
                h.update(b"\0")
        return "sha256:" + h.hexdigest()[:16]


@dataclass(frozen=True)
class Loaded:
    rules: tuple[Rule, ...]  # suppressions first, then rules; the order is the precedence
    tables: dict[str, lk_mod.Table]
    fingerprint: str
    warnings: tuple[Problem, ...]


def read_sources(rules_dir: Path, lookups_dir: Path | None = None) -> Sources:
    """Read every rule file (``*.yaml``/``*.yml``, by name) and lookup file. Raises RulesError."""
    if not rules_dir.is_dir():
        raise RulesError([Problem(str(rules_dir), 0, "rules directory does not exist")])
    if lookups_dir is None:
        lookups_dir = rules_dir / "lookups"
    try:
        rule_files = tuple(
            (p, p.read_text("utf-8"))
            for p in sorted(rules_dir.iterdir(), key=lambda p: p.name)
            if p.suffix in RULE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
        lookup_files = tuple((p, p.read_text("utf-8")) for p in lk_mod.lookup_files(lookups_dir))
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([Problem(str(getattr(exc, "filename", rules_dir)), 0, f"cannot read: {exc}")]) from exc
    return Sources(rule_files, lookup_files)


def load(rules_dir: Path, lookups_dir: Path | None = None) -> Loaded:
    return compile_sources(read_sources(rules_dir, lookups_dir))


def compile_sources(sources: Sources) -> Loaded:
    """Compile a rule set; raises RulesError listing every problem."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    tables = lk_mod.load_tables(list(sources.lookup_files), problems)
    suppressions: list[Rule] = []
    rules: list[Rule] = []
    for path, text in sources.rule_files:
        _FileCompiler(str(path), problems, warnings).compile(text, rules, suppressions)
    seen: dict[str, Rule] = {}
    for r in (*suppressions, *rules):
        if r.id in seen:
            problems.append(Problem(r.file, r.line, f"duplicate id {r.id!r} (also at {seen[r.id].location})"))
        seen.setdefault(r.id, r)
    if problems:
        raise RulesError(sorted(problems))
    ordered = [
        _with_position(r, i)
        for i, r in enumerate((*suppressions, *rules))  # suppressions come before every rule
    ]
    return Loaded(tuple(ordered), tables, sources.fingerprint, tuple(warnings))


def _with_position(r: Rule, i: int) -> Rule:
    return replace(r, position=i)


class _FileCompiler:
    def __init__(self, file: str, problems: list[Problem], warnings: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.warnings = warnings

    def err(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def compile(self, text: str, rules: list[Rule], suppressions: list[Rule]) -> None:
        try:
            doc = yamlsrc.load(text)
        except yamlsrc.YamlProblem as exc:
            self.err(exc.line, exc.message)
            return
        if doc is None:
            return
        if not isinstance(doc, LocatedDict):
            self.err(1, "a rule file is a mapping with 'rules:' and/or 'suppressions:' lists")
            return
        self._unknown(doc, FILE_KEYS, "in a rule file")
        for key, out in (("rules", rules), ("suppressions", suppressions)):
            items = doc.get(key)
            if items is None:
                continue
            if not isinstance(items, LocatedList):
                self.err(doc.line_of(key), f"'{key}' takes a list")
                continue
            for i, item in enumerate(items):
                line = items.line_of(i)
                if not isinstance(item, LocatedDict):
                    self.err(line, f"each entry of '{key}' is a mapping")
                    continue
                r = self._rule(item) if key == "rules" else self._suppression(item)
                if r is not None:
                    out.append(r)

    # -------------------------------------------------------------- shared parts
    def _unknown(self, node: LocatedDict, allowed: Sequence[str], where: str) -> None:
        for k in node:
            if k not in allowed:
                hint = difflib.get_close_matches(k, list(allowed), 1)
                self.err(
                    node.line_of(k),
                    f"unknown field {k!r} {where}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (allowed: {', '.join(allowed)})",
                )  # fmt: skip

    def _text(self, node: LocatedDict, key: str, required: bool = True) -> str | None:
        v = node.get(key)
        if v is None:
            if required:
                self.err(node.line, f"missing required field {key!r}")
            return None
        if not isinstance(v, str) or not v.strip():
            self.err(node.line_of(key), f"{key!r} takes non-empty text, got {v!r}")
            return None
        return v

    def _id(self, node: LocatedDict) -> str | None:
        rid = self._text(node, "id")
        if rid is not None and not RULE_ID.match(rid):
            self.err(node.line_of("id"), f"id {rid!r} must be letters, digits, '_', '.', ':', '-' (at most 100)")
            return None
        return rid

    def _condition(self, node: LocatedDict) -> Cond | None:
        conds: list[Cond] = []
        ok = True
        if "match" in node:
            try:
                conds.append(compile_match(node["match"], node.line_of("match")))
            except MatchError as exc:
                for line, message in exc.errors:
                    self.err(line, message)
                ok = False
        if "expr" in node:
            try:
                conds.append(compile_expr(node["expr"], node.line_of("expr")))
            except MatchError as exc:
                self.err(exc.line, str(exc))
                ok = False
        if not ok:
            return None
        if not conds:
            return ALWAYS
        if len(conds) == 1:
            return conds[0]
        m, e = conds
        t1, t2 = m.test, e.test
        return Cond(
            lambda a, lk: t1(a, lk) and t2(a, lk),
            lambda a, lk: f"{m.explain(a, lk)} and {e.explain(a, lk)}",
            f"{m.text} and {e.text}",
            hints=m.hints + e.hints,
            tables=m.tables | e.tables,
        )

    def _template(self, node: LocatedDict, key: str, value: Any, line: int) -> Template | None:
        if not isinstance(value, str) or not value:
            self.err(line, f"{key} takes non-empty text, got {value!r}")
            return None
        try:
            return compile_template(value)
        except ex.ExprError as exc:
            self.err(line, f"{key}: {exc}")
            return None

    # -------------------------------------------------------------- rules
    def _rule(self, node: LocatedDict) -> Rule | None:
        before = len(self.problems)
        self._unknown(node, RULE_KEYS, "in a rule")
        rid = self._id(node)
        description = self._text(node, "description")
        owner = self._text(node, "owner")
        cond = self._condition(node)
        stop = node.get("stop", False)
        if not isinstance(stop, bool):
            self.err(node.line_of("stop"), f"stop takes true or false, got {stop!r}")
        actions = node.get("actions")
        fields: dict[str, Any] = {}
        if actions is None:
            if not stop:
                self.err(node.line, "a rule needs 'actions' (or 'stop: true' to end evaluation)")
        elif not isinstance(actions, LocatedDict):
            self.err(node.line_of("actions"), "'actions' takes a mapping, e.g. {priority: P1}")
        else:
            fields = self._actions(actions)
        tests = self._tests(node, rid or "?")
        if len(self.problems) > before or rid is None or cond is None:
            return None
        return Rule(
            id=rid, kind="rule", file=self.file, line=node.line, position=0,
            description=description or "", owner=owner or "", cond=cond, test=cond.test, stop=bool(stop),
            action=fields.get("action"), reason=fields.get("reason"), priority=fields.get("priority"),
            repository=fields.get("repository"), assignees=fields.get("assignees", ()),
            labels=fields.get("labels", ()), auto_close=fields.get("auto_close"),
            group_key=fields.get("group_key"), until=None, by=None, why=None, tests=tests,
        )  # fmt: skip

    def _actions(self, node: LocatedDict) -> dict[str, Any]:
        self._unknown(node, ACTION_KEYS, "in actions")
        out: dict[str, Any] = {}
        if "drop" in node and "keep" in node:
            self.err(node.line, "a rule either drops or keeps, not both")
        for key in ("drop", "keep"):
            if key in node:
                t = self._template(node, key, node[key], node.line_of(key))
                if t is not None:
                    out["action"] = "drop" if key == "drop" else "ticket"
                    out["reason"] = t
        if "priority" in node:
            p = node["priority"]
            if p not in PRIORITIES:
                self.err(node.line_of("priority"), f"priority takes one of {', '.join(PRIORITIES)}, got {p!r}")
            else:
                out["priority"] = p
        if "repository" in node:
            t = self._template(node, "repository", node["repository"], node.line_of("repository"))
            if t is not None:
                if t.constant and not REPOSITORY.match(t.text):
                    self.err(node.line_of("repository"), f"repository takes 'owner/name', got {t.text!r}")
                else:
                    out["repository"] = t
        for key in ("labels", "assignees"):
            if key in node:
                v = node[key]
                if not isinstance(v, list) or not v:
                    self.err(node.line_of(key), f"{key} takes a non-empty list of texts, got {v!r}")
                    continue
                ts = [self._template(node, key, x, node.line_of(key)) for x in v]
                if key == "labels":
                    for t in ts:
                        if t is not None and t.constant and len(t.text) > 50:
                            self.err(node.line_of(key), f"label {t.text!r} is longer than GitHub's 50 characters")
                out[key] = tuple(t for t in ts if t is not None)
        if "auto_close" in node:
            v = node["auto_close"]
            if not isinstance(v, bool):
                self.err(node.line_of("auto_close"), f"auto_close takes true or false, got {v!r}")
            else:
                out["auto_close"] = v
        if "group_key" in node:
            t = self._template(node, "group_key", node["group_key"], node.line_of("group_key"))
            if t is not None:
                out["group_key"] = t
        return out

    # -------------------------------------------------------------- suppressions
    def _suppression(self, node: LocatedDict) -> Rule | None:
        before = len(self.problems)
        self._unknown(node, SUPPRESSION_KEYS, "in a suppression")
        rid = self._id(node)
        by = self._text(node, "by")
        why = self._text(node, "why")
        if "match" not in node and "expr" not in node:
            self.err(node.line, "a suppression must be scoped: give it a 'match' (or 'expr')")
        cond = self._condition(node)
        until: datetime | None = None
        if "until" in node:
            until = self._timestamp(node["until"], node.line_of("until"), "until")
        else:
            self.warnings.append(
                Problem(self.file, node.line, f"suppression {rid!r} has no 'until' and never expires", "warning")
            )
        tests = self._tests(node, rid or "?")
        if len(self.problems) > before or rid is None or cond is None or by is None or why is None:
            return None
        until_txt = f"until {until.isoformat().replace('+00:00', 'Z')}" if until else "no expiry"
        reason = f"suppressed by {rid} ({by}, {until_txt}): {why}"
        return Rule(
            id=rid, kind="suppression", file=self.file, line=node.line, position=0,
            description=str(node.get("description") or why), owner=by, cond=cond, test=cond.test, stop=True,
            action="drop", reason=Template(reason, (reason,)), priority=None, repository=None, assignees=(),
            labels=(), auto_close=None, group_key=None, until=until, by=by, why=why, tests=tests,
        )  # fmt: skip

    def _timestamp(self, v: Any, line: int, key: str) -> datetime | None:
        if isinstance(v, datetime):
            if v.tzinfo is None:
                self.err(line, f"{key} needs a time zone, e.g. 2026-12-31T00:00:00Z")
                return None
            return v.astimezone(UTC)
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day, tzinfo=UTC)
        if isinstance(v, str):
            try:
                dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                self.err(line, f"{key} takes a timestamp like 2026-12-31T00:00:00Z, got {v!r}")
                return None
            if dt.tzinfo is None:
                self.err(line, f"{key} needs a time zone, e.g. 2026-12-31T00:00:00Z")
                return None
            return dt.astimezone(UTC)
        self.err(line, f"{key} takes a timestamp like 2026-12-31T00:00:00Z, got {v!r}")
        return None

    # -------------------------------------------------------------- tests
    def _tests(self, node: LocatedDict, rid: str) -> tuple[TestCase, ...]:
        raw = node.get("tests")
        if raw is None:
            return ()
        if not isinstance(raw, LocatedList):
            self.err(node.line_of("tests"), "'tests' takes a list of test cases")
            return ()
        out: list[TestCase] = []
        for i, item in enumerate(raw):
            line = raw.line_of(i)
            if not isinstance(item, LocatedDict):
                self.err(line, "a test case is a mapping with name, alert, expect")
                continue
            tc = self._test(item, rid)
            if tc is not None:
                out.append(tc)
        return tuple(out)

    def _test(self, node: LocatedDict, rid: str) -> TestCase | None:
        before = len(self.problems)
        self._unknown(node, TEST_KEYS, "in a test case")
        name = self._text(node, "name") or "?"
        alert = node.get("alert", {})
        if not isinstance(alert, dict):
            self.err(node.line_of("alert"), "a test's 'alert' is a mapping of alert fields")
            alert = {}
        else:
            for k in alert:
                if k not in paths.ALERT_FIELDS:
                    hint = difflib.get_close_matches(k, list(paths.ALERT_FIELDS), 1)
                    line = alert.line_of(k) if isinstance(alert, LocatedDict) else node.line
                    self.err(line, f"an alert has no field {k!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        now = self._timestamp(node["now"], node.line_of("now"), "now") if "now" in node else None
        tables = node.get("lookups", {})
        if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
            self.err(node.line_of("lookups"), "a test's 'lookups' maps table -> {key: row}")
            tables = {}
        expect = node.get("expect")
        if not isinstance(expect, LocatedDict) or not expect:
            self.err(node.line_of("expect") if "expect" in node else node.line, "a test case needs 'expect'")
            expect = LocatedDict()
        else:
            self._unknown(expect, EXPECT_KEYS, "in expect")
            if "action" in expect and expect["action"] not in ("ticket", "drop"):
                self.err(expect.line_of("action"), f"expect.action is ticket or drop, got {expect['action']!r}")
            if "priority" in expect and expect["priority"] not in PRIORITIES:
                self.err(expect.line_of("priority"), f"expect.priority is one of {', '.join(PRIORITIES)}")
            for key in ("labels", "assignees", "matched", "not_matched"):
                if key in expect and not (
                    isinstance(expect[key], list) and all(isinstance(x, str) for x in expect[key])
                ):
                    self.err(expect.line_of(key), f"expect.{key} takes a list of texts")
        if len(self.problems) > before:
            return None
        return TestCase(
            name=name, rule_id=rid, file=self.file, line=node.line, alert=_plain(alert), now=now,
            lookups={str(t): _rows(rows) for t, rows in tables.items()},
            expect=_plain(expect),
        )  # fmt: skip


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _rows(rows: dict[Any, Any]) -> dict[str, Any]:
    # A key with no row is a member of the table: it needs a non-null value.
    return {str(k): {} if v is None else _plain(v) for k, v in rows.items()}
