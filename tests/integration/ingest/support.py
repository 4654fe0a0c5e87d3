"""Shared parts of the ingest integration tests: moto server, topics, pipelines, readers."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create_topics
from alertline.kafka.publisher import Publisher
from alertline.settings import KafkaSettings
from alertline.testing.kafka import read_all
from services.ingest.archive import S3Archive
from services.ingest.normalize import normalize as real_normalize
from services.ingest.pipeline import IngestMetrics, NormalizeFn, Pipeline, Topics
from tests.conftest import REPO

CODEC = SingleObjectCodec()
REGION = "us-east-1"
FIXTURES = REPO / "tests" / "fixtures" / "deliveries"


def fixture(name: str) -> bytes:
    """One delivery as the transport hands it (tests/fixtures/deliveries, real wire formats)."""
    return (FIXTURES / name).read_bytes()


def doc(name: str) -> Any:
    return json.loads(fixture(name))


def asff(*suffixes: str, **changes: Any) -> bytes:
    """An EventBridge "Security Hub Findings - Imported" event (the ec2-19 fixture) holding one
    finding per suffix, each its own identity (``Id`` + suffix); ``changes`` edit every finding."""
    event = doc("securityhub/ec2-19-open-ports.json")
    base = event["detail"]["findings"][0]
    findings = []
    for sfx in suffixes:
        f = json.loads(json.dumps(base)) | changes
        f["Id"] = base["Id"] + sfx if "Id" not in changes else changes["Id"]
        findings.append(f)
    event["detail"]["findings"] = findings
    return json.dumps(event).encode()


def scc(suffix: str) -> bytes:
    """A decoded SCC NotificationMessage (v1 open firewall) with its own finding name."""
    n = doc("scc/v1-open-firewall-active.json")
    n["finding"]["name"] += suffix
    return json.dumps(n).encode()


def defender(suffix: str) -> bytes:
    """A Defender for Cloud continuous-export alert (flat shape) with its own SystemAlertId."""
    a = doc("defender/flat-ssh-brute-force.json")
    a["SystemAlertId"] += suffix
    return json.dumps(a).encode()


def guardduty_with_ip(ip: Any) -> bytes:
    event = doc("guardduty/tor-api-call.json")
    event["detail"]["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"] = ip
    return json.dumps(event).encode()


def source_ids(body: bytes) -> set[str]:
    """What the real normalizer says the findings in ``body`` are (their source ids)."""
    from datetime import UTC, datetime

    from services.ingest.normalize import RawLocation

    r = real_normalize(body, raw=RawLocation("s3://x/y", "0" * 64), received_at=datetime.now(UTC))
    return {a["source_id"] for a in r.alerts}


def boto(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "ALERTLINE_AWS__ENDPOINT_URL": endpoint,
        "ALERTLINE_AWS__REGION": REGION,
    }


def make_topics(kafka: KafkaSettings) -> Topics:
    create_topics(kafka, ["alerts", "ingest.dlq", "schemas"])
    return Topics.for_prefix(kafka.topic_prefix)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def pipeline(
    kafka: KafkaSettings,
    s3: Any,
    bucket: str,
    *,
    normalize: NormalizeFn = real_normalize,
    txn_id: str | None = None,
    registry: CollectorRegistry | None = None,
    **kw: Any,
) -> tuple[Pipeline, Publisher]:
    publisher = Publisher(kafka, CODEC, txn_id or unique(kafka.topic_prefix + "ingest-test"))
    p = Pipeline(
        archive=S3Archive(s3, bucket),
        archive_prefix="raw/",
        normalize=normalize,
        publisher=publisher,
        codec=CODEC,
        topics=Topics.for_prefix(kafka.topic_prefix),
        metrics=IngestMetrics(registry or CollectorRegistry()),
        **kw,
    )
    return p, publisher


def fence(kafka: KafkaSettings, txn_id: str) -> None:
    """Take the transactional id over: the publisher holding it fails its next transaction,
    a real broker-side failure (PRODUCER_FENCED), then recovers by re-initialising."""
    p = Producer(kafka.client_config() | {"transactional.id": txn_id})
    p.init_transactions(30)


def alerts(kafka: KafkaSettings, timeout: float = 20, expect: int | None = None) -> list[dict[str, Any]]:
    msgs = read_all(kafka.bootstrap, Topics.for_prefix(kafka.topic_prefix).alerts, timeout=timeout, expect=expect)
    out = []
    for m in msgs:
        a = CODEC.decode("alert", m.value())
        assert m.key().decode() == a["identity"]
        out.append(a)
    return out


DeadLetters = list[tuple[dict[str, Any], dict[str, bytes]]]


def dead_letters(kafka: KafkaSettings, timeout: float = 20, expect: int | None = None) -> DeadLetters:
    msgs = read_all(kafka.bootstrap, Topics.for_prefix(kafka.topic_prefix).dlq, timeout=timeout, expect=expect)
    return [(CODEC.decode("dead_letter", m.value()), dict(m.headers() or [])) for m in msgs]


def versions(alerts_: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((a["identity"], a["revision"]) for a in alerts_)


def archived(s3: Any, bucket: str, body: bytes) -> list[str]:
    """Keys holding exactly ``body`` (content-addressed: the key ends with its sha256)."""
    sha = hashlib.sha256(body).hexdigest()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if o["Key"].endswith(sha + ".json")]
    for k in keys:
        obj = s3.get_object(Bucket=bucket, Key=k, ChecksumMode="ENABLED")
        assert obj["Body"].read() == body
        if "ChecksumSHA256" in obj:
            assert base64.b64decode(obj["ChecksumSHA256"]) == bytes.fromhex(sha)
    return keys


def spawn_service(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`alertline run ingest`, the production entry point, as its own process."""
    full = os.environ | {"PYTHONPATH": str(REPO)} | env
    return subprocess.Popen([sys.executable, "-m", "alertline.cli", "run", "ingest"], env=full, cwd=Path(REPO))


def spawn_ingest(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The ingest service with Event Hubs driven at the SDK boundary (ingest_proc.py)."""
    full = os.environ | {"PYTHONPATH": str(REPO)} | env
    return subprocess.Popen([sys.executable, "-m", "tests.integration.ingest.ingest_proc"], env=full, cwd=Path(REPO))
