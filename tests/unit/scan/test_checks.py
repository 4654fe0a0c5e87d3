"""Check files: the shipped ones load; a broken one is refused with its file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alertline.errors import ConfigError
from services.scan.checks import CheckError, default_dir, load_checks, parse_check

GOOD = {
    "id": "aws-test",
    "title": "A test check",
    "severity": "high",
    "provider": "aws",
    "resource_type": "AwsEc2SecurityGroup",
    "remediation": "Fix it.",
    "match": {"field": "kind", "equals": "AwsEc2SecurityGroup"},
}


def test_shipped_checks_load_with_unique_ids_remediation_and_scores_in_band() -> None:
    checks = load_checks([default_dir()])
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)) >= 10
    assert {c.provider for c in checks} == {"aws", "gcp", "azure"}
    for c in checks:
        assert c.remediation and c.title and c.source.endswith(".yaml")
    sg = next(c for c in checks if c.id == "aws-sg-open-admin-port")
    assert sg.score == 80 and sg.severity == "high"
    assert {22, 3389, 3306, 5432, 1433, 27017, 6379, 9200} <= set(sg.ports)


def test_default_score_follows_the_label() -> None:
    assert parse_check(GOOD).score == 75
    assert parse_check(GOOD | {"severity": "low"}).score == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"remediation": None}, "missing remediation"),
        ({"severity": "urgent"}, "severity is one of"),
        ({"score": 10}, "outside the high band"),
        ({"provider": "oracle"}, "provider is one of"),
        ({"id": "has space"}, "may hold letters"),
        ({"ports": [22]}, "ports needs each"),
        ({"each": "facts.rules", "ports": [70000]}, "port numbers"),
        ({"match": {"field": "kind", "equalz": 1}}, "unknown key 'equalz'"),
        ({"evidence": {"x": "a..b"}}, "evidence.x"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_a_broken_check_is_refused_naming_what_is_wrong(change: dict[str, object], message: str) -> None:
    spec = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(CheckError, match=message) as exc:
        parse_check(spec, "checks/x.yaml")
    assert "checks/x.yaml" in str(exc.value)


def test_loading_a_directory_reports_every_problem_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "c.yaml").write_text("id: [unclosed\n")
    (tmp_path / "d.yml").write_text(yaml.safe_dump(GOOD | {"id": "other", "severity": "nope"}))
    with pytest.raises(CheckError) as exc:
        load_checks([tmp_path])
    text = str(exc.value)
    assert "duplicate id 'aws-test'" in text
    assert "c.yaml: not valid YAML" in text
    assert "d.yml" in text and "severity is one of" in text


def test_an_empty_or_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="no checks found"):
        load_checks([tmp_path])
    with pytest.raises(CheckError, match="not a directory"):
        load_checks([tmp_path / "missing"])


def test_configured_checks_add_to_the_shipped_ones_and_replace_them_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.scan.app import checks_for
    from services.scan.settings import ScanSettings

    stricter = GOOD | {"id": "aws-iam-access-key-old", "title": "Access key older than 30 days"}
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(stricter))
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump(GOOD))
    # The Helm chart mounts its checks ConfigMap and names it with ALERTLINE_SCAN__CHECKS_DIR.
    monkeypatch.setenv("ALERTLINE_SCAN__CHECKS_DIR", str(tmp_path))
    monkeypatch.setenv("ALERTLINE_DISABLED_CHECKS", '["aws-iam-root-mfa-off"]')
    checks = {c.id: c for c in checks_for(ScanSettings())}
    shipped = {c.id for c in load_checks([default_dir()])}
    assert set(checks) == shipped - {"aws-iam-root-mfa-off"} | {"aws-test"}
    assert checks["aws-iam-access-key-old"].title == "Access key older than 30 days"

    monkeypatch.setenv("ALERTLINE_DISABLED_CHECKS", '["no-such-check"]')
    with pytest.raises(ConfigError, match="unknown check ids: no-such-check"):
        checks_for(ScanSettings())
    monkeypatch.setenv("ALERTLINE_DISABLED_CHECKS", "[]")
    monkeypatch.setenv("ALERTLINE_INCLUDE_SHIPPED_CHECKS", "false")
    assert {c.id for c in checks_for(ScanSettings())} == {"aws-test", "aws-iam-access-key-old"}
