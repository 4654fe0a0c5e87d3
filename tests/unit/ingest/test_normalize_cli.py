"""``alertline normalize PATH...``: JSON lines on stdout, one stderr line per refused file."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from services.ingest.cli import register
from tests.unit.ingest.support import FIXTURES

CONTRACT_KEYS = {
    "identity", "provider", "product", "account", "region", "resource_id", "resource_type", "title",
    "severity_label", "severity_score", "status", "ip_indicators", "domain_indicators", "control_id", "updated_at",
}  # fmt: skip


def cli() -> click.Group:
    @click.group()
    def group() -> None:
        pass

    register(group)
    return group


def invoke(*args: str):
    return CliRunner().invoke(cli(), ["normalize", *args])


def test_normalize_prints_one_json_object_per_alert_with_the_contract_keys():
    result = invoke(
        str(FIXTURES / "securityhub/multi-finding.json"),
        str(FIXTURES / "scc/v1-open-firewall-active.json"),
        str(FIXTURES / "defender/records-wrapper.json"),
        "--received-at",
        "2026-11-23T11:00:00Z",
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 + 1 + 2
    for line in lines:
        assert CONTRACT_KEYS <= line.keys()
        assert line["provider"] in ("aws", "gcp", "azure")
        assert line["updated_at"].endswith("Z")
    assert lines[3]["control_id"] == "OPEN_FIREWALL"
    assert lines[3]["resource_type"] == "google.compute.Firewall"
    assert lines[0]["alert"]["raw"]["uri"] == f"file://{FIXTURES / 'securityhub/multi-finding.json'}"
    assert result.stderr == ""


def test_a_file_it_cannot_accept_gets_one_stderr_line_and_the_others_still_go_through(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"detail-type": "GuardDuty Finding", "detail": ')
    missing = tmp_path / "missing.json"
    result = invoke(str(bad), str(FIXTURES / "guardduty/port-probe.json"), str(missing))
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"{bad}: malformed JSON at line 1")
    assert errors[1] == f"{missing}: cannot read: No such file or directory"


def test_a_bad_finding_inside_a_good_file_is_reported_and_fails_the_exit_code(tmp_path):
    event = json.loads((FIXTURES / "securityhub/multi-finding.json").read_text())
    event["detail"]["findings"][2]["Severity"] = {}
    path = tmp_path / "partly-bad.json"
    path.write_text(json.dumps(event))
    result = invoke(str(path))
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == f"{path}: finding 2: detail.findings[2]: Severity: neither Label nor Normalized is set\n"
