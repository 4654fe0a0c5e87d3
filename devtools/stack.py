"""The whole local stack: real Kafka, moto's S3/SQS server, the GitHub and Pub/Sub fakes, a
file-backed Event Hub, a Tor-list feed, an exposed web page, and the four services as
separate processes. Used by the demo, the end-to-end tests and the chaos test.

Everything listens on 127.0.0.1; the prober is confined to 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alertline.kafka.admin import create_topics
from alertline.kafka.local import LocalKafka, cache_dir
from alertline.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("ingest", "evaluate", "enrich", "ticket")
REPOSITORY = "acme/security-alerts"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

EXPOSED_PAGE = b"""<!doctype html><html><head><title>Acme admin console</title></head>
<body style="font-family:sans-serif;background:#fff3e0"><h1 style="color:#b71c1c">Acme admin console</h1>
<p>Login: <input value="admin"> Password: <input type="password" value="hunter2"></p>
<p>This page is exposed to the internet (demo).</p></body></html>"""


def _serve(handler: Callable[[str], tuple[int, str, bytes]]) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, ctype, body = handler(self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Server", "acme-admin/1.0")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@dataclass
class Proc:
    """One service process with its log file; can be killed and restarted."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        if not self.alive():
            return self.popen.returncode if self.popen else None
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10)


