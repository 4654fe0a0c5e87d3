"""The ticket service on the real broker against the GitHub fake, for integration tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create, topic_configs
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.testing.kafka import read_all
from alertline.topics import TOPICS, topic
from devtools.github_fake import FakeGitHub
from services.ticket.app import App, build
from services.ticket.settings import GitHubSettings, TicketOptions, TicketSettings
from tests.unit.ticket.factories import decision, enriched, enrichment, revision  # noqa: F401 - re-exported

REPO = "acme/security-alerts"
TICKET_TOPICS = ("enriched", "tickets.events", "tickets.state", "tickets.actions", "ticket.dlq")
codec = SingleObjectCodec()


def create_topics(bootstrap: str, prefix: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, [
        NewTopic(topic(prefix, n), partitions, 1, config=topic_configs(TOPICS[n].compact, 3_600_000))
        for n in TICKET_TOPICS
    ])  # fmt: skip


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
        gh: dict[str, Any] = {"api_url": self.fake.url, "token": self.fake.bot.token, "repository": REPO}
        gh.update(over.pop("github", {}))
        opts: dict[str, Any] = {"storm_enabled": False, "reconcile_interval_s": 0, "tick_interval_s": 0.5,
                                "adopt_margin_s": 60, "body_refresh_s": 0}  # fmt: skip
        opts.update(over.pop("ticket", {}))
        rt: dict[str, Any] = {"instance_id": "t1", "http_port": 0, "http_host": "127.0.0.1", "batch_size": 200,
                              "session_timeout_ms": 6000, "backoff_initial_s": 0.2}  # fmt: skip
        rt.update(over.pop("runtime", {}))
        assert not over, f"unknown settings {over}"
        return TicketSettings(
            kafka=KafkaSettings(bootstrap=self.bootstrap, topic_prefix=self.prefix, partitions=3,
                                transaction_timeout_ms=10000),
            runtime=RuntimeSettings(**rt),
            github=GitHubSettings(**gh),
            ticket=TicketOptions(**opts),
        )  # fmt: skip

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
        self.producer.produce(
            self.enriched_topic, codec.encode("enrichment", ea), (key or ea["alert"]["identity"]).encode()
        )
        self.producer.flush(10)

    def send_raw(self, topic_name: str, value: bytes, key: bytes) -> None:
        self.producer.produce(topic_name, value, key)
        self.producer.flush(10)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until the service committed everything sent so far on its inputs (the events
        topic is written transactionally: its last offset may be a commit marker)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.prefix}ticket"})
        try:

            def done() -> bool:
                for t, slack in ((self.enriched_topic, 0), (self.events_topic, 1)):
                    parts = [TopicPartition(t, p) for p in range(3)]
                    for tp in c.committed(parts, timeout=10):
                        _low, high = c.get_watermark_offsets(TopicPartition(t, tp.partition), timeout=10)
                        if max(tp.offset, 0) < high - slack:
                            return False
                return True

            wait_for(done, timeout, "the service to catch up")
        finally:
            c.close()

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
