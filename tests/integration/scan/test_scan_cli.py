"""The scanner as an operator runs it: ``alertline scan ... --dry-run`` (no Kafka, no archive)
and ``alertline run scan`` (the CronJob: one pass, exit code, metrics pushed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alertline.settings import KafkaSettings
from alertline.topics import topic
from tests.conftest import REPO
from tests.integration.scan.support import ARCHIVE_BUCKET, CREDS, REGION, A, B, Moto, alerts, build_world

FIX = REPO / "tests" / "fixtures" / "scan"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALERTLINE_", "AWS_"))}
    base |= {
        "AWS_ACCESS_KEY_ID": CREDS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "alertline.cli", *args],
        env=base | (env or {}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_scan_aws_dry_run_prints_the_alerts_of_two_accounts_as_json_lines(cloud: Moto) -> None:
    build_world(cloud)
    p = run("scan", "aws", "--account", A, "--account", B, "--region", REGION, "--endpoint-url", cloud.url, "--dry-run")
    assert p.returncode == 0, p.stderr
    got = {(a["account"], a["control_id"], a["resources"][0]["name"]) for a in lines(p.stdout)}  # type: ignore[index]
    assert got == {
        (A, "aws-sg-open-admin-port", "web"),
        (A, "aws-s3-public-bucket", "a-public"),
        (A, "aws-iam-root-mfa-off", None),
        (B, "aws-sg-open-admin-port", "jump"),
        (B, "aws-s3-public-bucket", "b-acl"),
        (B, "aws-ebs-default-encryption-off", f"{B} {REGION}"),
        (B, "aws-iam-root-mfa-off", None),
    }, "keys created today are not old yet"
    summary = json.loads(p.stderr.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["units"] == 4 and summary["findings"] == 7


def test_scan_inventory_dry_run_reports_unchecked_kinds_and_succeeds(tmp_path: Path) -> None:
    p = run("scan", "inventory", "--format", "gcp-cai", str(FIX / "gcp" / "cai-resource-export.jsonl"), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert {a["resources"][0]["name"] for a in lines(p.stdout)} == {"allow-ssh-from-anywhere", "legacy-db-access"}  # type: ignore[index]
    report = [x for x in lines(p.stderr) if "kinds_without_checks" in x]
    assert report[0]["kinds_without_checks"] == {
        "compute.googleapis.com/Instance": 1,
        "storage.googleapis.com/Bucket": 1,
    }


def test_scan_all_dry_run_reads_the_sources_from_settings_like_the_cronjob() -> None:
    inventory = {
        "gcp-org": {"format": "gcp-cai", "uri": str(FIX / "gcp" / "cai-iam-policy-export.jsonl")},
        "azure-tenant": {"format": "azure-arg", "uri": str(FIX / "azure" / "arg-cli-output.json")},
    }
    env = {"ALERTLINE_INVENTORY": json.dumps(inventory)}
    p = run("scan", "all", "--dry-run", env=env)
    assert p.returncode == 0, p.stderr
    got = {(a["provider"], a["resources"][0]["name"]) for a in lines(p.stdout)}  # type: ignore[index]
    assert got == {("gcp", "shop-prod-4821-assets"), ("gcp", "data-lake-7733-exports"), ("azure", "shopassets01")}
    p2 = run("scan", "inventory", "--dry-run", env=env)
    same = {(a["identity"], a["revision"]) for a in lines(p.stdout)}
    assert p2.returncode == 0 and {(a["identity"], a["revision"]) for a in lines(p2.stdout)} == same
    p3 = run("scan", "inventory", "--dry-run")
    assert p3.returncode == 2 and "configure ALERTLINE_INVENTORY" in p3.stderr


def test_scan_inventory_with_bad_rows_prints_what_it_can_names_the_damage_and_exits_1() -> None:
    p = run("scan", "inventory", "--format", "azure-arg", str(FIX / "azure" / "arg-bad-rows.jsonl"), "--dry-run")
    assert p.returncode == 1
    assert {a["resources"][0]["name"] for a in lines(p.stdout)} == {"web-nsg", "shopassets01"}  # type: ignore[index]
    err = lines(p.stderr)
    (bad,) = [x for x in err if "first" in x]
    assert bad["bad_records"] == 3 and any(":3: row has no id" in s for s in bad["first"])  # type: ignore[union-attr]
    logged = [x for x in err if x.get("msg") == "bad inventory record"]
    assert [(x["position"], x["level"]) for x in logged] == [(2, "error"), (3, "error"), (4, "error")]
    assert "Traceback" not in p.stderr


def test_scan_checks_lists_the_shipped_checks_and_refuses_a_broken_directory(tmp_path: Path) -> None:
    p = run("scan", "checks")
    assert p.returncode == 0 and len(lines(p.stdout)) >= 10
    (tmp_path / "x.yaml").write_text("id: x\ntitle: t\nseverity: high\nprovider: aws\nresource_type: T\nmatch: {}\n")
    p = run("scan", "checks", "--checks", str(tmp_path))
    assert p.returncode == 1 and "missing remediation" in p.stderr


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[bytes]]]:
    """Stands in for a Prometheus Pushgateway: records what is pushed."""
    bodies: list[bytes] = []

    class H(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(202)
            self.end_headers()

        do_POST = do_PUT

        def log_message(self, *a: object) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", bodies
    srv.shutdown()


@pytest.mark.kafka
def test_run_scan_is_one_pass_with_an_exit_code_for_the_cronjob(
    cloud: Moto,
    archive_moto: Moto,
    kafka_settings: KafkaSettings,
    kafka_bootstrap: str,
    prefix: str,
    pushgateway: tuple[str, list[bytes]],
) -> None:
    build_world(cloud)
    url, pushed = pushgateway
    env = {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka_bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": prefix,
        "ALERTLINE_KAFKA__PARTITIONS": "3",
        "ALERTLINE_AWS__ENABLED": "true",
        "ALERTLINE_AWS__ACCOUNTS": json.dumps({A: "prod", B: "sandbox"}),
        "ALERTLINE_AWS__REGIONS": json.dumps([REGION]),
        "ALERTLINE_AWS__ENDPOINT_URL": cloud.url,
        "ALERTLINE_ARCHIVE__BUCKET": ARCHIVE_BUCKET,
        "ALERTLINE_ARCHIVE__ENDPOINT_URL": archive_moto.url,
        "ALERTLINE_PUSHGATEWAY_URL": url,
    }
    p = run("run", "scan", env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(alerts(kafka_bootstrap, topic(prefix, "alerts"))) == 7
    assert b'alertline_scan_units_total{outcome="complete",provider="aws"} 4.0' in pushed[-1]
    logs = lines(p.stderr)
    assert logs[-1]["msg"] == "scan finished" and logs[-1]["ok"] is True and logs[-1]["service"] == "scan"

    # An export that cannot be read: the pass still runs, says so, and exits 1.
    env["ALERTLINE_INVENTORY"] = json.dumps({"gcp-org": {"format": "gcp-cai", "uri": "/nonexistent/export.json"}})
    p = run("run", "scan", env=env)
    assert p.returncode == 1
    assert "inventory export unreadable" in p.stderr and "/nonexistent/export.json" in p.stderr
    assert b'alertline_scan_units_total{outcome="incomplete",provider="gcp"} 1.0' in pushed[-1]

    # Invalid settings: exit 2 before touching anything.
    p = run("run", "scan", env=env | {"ALERTLINE_AWS__ACCOUNTS": json.dumps({"12345": "short"})})
    assert p.returncode == 2 and "12 digits" in p.stderr