@dataclass
class Stack:
    workdir: Path
    bootstrap: str | None = None
    prefix: str = "alertline."
    partitions: int = 3
    kafka_port: int = 19092
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    github_token: str | None = None  # with github_repository: file into real GitHub instead of the fake
    github_repository: str | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self._servers: list[Any] = []
        self.kafka: LocalKafka | None = None
        # Unique names: moto servers started in one process share one backend.
        tag = uuid.uuid4().hex[:8]
        self.bucket = f"alertline-archive-{tag}"
        self.screenshots = f"alertline-screenshots-{tag}"
        self.queue_name = f"alertline-findings-{tag}"

    # ------------------------------------------------------------------ infrastructure
    def start_infrastructure(self, progress: Callable[[str], None] = lambda s: None) -> None:
        if self.bootstrap is None:
            progress("starting Kafka (KRaft, 127.0.0.1) ...")
            self.kafka = LocalKafka(cache_dir() / f"kafka-{self.kafka_port}", self.kafka_port, self.kafka_port + 1)
            self._own_kafka = not (self.kafka.pid() and self.kafka.accepting())
            self.kafka.up()
            self.bootstrap = self.kafka.bootstrap
        progress(f"Kafka at {self.bootstrap}; creating topics with prefix {self.prefix!r}")
        create_topics(KafkaSettings(bootstrap=self.bootstrap, topic_prefix=self.prefix, partitions=self.partitions))

        progress("starting moto (S3, SQS, EC2, STS) ...")
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would drown the demo

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        self.aws_endpoint = f"http://127.0.0.1:{self.moto._server.server_port}"  # type: ignore[attr-defined]
        self._servers.append(self.moto)
        import boto3

        kw = {"endpoint_url": self.aws_endpoint, "region_name": "us-east-1",
              "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
        self.s3 = boto3.client("s3", **kw)
        self.sqs = boto3.client("sqs", **kw)
        for b in (self.bucket, self.screenshots):
            self.s3.create_bucket(Bucket=b)
        self.queue_url = self.sqs.create_queue(QueueName=self.queue_name)["QueueUrl"]

        progress("starting the GitHub fake and the Pub/Sub fake ...")
        from devtools.github_fake import FakeGitHub

        self.github = FakeGitHub()
        self.github.add_repo(REPOSITORY)
        self.github_url = self.github.start()
        self._servers.append(self.github)
        from devtools.pubsub_fake import PubSubFake

        self.pubsub = PubSubFake()
        self.pubsub_host = self.pubsub.start()
        self.pubsub_topic = "projects/acme-sec/topics/scc-findings"
        self.pubsub_sub = "projects/acme-sec/subscriptions/alertline"
        self.pubsub.create_topic(self.pubsub_topic)
        self.pubsub.create_subscription(self.pubsub_sub, self.pubsub_topic, ack_deadline_seconds=10)
        self._servers.append(self.pubsub)

        from devtools.eventhubs import FakeEventHub

        self.eventhub_dir = self.workdir / "eventhub"
        self.eventhub = FakeEventHub(self.eventhub_dir)

        from devtools import samples

        self.tor_list = f"{samples.TOR_IP}\n"
        feed = _serve(lambda path: (200, "text/plain", self.tor_list.encode()))
        self.feed_url = f"http://127.0.0.1:{feed.server_address[1]}/torbulkexitlist"
        web = _serve(lambda path: (200, "text/html; charset=utf-8", EXPOSED_PAGE))
        self.web_port = web.server_address[1]
        self._servers += [feed, web]

    # ------------------------------------------------------------------ services
    def env(self, service: str) -> dict[str, str]:
        assert self.bootstrap
        e = {k: v for k, v in os.environ.items() if not k.startswith("ALERTLINE_")}
        e |= AWS_ENV | {
            "PYTHONPATH": str(REPO),
            "ALERTLINE_KAFKA__BOOTSTRAP": self.bootstrap,
            "ALERTLINE_KAFKA__TOPIC_PREFIX": self.prefix,
            "ALERTLINE_KAFKA__PARTITIONS": str(self.partitions),
            "ALERTLINE_KAFKA__TRANSACTION_TIMEOUT_MS": "15000",
            "ALERTLINE_RUNTIME__HTTP_PORT": "0",
            "ALERTLINE_RUNTIME__INSTANCE_ID": f"{service}-0",
            "ALERTLINE_RUNTIME__SESSION_TIMEOUT_MS": "10000",
            "ALERTLINE_RUNTIME__BACKOFF_MAX_S": "5",
            "ALERTLINE_RUNTIME__LOG_LEVEL": "INFO",
        }
        if service == "ingest":
            e |= {
                "ALERTLINE_ARCHIVE__BUCKET": self.bucket,
                "ALERTLINE_ARCHIVE__ENDPOINT_URL": self.aws_endpoint,
                "ALERTLINE_AWS__ENDPOINT_URL": self.aws_endpoint,
                "ALERTLINE_INGEST__SQS__QUEUE_URLS": json.dumps([self.queue_url]),
                "ALERTLINE_INGEST__SQS__WAIT_S": "1",
                "ALERTLINE_INGEST__PUBSUB__SUBSCRIPTIONS": json.dumps([self.pubsub_sub]),
                "PUBSUB_EMULATOR_HOST": self.pubsub_host,
                "ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE": "alertline-demo.servicebus.windows.net",
                "ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME": "defender-export",
                # Unused by the file-backed hub (its checkpoints are ALERTLINE_DEMO_CHECKPOINTS),
                # required by the settings.
                "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL": "https://demo.blob.core.windows.net/checkpoints",
                "ALERTLINE_DEMO_EVENTHUB_DIR": str(self.eventhub_dir),
                "ALERTLINE_DEMO_CHECKPOINTS": str(self.workdir / "eventhub-checkpoints.json"),
            }
        elif service == "evaluate":
            e |= {
                "ALERTLINE_EVALUATE__RULES_DIR": str(REPO / "rules"),
                "ALERTLINE_EVALUATE__LOOKUPS_DIR": str(REPO / "rules" / "lookups"),
            }
        elif service == "enrich":
            e |= {
                "ALERTLINE_PROBE__ALLOW": '["127.0.0.0/8"]',
                "ALERTLINE_PROBE__ONLY": '["127.0.0.0/8"]',
                "ALERTLINE_PROBE__CONNECT_TIMEOUT_S": "1",
                "ALERTLINE_ARTIFACTS__BUCKET": self.screenshots,
                "ALERTLINE_ARTIFACTS__ENDPOINT_URL": self.aws_endpoint,
                "ALERTLINE_EC2__ENDPOINT_URL": self.aws_endpoint,
                "ALERTLINE_REPUTATION__FEEDS": json.dumps(
                    {"tor-exit": {"url": self.feed_url, "kind": "tor", "verdict": "suspicious"}}
                ),
                "ALERTLINE_RECHECK__TICK_INTERVAL_S": "5",
            }
        elif service == "ticket":
            real = self.github_token and self.github_repository
            e |= {
                "ALERTLINE_GITHUB__API_URL": "https://api.github.com" if real else self.github_url,
                "ALERTLINE_GITHUB__TOKEN": self.github_token if real else self.github.bot.token,  # type: ignore[dict-item]
                "ALERTLINE_GITHUB__REPOSITORY": self.github_repository if real else REPOSITORY,  # type: ignore[dict-item]
                "ALERTLINE_GITHUB__REPOSITORY_OVERRIDE": self.github_repository if real else REPOSITORY,  # type: ignore[dict-item]
                "ALERTLINE_TICKET__TICK_INTERVAL_S": "2",
                "ALERTLINE_TICKET__RECONCILE_INTERVAL_S": "5",
                "ALERTLINE_TICKET__FLUSH_QUIET_S": "2",
                "ALERTLINE_TICKET__FLUSH_MAX_DELAY_S": "5",
            }
        return e | self.service_env.get(service, {})

    def argv(self, service: str) -> list[str]:
        if service == "ingest":
            return [sys.executable, "-m", "devtools.ingest_local"]
        return [sys.executable, "-m", "alertline.cli", "run", service]

    def start_services(self, progress: Callable[[str], None] = lambda s: None) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        for s in SERVICES:
            p = Proc(s, self.argv(s), self.env(s), logs / f"{s}.log")
            p.start()
            self.procs[s] = p
            progress(f"started {s} (pid {p.popen.pid if p.popen else '?'}, log {p.log})")

    def restart(self, service: str, kill: bool = True) -> None:
        p = self.procs[service]
        p.kill() if kill else p.stop()
        p.start()

    # ------------------------------------------------------------------ feeding
    def send_sqs(self, event: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(event))

    def publish_pubsub(self, notification: dict[str, Any]) -> None:
        self.pubsub.publish(self.pubsub_topic, json.dumps(notification).encode())

    def send_eventhub(self, alert: dict[str, Any] | list[Any]) -> None:
        self.eventhub.send(json.dumps(alert).encode(), partition_id="0")

    # ------------------------------------------------------------------ looking
    def issues(self) -> list[Any]:
        if self.github_token and self.github_repository:
            return _real_issues(self.github_token, self.github_repository)
        return list(self.github.issues(REPOSITORY))

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            for p in self.procs.values():
                if not p.alive() and p.popen is not None and p.popen.returncode not in (None, -9):
                    tail = p.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{tail}")
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def lag(self, service: str) -> int:
        """Records on the service's input topic its consumer group has not committed yet."""
        from confluent_kafka import Consumer, TopicPartition

        from alertline.topics import SERVICE_INPUTS, group, topic

        assert self.bootstrap
        t = topic(self.prefix, SERVICE_INPUTS[service])
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group(self.prefix, service)})
        try:
            parts = [TopicPartition(t, p) for p in range(self.partitions)]
            committed = {tp.partition: max(tp.offset, 0) for tp in c.committed(parts, timeout=10)}
            return sum(c.get_watermark_offsets(tp, timeout=10)[1] - committed[tp.partition] for tp in parts)
        finally:
            c.close()

    def settled(self) -> bool:
        """Nothing is moving: every consuming service has caught up, or lags and GitHub have
        not changed for 8 s (a partition that holds only aborted transactions after the last
        commit keeps a lag that no consumer will ever commit past)."""
        lags = tuple(self.lag(s) for s in ("evaluate", "enrich", "ticket"))
        snapshot = (lags, tuple((i.number, i.state, len(i.comments)) for i in self.issues()))
        now = time.monotonic()
        if snapshot != getattr(self, "_last_snapshot", None):
            self._last_snapshot, self._still_since = snapshot, now
        caught_up = all(lag <= self.partitions for lag in lags)
        return caught_up or now - self._still_since >= 8

    def wipe_state(self, *names: str) -> None:
        """Delete and recreate state topics (the services owning them must be stopped)."""
        from confluent_kafka.admin import AdminClient

        from alertline.topics import topic

        assert self.bootstrap
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        full = [topic(self.prefix, n) for n in names]
        for f in admin.delete_topics(full, operation_timeout=30).values():
            f.result()
        deadline = time.monotonic() + 30
        while any(t in admin.list_topics(timeout=10).topics for t in full) and time.monotonic() < deadline:
            time.sleep(0.5)
        create_topics(KafkaSettings(bootstrap=self.bootstrap, topic_prefix=self.prefix, partitions=self.partitions),
                      names=names)  # fmt: skip

    def stop(self) -> dict[str, int | None]:
        codes = {name: p.stop() for name, p in self.procs.items()}
        for srv in reversed(self._servers):
            try:
                if hasattr(srv, "shutdown"):
                    srv.shutdown()
                else:
                    srv.stop()
            except Exception:  # noqa: BLE001, S110 - best-effort teardown of local servers
                pass
        if self.kafka is not None and getattr(self, "_own_kafka", False):
            self.kafka.down()
        return codes


@dataclass
class _Comment:
    body: str


@dataclass
class _Issue:
    number: int
    title: str
    body: str
    state: str
    state_reason: str | None
    labels: list[str]
    comments: list[_Comment]


def _real_issues(token: str, repository: str) -> list[Any]:
    """The demo's view of a real repository: Alertline's issues (they carry the marker)."""
    from github import Auth, Github

    gh = Github(auth=Auth.Token(token))
    out: list[Any] = []
    for i in gh.get_repo(repository).get_issues(state="all"):
        if i.pull_request is not None or "alertline:v1" not in (i.body or ""):
            continue
        comments = [_Comment(c.body) for c in i.get_comments()] if i.comments else []
        out.append(
            _Issue(i.number, i.title, i.body or "", i.state, i.state_reason, [lb.name for lb in i.labels], comments)
        )
    return out


def new_prefix() -> str:
    return f"demo{uuid.uuid4().hex[:6]}."
