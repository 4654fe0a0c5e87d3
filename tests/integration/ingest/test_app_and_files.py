"""The composition root (health, metrics, drain) and `alertline ingest file` for backfill."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from alertline.cli import cli
from alertline.settings import KafkaSettings
from services.ingest.app import build
from services.ingest.cli import register
from services.ingest.settings import IngestSettings
from tests.integration.ingest.support import (
    CODEC,
    alerts,
    asff,
    aws_env,
    boto,
    dead_letters,
    fixture,
    make_topics,
    source_ids,
    unique,
)

pytestmark = pytest.mark.kafka


def test_service_serves_health_and_metrics_and_drains_on_stop(
    moto_endpoint: str, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_topics(kafka_settings)
    s3, sqs = boto("s3", moto_endpoint), boto("sqs", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=unique("app"))["QueueUrl"]
    for k, v in aws_env(moto_endpoint).items():
        monkeypatch.setenv(k, v)
    settings = IngestSettings(
        kafka=kafka_settings,
        runtime={"http_port": 0, "http_host": "127.0.0.1", "instance_id": "app-test"},
        archive={"bucket": bucket},
        ingest={"sqs": {"queue_urls": [queue], "wait_s": 1}},
    )
    app = build(settings, codec=CODEC)
    code: list[int] = []
    t = threading.Thread(target=lambda: code.append(app.run(install_signals=False)))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while app.http_port is None and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{app.http_port}"
        assert urllib.request.urlopen(base + "/readyz", timeout=5).status == 200
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        sqs.send_message(QueueUrl=queue, MessageBody=asff("-m1").decode())
        sqs.send_message(QueueUrl=queue, MessageBody="{broken")
        assert len(alerts(kafka_settings, expect=1)) == 1
        metrics = ""
        while time.monotonic() < deadline + 10:
            metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
            if 'alertline_ingest_dead_letters_total{source="sqs"} 1.0' in metrics:
                break
            time.sleep(0.2)
        for line in (
            'alertline_ingest_deliveries_total{outcome="done",source="sqs"} 2.0',
            'alertline_ingest_alerts_total{source="sqs"} 1.0',
            'alertline_ingest_dead_letters_total{source="sqs"} 1.0',
            'alertline_ingest_ack_latency_seconds_count{source="sqs"} 2.0',
        ):
            assert line in metrics, line
        assert "alertline_ingest_archive_failures_total" in metrics
    finally:
        app.stop.set()  # what SIGTERM does
        t.join(30)
    assert code == [0]


def test_ingest_file_archives_and_publishes_each_file_with_progress(
    tmp_path: Path, moto_endpoint: str, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_topics(kafka_settings)
    s3 = boto("s3", moto_endpoint)
    bucket = unique("archive")
    s3.create_bucket(Bucket=bucket)
    env = aws_env(moto_endpoint) | {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
        "ALERTLINE_ARCHIVE__BUCKET": bucket,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    a = tmp_path / "a.json"
    a.write_bytes(fixture("securityhub/multi-finding.json"))
    b = tmp_path / "b.json.gz"
    b.write_bytes(gzip.compress(fixture("scc/v2-open-firewall-active.json")))
    c = tmp_path / "c.json"
    c.write_bytes(b"not json at all")
    register(cli)
    result = CliRunner().invoke(cli, ["ingest", "file", str(a), str(b), str(c)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"[1/3] {a}: 3 alerts, 0 dead letters (s3://{bucket}/raw/file/")
    assert lines[1].startswith(f"[2/3] {b}: 1 alerts, 0 dead letters")
    assert lines[2].startswith(f"[3/3] {c}: 0 alerts, 1 dead letters")
    assert lines[-1] == "3/3 files ingested: 4 alerts, 1 dead letters"
    expected = source_ids(fixture("securityhub/multi-finding.json")) | source_ids(
        fixture("scc/v2-open-firewall-active.json")
    )
    assert {x["source_id"] for x in alerts(kafka_settings, expect=4)} == expected
    [(dl, _)] = dead_letters(kafka_settings, expect=1)
    assert dl["value"] == b"not json at all" and dl["source"] == c.resolve().as_uri()


def test_ingest_file_exits_non_zero_when_a_file_cannot_be_archived(
    tmp_path: Path, moto_endpoint: str, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_topics(kafka_settings)
    env = aws_env(moto_endpoint) | {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
        "ALERTLINE_ARCHIVE__BUCKET": unique("missing"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    a = tmp_path / "a.json"
    a.write_bytes(fixture("guardduty/port-probe.json"))
    register(cli)
    result = CliRunner().invoke(cli, ["ingest", "file", str(a)])
    assert result.exit_code == 1
    assert "FAILED, not published: archive:" in result.output
    assert alerts(kafka_settings, timeout=3) == []
