"""The ticket service on the real broker against the GitHub fake, for integration tests."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create, topic_configs
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert
from alertline.topics import TOPICS, topic
from devtools.github_fake import FakeGitHub
from services.ticket.app import App, build
from services.ticket.settings import GitHubSettings, PolicySettings, TicketSettings

REPO = "acme/security-alerts"
TICKET_TOPICS = ("enriched", "tickets.events", "tickets.state", "tickets.actions", "ticket.dlq")
codec = SingleObjectCodec()


def create_topics(bootstrap: str, prefix: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, [
        NewTopic(topic(prefix, n), partitions, 1, config=topic_configs(TOPICS[n].compact, 3_600_000))
        for n in TICKET_TOPICS
    ])  # fmt: skip


def decision(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "action": "ticket", "priority": "P2", "reason": None, "repository": None, "assignees": [],
        "labels": ["team:payments"], "auto_close": True, "group_key": None, "matched": [], "ruleset": "rs1",
        "evaluated_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }  # fmt: skip
    d.update(over)
    return d


def enrichment(subject: str, fp: str, verdict: str = "info", summary: str = "looked") -> dict[str, Any]:
    return {
        "enricher": "ip_reputation", "subject": subject, "summary": summary, "verdict": verdict,
        "data_json": "{}", "fingerprint": fp, "changed_from": None, "artifacts": {},
        "observed_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }  # fmt: skip


def enriched(i: int = 0, *, kind: str = "alert", enrichments: list[dict[str, Any]] | None = None,
             dec: dict[str, Any] | None = None, **alert_over: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": kind,
        "alert": alert(i, **alert_over),
        "decision": dec or decision(),
        "enrichments": enrichments or [],
        "enriched_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    }


def revision(ea: dict[str, Any], rev: str, status: str = "active", minutes: int = 1) -> dict[str, Any]:
    """The same alert, a later version."""
    out = copy.deepcopy(ea)
    a = out["alert"]
    a["revision"] = rev
    a["status"] = status
    a["updated_at"] = datetime.fromtimestamp(a["updated_at"].timestamp() + 60 * minutes, UTC)
    return out


class Harness:
    def __init__(self, bootstrap: str, prefix: str, fake: FakeGitHub) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.fake = fake
        self.producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
        self.enriched_topic = topic(prefix, "enriched")
        self.events_topic = topic(prefix, "tickets.events")
        self.state_topic = topic(prefix, "tickets.state")
        self.dlq_topic = topic(prefix, "ticket.dlq")
        self.actions_topic = topic(prefix, "tickets.actions")

    def settings(self, **over: Any) -> TicketSettings:
        gh: dict[str, Any] = {"base_url": self.fake.url, "token": self.fake.bot.token, "default_repository": REPO}
        gh.update(over.pop("github", {}))
        pol: dict[str, Any] = {"storm_enabled": False}
        pol.update(over.pop("policy", {}))
        rt: dict[str, Any] = {"instance_id": "t1", "http_port": 0, "http_host": "127.0.0.1", "batch_size": 200,
                              "session_timeout_ms": 6000, "backoff_initial_s": 0.2}  # fmt: skip
        rt.update(over.pop("runtime", {}))
        kw: dict[str, Any] = {
            "kafka": KafkaSettings(bootstrap=self.bootstrap, topic_prefix=self.prefix, partitions=3,
                                   transaction_timeout_ms=10000),
            "runtime": RuntimeSettings(**rt),
            "github": GitHubSettings(**gh),
            "policy": PolicySettings(**pol),
            "reconcile_interval_s": 0,
            "tick_interval_s": 0.5,
            "adopt_margin_s": 60,
        }  # fmt: skip
        kw.update(over)
        return TicketSettings(**kw)

    @contextmanager
    def running(self, **over: Any) -> Iterator[App]:
        app = build(self.settings(**over), registry=CollectorRegistry())
        errors: list[BaseException] = []

        def run() -> None:
            try:
                app.run(install_signals=False)
            except BaseException as exc:
                errors.append(exc)

        th = threading.Thread(target=run, name="ticket-app", daemon=True)
        th.start()
        try:
            wait_for(lambda: app.runner.http is not None and app.runner._ready, 30, "service ready")
            yield app
        finally:
            app.stop()
            th.join(timeout=60)
            assert not th.is_alive(), "the service did not stop"
            assert not errors, errors

    def send(self, ea: dict[str, Any], key: str | None = None) -> None:
        self.producer.produce(self.enriched_topic, codec.encode("enrichment", ea), (key or ea["alert"]["identity"]).encode())
        self.producer.flush(10)

    def send_raw(self, topic_name: str, value: bytes, key: bytes) -> None:
        self.producer.produce(topic_name, value, key)
        self.producer.flush(10)

    def states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in read_all(self.bootstrap, self.state_topic, timeout=20):
            k = m.key().decode()
            if m.value() is None:
                out.pop(k, None)
            else:
                out[k] = codec.decode("ticket_state", m.value())
        return out

    def issues(self) -> list[Any]:
        return self.fake.issues(REPO)


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
