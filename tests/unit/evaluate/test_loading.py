"""Loading rule files: every problem is reported with file:line and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluate.diagnostics import RulesError
from services.evaluate.rules import load

from .helpers import loaded


def problems(*files: str) -> list[str]:
    with pytest.raises(RulesError) as exc:
        loaded(*files)
    return [str(p) for p in exc.value.problems]


def test_a_valid_file_loads_in_order_with_suppressions_first() -> None:
    got = loaded(
        """
rules:
  - {id: a, description: d, owner: o, actions: {priority: P1}}
suppressions:
  - {id: s, match: {field: account, equals: "1"}, until: 2026-12-31, by: me, why: test}
""",
        "rules: [{id: b, description: d, owner: o, actions: {priority: P2}}]",
    )
    assert [r.id for r in got.rules] == ["s", "a", "b"]
    assert [r.position for r in got.rules] == [0, 1, 2]
    assert got.fingerprint.startswith("sha256:")


def test_unknown_fields_are_errors_with_their_line_and_a_suggestion() -> None:
    got = problems(
        """rules:
  - id: a
    description: d
    owner: o
    acitons: {priority: P1}
    match: {field: product, equals: x}
"""
    )
    assert "rules/00.yaml:5: error: unknown field 'acitons' in a rule; did you mean 'actions'?" in got[1]
    assert any("rules/00.yaml:2" in p and "needs 'actions'" in p for p in got)


def test_problems_in_conditions_point_at_their_own_line() -> None:
    got = problems(
        """rules:
  - id: a
    description: d
    owner: o
    match:
      all:
        - {field: product, equals: x}
        - {field: title, regex: "(unclosed"}
    actions: {priority: P1}
"""
    )
    assert got == ["rules/00.yaml:8: error: bad regex '(unclosed': missing ), unterminated subpattern at position 0"]


def test_every_problem_is_reported_not_just_the_first() -> None:
    got = problems(
        """rules:
  - {id: "bad id!", description: d, owner: o, actions: {priority: P9}}
  - {id: b, description: "", owner: o, actions: {repository: "not a repo"}}
  - {id: c, description: d, owner: o, actions: {drop: x, keep: y}}
  - {id: d, description: d, owner: o, actions: {labels: []}, stop: maybe}
""",
    )
    text = "\n".join(got)
    for needle in ("bad id!", "P9", "'description' takes non-empty", "owner/name", "drops or keeps", "labels", "stop"):
        assert needle in text, needle


def test_duplicate_ids_and_duplicate_yaml_keys_are_errors() -> None:
    got = problems(
        "rules: [{id: a, description: d, owner: o, actions: {priority: P1}}]",
        "rules: [{id: a, description: d, owner: o, actions: {priority: P1}}]",
    )
    assert got == ["rules/01.yaml:1: error: duplicate id 'a' (also at rules/00.yaml:1)"]
    got = problems("rules:\n  - id: a\n    id: b\n")
    assert got[0].startswith("rules/00.yaml:3: error: duplicate key 'id' (first at line 2)")


def test_yaml_syntax_errors_have_a_line() -> None:
    got = problems("rules:\n  - id: a\n   bad: [\n")
    assert got[0].startswith("rules/00.yaml:") and "YAML syntax" in got[0]


def test_suppressions_must_be_scoped_and_carry_who_and_why() -> None:
    got = problems("suppressions:\n  - {id: s, until: 2026-12-31T00:00:00Z}\n")
    text = "\n".join(got)
    assert "'by'" in text and "'why'" in text and "must be scoped" in text
    got = problems(
        "suppressions:\n  - {id: s, match: {field: product, equals: x}, by: me, why: w, until: 2026-12-31T00:00:00}\n"
    )
    assert "needs a time zone" in got[0]


def test_test_cases_are_validated_too() -> None:
    got = problems(
        """rules:
  - id: a
    description: d
    owner: o
    actions: {priority: P1}
    tests:
      - name: t
        alert: {prodcut: guardduty}
        expect: {action: ticket, prio: P1}
"""
    )
    text = "\n".join(got)
    assert "rules/00.yaml:8" in text and "did you mean 'product'" in text
    assert "rules/00.yaml:9" in text and "unknown field 'prio'" in text


def test_lookup_file_problems_are_located(tmp_path: Path) -> None:
    (tmp_path / "lookups").mkdir()
    (tmp_path / "r.yaml").write_text("rules: []\n")
    (tmp_path / "lookups" / "accounts.yaml").write_text('"1": {team: a}\n123456789012: {team: b}\n')
    (tmp_path / "lookups" / "ips.csv").write_text("ip,note\n1.2.3.4,a\n1.2.3.4,b\n")
    with pytest.raises(RulesError) as exc:
        load(tmp_path)
    got = [str(p) for p in exc.value.problems]
    quote = "accounts.yaml:2: error: key 123456789012 is not text; quote it ('123456789012') so it stays exact"
    assert any(p.endswith(quote) for p in got)
    assert any("ips.csv:3" in p and "duplicate key '1.2.3.4'" in p for p in got)


def test_a_missing_rules_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="does not exist"):
        load(tmp_path / "nope")


def test_files_load_in_name_order_and_ignore_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "20-b.yaml").write_text("rules: [{id: b, description: d, owner: o, actions: {priority: P2}}]\n")
    (tmp_path / "10-a.yml").write_text("rules: [{id: a, description: d, owner: o, actions: {priority: P1}}]\n")
    (tmp_path / ".hidden.yaml").write_text("this is: [not loaded\n")
    (tmp_path / "README.md").write_text("not a rule file")
    assert [r.id for r in load(tmp_path).rules] == ["a", "b"]
