"""`alertline tickets preview PATH...`: the issue each alert in a raw delivery would get, as
JSON lines {title, labels, body}, with neither Kafka nor GitHub."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from alertline.errors import NormalizeError
from services.ingest.normalize import RawLocation, normalize
from services.ticket.cli import register
from services.ticket.text import MAX_BODY, parse_marker
from tests.conftest import REPO

DELIVERIES = sorted(p for p in (REPO / "tests" / "fixtures" / "deliveries").rglob("*")
                    if p.is_file() and p.suffix in (".json", ".ndjson", ".gz"))  # fmt: skip
AT = "2026-11-23T11:00:00Z"


def cli() -> click.Group:
    @click.group()
    def root() -> None:
        pass

    register(root)
    return root


def identities(path: Path) -> list[str]:
    body = path.read_bytes()
    raw = RawLocation(f"file://{path.resolve()}", hashlib.sha256(body).hexdigest())
    result = normalize(body, raw=raw, received_at=datetime(2026, 11, 23, 11, 0, tzinfo=UTC))
    return [a["identity"] for a in result.alerts]


@pytest.mark.parametrize("path", DELIVERIES, ids=[str(p.relative_to(REPO)) for p in DELIVERIES])
def test_every_delivery_shape_previews_one_issue_per_alert(path: Path) -> None:
    try:
        want = identities(path)
    except NormalizeError as exc:  # e.g. an S3 notification: ingest fetches the object first
        res = CliRunner().invoke(cli(), ["tickets", "preview", str(path)])
        assert res.exit_code == 1 and str(exc) in res.stderr and res.stdout == ""
        return
    res = CliRunner().invoke(cli(), ["tickets", "preview", "--received-at", AT, str(path)])
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    assert [parse_marker(x["body"]).identity for x in lines] == want  # type: ignore[union-attr]
    for x in lines:
        assert set(x) == {"title", "labels", "body"}
        assert x["title"] and len(x["title"]) <= 256 and len(x["body"]) <= MAX_BODY
        assert "alertline" in x["labels"] and any(lb.startswith("severity:") for lb in x["labels"])


def test_the_preview_is_what_responders_need_at_a_glance() -> None:
    path = REPO / "tests/fixtures/deliveries/guardduty/tor-api-call.json"
    res = CliRunner().invoke(cli(), ["tickets", "preview", "--received-at", AT, str(path)])
    assert res.exit_code == 0, res.output
    (p,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert p["title"].startswith("[medium] The API ListBuckets was invoked from a Tor exit node")
    assert "source:aws/guardduty" in p["labels"] and "account:111122223333" in p["labels"]
    body = p["body"]
    for expected in ("**Severity**", "**Where**", "`111122223333`", "`us-east-1`", "**Resource**", "**First seen**",
                     "[Open the finding in its console](https://console.aws.amazon.com/guardduty/",
                     f"file://{path.resolve()}", "198.51.100.200", "What the source says"):  # fmt: skip
        assert expected in body, expected


def test_unreadable_input_is_reported_with_its_cause_and_the_rest_still_previews(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    good = REPO / "tests/fixtures/deliveries/securityhub/ec2-19-open-ports.json"
    res = CliRunner().invoke(cli(), ["tickets", "preview", str(bad), str(tmp_path / "missing.json"), str(good)])
    assert res.exit_code == 1
    assert f"{bad}: " in res.stderr and "unknown delivery shape" in res.stderr
    assert "missing.json: cannot read" in res.stderr
    assert len([x for x in res.stdout.splitlines() if x.strip()]) == len(identities(good)) >= 1
