"""``alertline rules test`` and ``lint`` on the shipped rules and on broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from alertline.cli import cli
from services.evaluate.cli import register
from tests.conftest import REPO

SHIPPED = REPO / "rules"


def _cli() -> CliRunner:
    if "rules" not in cli.commands:
        register(cli)
    return CliRunner()


def test_the_shipped_rules_pass_their_own_tests() -> None:
    r = _cli().invoke(cli, ["rules", "test", str(SHIPPED)])
    assert r.exit_code == 0, r.output
    assert " 0 failed" in r.output
    passed = int(r.output.strip().splitlines()[-1].split()[0])
    assert passed >= 20


def test_the_shipped_rules_lint_clean_even_strictly() -> None:
    # A fixed time: the example suppression expires in 2027 and lint would then (rightly) warn.
    r = _cli().invoke(cli, ["rules", "lint", "--strict", "--at", "2026-12-01T00:00:00Z", str(SHIPPED)])
    assert r.exit_code == 0, r.output
    later = _cli().invoke(cli, ["rules", "lint", "--strict", "--at", "2027-02-01T00:00:00Z", str(SHIPPED)])
    assert later.exit_code == 1 and "suppression pentest-payments-staging-2026-12 expired" in later.output


def test_a_failing_case_is_reported_readably_with_a_non_zero_exit(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """rules:
  - id: a
    description: d
    owner: o
    match: {field: product, equals: guardduty}
    actions: {priority: P1}
    tests:
      - name: guardduty is P2
        alert: {product: guardduty}
        expect: {priority: P2}
"""
    )
    r = _cli().invoke(cli, ["rules", "test", str(tmp_path)])
    assert r.exit_code == 1
    assert f"FAIL {tmp_path}/r.yaml:8  a: guardduty is P2" in r.output
    assert "priority: expected 'P2', got 'P1'" in r.output
    assert "matched a: product equals 'guardduty' (got 'guardduty')" in r.output


def test_a_test_alert_that_is_not_a_valid_alert_fails(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """rules:
  - id: a
    description: d
    owner: o
    actions: {priority: P1}
    tests:
      - {name: t, alert: {severity: {score: high}}, expect: {priority: P1}}
"""
    )
    r = _cli().invoke(cli, ["rules", "test", str(tmp_path)])
    assert r.exit_code == 1 and "not a valid alert" in r.output and "Severity.score" in r.output


def test_invalid_rules_stop_the_test_run_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules:\n  - id: a\n    descripton: d\n")
    r = _cli().invoke(cli, ["rules", "test", str(tmp_path)])
    assert r.exit_code == 2
    assert f"{tmp_path}/r.yaml:3: error: unknown field 'descripton' in a rule; did you mean 'description'?" in r.output


def test_lint_reports_unreachable_rules_bad_patterns_and_expired_suppressions(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED, rules)
    (rules / "15-catch-all.yaml").write_text(
        """rules:
  - {id: catch-all, description: d, owner: o, actions: {labels: [seen]}, stop: true}
suppressions:
  - {id: old, match: {field: account, equals: "1"}, until: 2020-01-01T00:00:00Z, by: me, why: long ago}
"""
    )
    r = _cli().invoke(cli, ["rules", "lint", str(rules)])
    assert r.exit_code == 1
    unreachable = (
        "20-noise.yaml:4: error: drop-guardduty-port-probe-low is unreachable: catch-all always matches and stops"
    )
    assert unreachable in r.output
    assert "15-catch-all.yaml:4: warning: suppression old expired at 2020-01-01T00:00:00Z; remove it" in r.output

    (rules / "15-catch-all.yaml").write_text(
        """rules:
  - id: bad
    description: d
    owner: o
    match: {any: [{field: title, regex: "([a-z]+"}, {field: indicators.ips, cidr: 10.1.2.3/8}]}
    actions: {priority: P1, colour: red}
"""
    )
    r = _cli().invoke(cli, ["rules", "lint", str(rules)])
    assert r.exit_code == 1
    assert "15-catch-all.yaml:5: error: bad regex '([a-z]+'" in r.output
    assert "15-catch-all.yaml:5: error: bad CIDR '10.1.2.3/8'" in r.output
    assert "15-catch-all.yaml:6: error: unknown field 'colour' in actions" in r.output
