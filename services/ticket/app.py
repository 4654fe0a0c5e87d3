"""Composition root of the ticket service (``alertline run ticket``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import Consumer, KafkaException
from github import Github
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
from services.ticket.adapters.github import GitHubMetrics, GitHubTracker, app_login, discover_login, make_github
from services.ticket.adapters.shadow import ShadowTracker
from services.ticket.humans import Reconciler, Webhook
from services.ticket.limiter import WriteLimiter
from services.ticket.ports import Tracker
from services.ticket.service import TicketService, Topics
from services.ticket.settings import GitHubSettings, TicketSettings

log = logging.getLogger("alertline.ticket")
SERVICE = "ticket"


def topics_of(settings: TicketSettings) -> Topics:
    p = settings.kafka.topic_prefix
    return Topics(topic(p, "enriched"), topic(p, "tickets.events"), topic(p, "tickets.actions"))


def codec_of(settings: TicketSettings) -> Codec:
    k = settings.kafka
    auth = k.schema_registry_auth.get_secret_value() if k.schema_registry_auth else None
    return make_codec(k.schema_registry_url, auth)


def github_client(gs: GitHubSettings) -> Github:
    """A client as the App's installation when an App is configured, else with the token."""
    gs.check_credentials()
    if gs.uses_app():
        assert gs.app_id is not None and gs.installation_id is not None
        key = gs.private_key_value()
        assert key is not None
        return make_github(gs.api_url, timeout=gs.timeout_s, per_page=gs.per_page,
                           app=(gs.app_id, key, gs.installation_id))  # fmt: skip
    return make_github(gs.api_url, gs.token_value(), gs.timeout_s, gs.per_page)


def login_of(gs: GitHubSettings, gh: Github) -> str:
    """The login our issues are created by (``<slug>[bot]`` for an App); may raise Transient."""
    if gs.login:
        return gs.login
    if gs.uses_app():
        assert gs.app_id is not None
        key = gs.private_key_value()
        assert key is not None
        return app_login(gs.api_url, gs.app_id, key, gs.timeout_s)
    return discover_login(gh)


def wait_for_login(gs: GitHubSettings, gh: Github, stop: threading.Event) -> str:
    """Our login, asked from GitHub until it answers (we cannot tell our issues without it)."""
    while True:
        try:
            return login_of(gs, gh)
        except Transient as exc:
            log.warning("waiting for GitHub", extra={"error": str(exc)})
            if stop.wait(exc.retry_after or 10):
                raise ConfigError("stopped before GitHub answered") from exc


def limiter_of(gs: GitHubSettings) -> WriteLimiter:
    return WriteLimiter([(gs.writes_per_minute, gs.minute_window_s), (gs.writes_per_hour, gs.hour_window_s)])


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


def build(settings: TicketSettings, registry: CollectorRegistry | None = None, clock: Clock = utcnow) -> App:
    registry = registry or CollectorRegistry()
    gs, opts = settings.github, settings.ticket
    if not (gs.repository or gs.repository_override):
        raise ConfigError("set ALERTLINE_GITHUB__REPOSITORY (owner/name)")
    t = topics_of(settings)
    codec = codec_of(settings)
    prefix = settings.kafka.topic_prefix
    policy = opts.to_policy(gs.repository or gs.repository_override or "", gs.repository_override)
    stop = threading.Event()
    tracker: Tracker
    reconcile_tracker: GitHubTracker | None = None
    login = ""
    if opts.shadow:
        tracker = ShadowTracker(clock)
        log.warning("shadow mode: intended GitHub actions go to %s and the log", t.actions)
    else:
        gh = github_client(gs)
        login = wait_for_login(gs, gh, stop)
        limiter = limiter_of(gs)
        metrics = GitHubMetrics(registry)
        margin = timedelta(seconds=opts.adopt_margin_s)
        tracker = GitHubTracker(gh, login, limiter, metrics, clock=clock, overlap=min(margin, timedelta(minutes=2)))
        # The reconcile thread gets its own client (PyGithub objects are not shared across threads).
        reconcile_tracker = GitHubTracker(github_client(gs), login, limiter, metrics, clock=clock)
    service = TicketService(policy, tracker, codec, t, registry, margin=timedelta(seconds=opts.adopt_margin_s))
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
        tick_interval_s=opts.tick_interval_s,
    )
    publisher = LockedPublisher(
        Publisher(settings.kafka, codec, transactional_id=f"{stage.group_id}-{settings.runtime.instance_id}-events")
    )
    routes: dict[tuple[str, str], Route] = {}
    if gs.webhook_secret is not None and not opts.shadow:
        routes[("POST", opts.webhook_path)] = Webhook(
            gs.webhook_secret.get_secret_value().encode(), login, t.events, publisher, registry
        )
    elif not opts.shadow:
        log.warning("no webhook secret: human changes reach the state through the reconcile only")
    reconciler = None
    if reconcile_tracker is not None and opts.reconcile_interval_s > 0:
        reconciler = Reconciler(reconcile_tracker, gs.all_repositories(), t.events, publisher,
                                opts.reconcile_interval_s, opts.reconcile_lookback_s, clock=clock)  # fmt: skip
    runner = Runner(stage, settings.kafka, settings.runtime, codec, registry=registry, clock=clock, routes=routes)
    return App(runner, service, publisher, reconciler, settings)


def main() -> None:
    settings = TicketSettings()
    logs.configure(SERVICE, settings.runtime.log_level)
    build(settings).run()


if __name__ == "__main__":
    main()
