"""Composition root of the ticket service (``alertline run ticket``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import Consumer, KafkaException
from prometheus_client import CollectorRegistry

from alertline import logs
from alertline.avro import Codec, make_codec
from alertline.clock import Clock, utcnow
from alertline.errors import ConfigError, Transient
from alertline.http import Route
from alertline.kafka.publisher import Publisher
from alertline.kafka.runtime import Runner, Stage
from alertline.stage import Output
from alertline.topics import group, topic
from services.ticket.adapters.github import GitHubMetrics, GitHubTracker, discover_login, make_github
from services.ticket.adapters.shadow import ShadowTracker
from services.ticket.humans import Reconciler, Webhook
from services.ticket.limiter import WriteLimiter
from services.ticket.ports import Tracker
from services.ticket.service import TicketService, Topics
from services.ticket.settings import TicketSettings

log = logging.getLogger("alertline.ticket")
SERVICE = "ticket"


def topics_of(settings: TicketSettings) -> Topics:
    p = settings.kafka.topic_prefix
    return Topics(topic(p, "enriched"), topic(p, "tickets.events"), topic(p, "tickets.actions"))


def codec_of(settings: TicketSettings) -> Codec:
    k = settings.kafka
    auth = k.schema_registry_auth.get_secret_value() if k.schema_registry_auth else None
    return make_codec(k.schema_registry_url, auth)


def github_login(settings: TicketSettings, gh: object, stop: threading.Event) -> str:
    """Our login, asked from GitHub until it answers (the service cannot tell its issues without it)."""
    from github import Github

    if settings.github.login:
        return settings.github.login
    assert isinstance(gh, Github)
    while True:
        try:
            return discover_login(gh)
        except Transient as exc:
            log.warning("waiting for GitHub", extra={"error": str(exc)})
            if stop.wait(exc.retry_after or 10):
                raise ConfigError("stopped before GitHub answered") from exc


class LockedPublisher:
    """One transactional publisher shared by webhook threads and the reconcile thread."""

    def __init__(self, publisher: Publisher) -> None:
        self._p = publisher
        self._lock = threading.Lock()

    def __call__(self, outputs: Iterable[Output]) -> int:
        with self._lock:
            return self._p.publish(list(outputs))

    def close(self) -> None:
        with self._lock:
            self._p.close()


@dataclass
class App:
    runner: Runner
    service: TicketService
    publisher: LockedPublisher
    reconciler: Reconciler | None
    settings: TicketSettings

    def check_topics(self) -> None:
        """The runtime restores state by partition number: inputs and state must be co-partitioned."""
        t = topics_of(self.settings)
        state = topic(self.settings.kafka.topic_prefix, "tickets.state")
        c = Consumer(self.settings.kafka.client_config() | {"group.id": f"{self.runner.stage.group_id}-check"})
        try:
            md = c.list_topics(timeout=15)
        except KafkaException as exc:
            raise ConfigError(f"cannot reach Kafka: {exc}") from exc
        finally:
            c.close()
        counts = {}
        for name in (t.enriched, t.events, state):
            tm = md.topics.get(name)
            if tm is None or tm.error is not None:
                raise ConfigError(f"topic {name} is missing; run `alertline topics create`")
            counts[name] = len(tm.partitions)
        if len(set(counts.values())) != 1:
            raise ConfigError(f"ticket topics must have equal partition counts (co-partitioned): {counts}")

    def run(self, install_signals: bool = True) -> None:
        self.check_topics()
        if self.reconciler is not None:
            self.reconciler.start()
        try:
            self.runner.run(install_signals=install_signals)
        finally:
            if self.reconciler is not None:
                self.reconciler.stop()
            self.publisher.close()

    def stop(self) -> None:
        self.runner.stop()


def build(
    settings: TicketSettings,
    registry: CollectorRegistry | None = None,
    clock: Clock = utcnow,
) -> App:
    registry = registry or CollectorRegistry()
    gs = settings.github
    if not gs.default_repository:
        raise ConfigError("set ALERTLINE_GITHUB__DEFAULT_REPOSITORY (owner/name)")
    t = topics_of(settings)
    codec = codec_of(settings)
    prefix = settings.kafka.topic_prefix
    policy = settings.policy.to_policy(gs.default_repository)
    stop = threading.Event()
    tracker: Tracker
    reconcile_tracker: GitHubTracker | None = None
    login = ""
    if settings.shadow:
        tracker = ShadowTracker(clock)
        log.warning("shadow mode: intended GitHub actions go to %s and the log", t.actions)
    else:
        token = gs.token_value()
        gh = make_github(gs.base_url, token, gs.timeout_s, gs.per_page)
        login = github_login(settings, gh, stop)
        limiter = WriteLimiter([(gs.writes_per_minute, gs.minute_window_s), (gs.writes_per_hour, gs.hour_window_s)])
        metrics = GitHubMetrics(registry)
        margin = timedelta(seconds=settings.adopt_margin_s)
        tracker = GitHubTracker(gh, login, limiter, metrics, clock=clock, overlap=min(margin, timedelta(minutes=2)))
        # The reconcile thread gets its own client (PyGithub objects are not shared across threads).
        reconcile_tracker = GitHubTracker(make_github(gs.base_url, token, gs.timeout_s, gs.per_page), login, limiter,
                                          metrics, clock=clock)  # fmt: skip
    service = TicketService(policy, tracker, codec, t, registry, margin=timedelta(seconds=settings.adopt_margin_s))
    stage = Stage(
        service=SERVICE,
        group_id=group(prefix, SERVICE),
        inputs=[t.enriched, t.events],
        input_schema=None,  # two contracts: the handler decodes by topic
        handler=service.handle,
        dlq_topic=topic(prefix, "ticket.dlq"),
        state_topic=topic(prefix, "tickets.state"),
        state_schema="ticket_state",
        tick=service.tick,
        tick_interval_s=settings.tick_interval_s,
    )
    publisher = LockedPublisher(
        Publisher(settings.kafka, codec, transactional_id=f"{stage.group_id}-{settings.runtime.instance_id}-events")
    )
    routes: dict[tuple[str, str], Route] = {}
    if settings.webhook_secret is not None and not settings.shadow:
        routes[("POST", settings.webhook_path)] = Webhook(
            settings.webhook_secret.get_secret_value().encode(), login, t.events, publisher, registry
        )
    elif not settings.shadow:
        log.warning("no webhook secret: human changes reach the state through the reconcile only")
    reconciler = None
    if reconcile_tracker is not None and settings.reconcile_interval_s > 0:
        reconciler = Reconciler(reconcile_tracker, gs.all_repositories(), t.events, publisher,
                                settings.reconcile_interval_s, settings.reconcile_lookback_s, clock=clock)  # fmt: skip
    runner = Runner(stage, settings.kafka, settings.runtime, codec, registry=registry, clock=clock, routes=routes)
    return App(runner, service, publisher, reconciler, settings)


def main() -> None:
    settings = TicketSettings()
    logs.configure(SERVICE, settings.runtime.log_level)
    build(settings).run()


if __name__ == "__main__":
    main()
