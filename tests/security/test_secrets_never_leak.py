"""Secrets never appear in logs, metrics or dead letters.

The four services run as real processes (`alertline run <service>`) with every secret they
read set to a recognisable canary: the Kafka SASL password and Schema Registry credentials
(librdkafka ignores SASL on the local PLAINTEXT listener, and no registry URL is set), the
Event Hubs connection string (pointing at a closed local port, so the Azure SDK fails, retries
and logs), the checkpoint-store connection string (set, but not reached: the consumer fails
before it needs the store), the AbuseIPDB key (sent to a local fake that checks it), the GitHub
token (the GitHub fake's bot token) and the webhook secret. They get good and bad input so
they work, fail, log and dead-letter; then their stderr (JSON logs, at DEBUG), a scrape of
every /metrics, every record (values and headers) on every topic of the run, and the issues
they filed are searched for each canary, also base64- and URL-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from alertline.kafka.admin import create_topics
from alertline.settings import KafkaSettings
from alertline.testing.kafka import read_all
from alertline.topics import topic
from devtools.github_fake import FakeGitHub
from tests.conftest import REPO

pytestmark = pytest.mark.kafka

FIXTURES = REPO / "tests" / "fixtures" / "deliveries"
REPOSITORY = "acme/security-alerts"
RUN = uuid.uuid4().hex[:8]
CANARIES = {
    "kafka.sasl_password": f"CANARYsasl{RUN}pw",
    "kafka.schema_registry_auth": f"CANARYregistry{RUN}:pw",
    "eventhubs.connection_string key": base64.b64encode(f"CANARYeventhubs{RUN}".encode()).decode(),
    "eventhubs.checkpoint_connection_string key": base64.b64encode(f"CANARYblob{RUN}key".encode()).decode(),
    "abuseipdb.api_key": f"CANARYabuse{RUN}key",
    "github.token": f"ghp_CANARY{RUN}token",
    "github.webhook_secret": f"CANARYhook{RUN}secret",
}
PUBLIC_IP = "185.220.101.7"  # looks up at the AbuseIPDB fake only; nothing leaves 127.0.0.1


def encodings(secret: str) -> dict[str, bytes]:
    """The ways a leaked secret could be written."""
    raw = secret.encode()
    return {
        "plain": raw,
        "url-encoded": urllib.parse.quote(secret, safe="").encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "json-escaped": json.dumps(secret)[1:-1].encode(),
    }


# ---------------------------------------------------------------------------- local fakes
class AbuseIpDbFake:
    """``GET /api/v2/check``: answers for PUBLIC_IP with the right key, 500 for anything else."""

    def __init__(self, key: str) -> None:
        self.requests: list[tuple[str, str | None]] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                ip = (q.get("ipAddress") or [""])[0]
                fake.requests.append((ip, self.headers.get("Key")))
                if self.headers.get("Key") != key:
                    status, body = 401, {"errors": [{"detail": "Authentication failed."}]}
                elif ip == PUBLIC_IP:
                    status, body = 200, {"data": {"ipAddress": ip, "abuseConfidenceScore": 100, "totalReports": 9,
                                                  "countryCode": "DE", "isp": "Tor exit", "isTor": True}}  # fmt: skip
                else:
                    status, body = 500, {"errors": [{"detail": "internal error"}]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


# ---------------------------------------------------------------------------- the services
@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def http_port(self) -> int | None:
        for rec in self.lines():
            if rec.get("msg", rec.get("message")) == "starting" and rec.get("http_port"):
                return int(rec["http_port"])
        return None


def _env(kafka: KafkaSettings, service: str, extra: dict[str, str]) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ALERTLINE_")}
    return (
        e
        | {
            "PYTHONPATH": str(REPO),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "ALERTLINE_KAFKA__BOOTSTRAP": kafka.bootstrap,
            "ALERTLINE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "ALERTLINE_KAFKA__PARTITIONS": "3",
            "ALERTLINE_KAFKA__TRANSACTION_TIMEOUT_MS": "15000",
            "ALERTLINE_KAFKA__SASL_PASSWORD": CANARIES["kafka.sasl_password"],
            "ALERTLINE_KAFKA__SCHEMA_REGISTRY_AUTH": CANARIES["kafka.schema_registry_auth"],
            "ALERTLINE_RUNTIME__HTTP_PORT": "0",
            "ALERTLINE_RUNTIME__HTTP_HOST": "127.0.0.1",
            "ALERTLINE_RUNTIME__INSTANCE_ID": f"{service}-secrets-{RUN}",
            "ALERTLINE_RUNTIME__SESSION_TIMEOUT_MS": "10000",
            "ALERTLINE_RUNTIME__BACKOFF_MAX_S": "2",
            "ALERTLINE_RUNTIME__LOG_LEVEL": "DEBUG",
        }
        | extra
    )


@pytest.fixture
def world(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    create_topics(kafka_settings)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    aws = "http://{}:{}".format(*moto.get_host_and_port())
    kw = {"endpoint_url": aws, "region_name": "us-east-1", "aws_access_key_id": "testing",
          "aws_secret_access_key": "testing"}  # fmt: skip
    s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
    for b in ("archive", "shots"):
        s3.create_bucket(Bucket=f"{b}-{RUN}")
    queue = sqs.create_queue(QueueName=f"secrets-{RUN}")["QueueUrl"]
    github = FakeGitHub(bot_token=CANARIES["github.token"], repos=(REPOSITORY,))
    github_url = github.start()
    abuse = AbuseIpDbFake(CANARIES["abuseipdb.api_key"])

    eh_key = CANARIES["eventhubs.connection_string key"]
    blob_key = CANARIES["eventhubs.checkpoint_connection_string key"]
    extra = {
        "ingest": {
            "ALERTLINE_ARCHIVE__BUCKET": f"archive-{RUN}",
            "ALERTLINE_ARCHIVE__ENDPOINT_URL": aws,
            "ALERTLINE_AWS__ENDPOINT_URL": aws,
            "ALERTLINE_INGEST__SQS__QUEUE_URLS": json.dumps([queue]),
            "ALERTLINE_INGEST__SQS__WAIT_S": "1",
            "ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE": "127.0.0.1",
            "ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME": "defender-export",
            "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL": f"http://127.0.0.1:{closed_port()}/checkpoints",
            "ALERTLINE_INGEST__EVENTHUBS__CONNECTION_STRING": f"Endpoint=sb://127.0.0.1:{closed_port()}/;"
            f"SharedAccessKeyName=listen;SharedAccessKey={eh_key};EntityPath=defender-export",
            "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONNECTION_STRING": "DefaultEndpointsProtocol=http;"
            f"AccountName=alertline;AccountKey={blob_key};BlobEndpoint=http://127.0.0.1:{closed_port()}/alertline;",
        },
        "evaluate": {
            "ALERTLINE_EVALUATE__RULES_DIR": str(REPO / "rules"),
            "ALERTLINE_EVALUATE__LOOKUPS_DIR": str(REPO / "rules" / "lookups"),
        },
        "enrich": {
            "ALERTLINE_PROBE__ALLOW": '["127.0.0.0/8"]',
            "ALERTLINE_PROBE__ONLY": '["127.0.0.0/8"]',
            "ALERTLINE_PROBE__CONNECT_TIMEOUT_S": "1",
            "ALERTLINE_ARTIFACTS__BUCKET": f"shots-{RUN}",
            "ALERTLINE_ARTIFACTS__ENDPOINT_URL": aws,
            "ALERTLINE_EC2__ENDPOINT_URL": aws,
            "ALERTLINE_REPUTATION__FEEDS": "{}",
            "ALERTLINE_ABUSEIPDB__API_KEY": CANARIES["abuseipdb.api_key"],
            "ALERTLINE_ABUSEIPDB__BASE_URL": abuse.url,
            "ALERTLINE_ABUSEIPDB__RATE_PER_S": "50",
        },
        "ticket": {
            "ALERTLINE_GITHUB__API_URL": github_url,
            "ALERTLINE_GITHUB__TOKEN": CANARIES["github.token"],
            "ALERTLINE_GITHUB__REPOSITORY": REPOSITORY,
            "ALERTLINE_GITHUB__REPOSITORY_OVERRIDE": REPOSITORY,  # rules route the samples' accounts elsewhere
            "ALERTLINE_GITHUB__WEBHOOK_SECRET": CANARIES["github.webhook_secret"],
            "ALERTLINE_TICKET__TICK_INTERVAL_S": "1",
            "ALERTLINE_TICKET__FLUSH_QUIET_S": "1",
            "ALERTLINE_TICKET__FLUSH_MAX_DELAY_S": "2",
            "ALERTLINE_TICKET__RECONCILE_INTERVAL_S": "5",
        },
    }
    services: dict[str, Service] = {}
    for name, env in extra.items():
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            p = subprocess.Popen(
                [sys.executable, "-m", "alertline.cli", "run", name],
                env=_env(kafka_settings, name, env), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        services[name] = Service(name, p, log)
    try:
        yield {"kafka": kafka_settings, "sqs": sqs, "queue": queue, "github": github, "abuse": abuse,
               "services": services}  # fmt: skip
    finally:
        for s in services.values():
            if s.popen.poll() is None:
                s.popen.send_signal(signal.SIGTERM)
        for s in services.values():
            try:
                s.popen.wait(30)
            except subprocess.TimeoutExpired:
                s.popen.kill()
                s.popen.wait(10)
        github.stop()
        abuse.server.shutdown()
        moto.stop()


def wait_for(cond: Callable[[], Any], timeout: float, what: str, services: dict[str, Service]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        for s in services.values():
            if s.popen.poll() is not None:
                pytest.fail(f"{s.name} exited with {s.popen.returncode}:\n{s.log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def fixture(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_bytes())


def webhook(port: int, body: bytes, delivery: str, secret: str | None) -> int:
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook/github", body, headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# ---------------------------------------------------------------------------- the test
def test_secrets_never_appear_in_logs_metrics_dead_letters_or_issues(world: dict[str, Any]) -> None:
    kafka: KafkaSettings = world["kafka"]
    services: dict[str, Service] = world["services"]
    github: FakeGitHub = world["github"]
    ports = wait_for(
        lambda: (p := {n: s.http_port() for n, s in services.items()}) and all(p.values()) and p,
        60, "every service to start", services,
    )  # fmt: skip

    # Good input: a GuardDuty finding whose caller is a public address (AbuseIPDB is asked),
    # and a Security Hub finding; bad input: unreadable deliveries and records for every stage.
    gd = fixture("guardduty/tor-api-call.json")
    gd["detail"]["id"] = f"secrets-{RUN}"
    gd["detail"]["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"] = PUBLIC_IP
    for body in (json.dumps(gd), json.dumps(fixture("securityhub/ec2-19-open-ports.json")), "{broken", "[]"):
        world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=body)
    garbage = Producer(kafka.client_config())
    for name in ("alerts", "evaluated", "enriched"):
        for value in (b"\x00garbage", b"\xc3\x01" + os.urandom(40), b"{}"):
            garbage.produce(topic(kafka.topic_prefix, name), value, key=b"k", headers={"x-test": b"bad input"})
    assert garbage.flush(10) == 0

    # The webhook: a bad signature, none at all, a good one and its replay.
    issue = wait_for(lambda: github.issues(REPOSITORY), 120, "an issue on GitHub", services)[0]
    hook_body = json.dumps({
        "action": "closed", "repository": {"full_name": REPOSITORY}, "sender": {"login": "octo-responder"},
        "issue": {"number": issue.number, "state": "closed", "state_reason": "completed", "body": issue.body,
                  "user": {"login": "alertline-bot"}, "labels": [], "updated_at": "2026-11-23T12:00:00Z"},
    }).encode()  # fmt: skip
    secret = CANARIES["github.webhook_secret"]
    assert webhook(ports["ticket"], hook_body, "d-1", "wrong") == 401
    assert webhook(ports["ticket"], hook_body, "d-2", None) == 401
    assert webhook(ports["ticket"], hook_body, "d-3", secret) == 202
    assert webhook(ports["ticket"], hook_body, "d-3", secret) == 409

    # Every stage dead-lettered its bad input (with a cause), and the secrets were really used.
    def dead(service: str) -> list[Any]:
        return read_all(kafka.bootstrap, topic(kafka.topic_prefix, f"{service}.dlq"), timeout=5)

    for service in ("ingest", "evaluate", "enrich", "ticket"):
        wait_for(lambda s=service: dead(s), 90, f"dead letters from {service}", services)  # type: ignore[misc]
    wait_for(lambda: any(ip == PUBLIC_IP for ip, _ in world["abuse"].requests), 60, "an AbuseIPDB lookup", services)
    assert {key for _, key in world["abuse"].requests} == {CANARIES["abuseipdb.api_key"]}
    wait_for(
        lambda: any(rec.get("logger", "").startswith("azure.eventhub") and "refused" in str(rec.get("msg"))
                    for rec in services["ingest"].lines()),
        30, "the Event Hubs client to fail on its closed port (and log it)", services,
    )  # fmt: skip

    metrics = {n: urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=10).read() for n, p in ports.items()}
    assert b"alertline_ticket_webhook_deliveries_total" in metrics["ticket"]

    # Stop (SIGTERM drains and logs too), then search everything.
    for s in services.values():
        s.popen.send_signal(signal.SIGTERM)
    for s in services.values():
        s.popen.wait(60)

    places: dict[str, bytes] = {f"{n} log": s.log.read_bytes() for n, s in services.items()}
    places |= {f"{n} /metrics": m for n, m in metrics.items()}
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for t in sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(kafka.topic_prefix)):
        for m in read_all(kafka.bootstrap, t, timeout=10, committed_only=False):
            headers = b"".join(k.encode() + b"=" + (v or b"") for k, v in (m.headers() or []))
            places[f"{t}@{m.partition()}:{m.offset()}"] = (m.key() or b"") + (m.value() or b"") + headers
    for i in github.issues(REPOSITORY):
        places[f"issue #{i.number}"] = "\n".join([i.title, i.body or "", *(c.body for c in i.comments)]).encode()

    assert sum(1 for k in places if "dlq" in k) >= 4, "dead letters were searched"
    assert all(len(places[f"{n} log"]) > 1000 for n in services), "every service logged"
    leaks = [
        f"{secret_name} ({how}) in {where}"
        for secret_name, value in CANARIES.items()
        for how, needle in encodings(value).items()
        for where, data in places.items()
        if needle in data
    ]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)
