"""The ingest service's composition root: ``alertline run ingest``.

Wires settings -> clients -> pipelines -> sources, serves /metrics /healthz /readyz, and on
SIGTERM drains: every source stops taking new deliveries, finishes (and acknowledges) the
ones in hand, then the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from alertline import logs
from alertline.avro import Codec
from alertline.clock import Clock, utcnow
from alertline.errors import ConfigError
from alertline.http import Health, HttpServer
from alertline.kafka.publisher import Publisher
from services.ingest import aws
from services.ingest.archive import S3Archive
from services.ingest.pipeline import IngestMetrics, NormalizeFn, Pipeline, Topics
from services.ingest.settings import IngestSettings
from services.ingest.sources.backoff import Backoff
from services.ingest.sources.eventhubs import EventHubsHandler, Receiver, consumer_client_receiver
from services.ingest.sources.pubsub import PubSubSource
from services.ingest.sources.sqs import S3Objects, SqsSource

log = logging.getLogger("alertline.ingest")

SourceRun = Callable[[threading.Event], None]


@dataclass
class Wiring:
    """Everything built from settings; the parts a source needs."""

    settings: IngestSettings
    codec: Codec
    normalize: NormalizeFn
    registry: CollectorRegistry
    metrics: IngestMetrics
    clock: Clock
    archive: S3Archive
    publishers: list[Publisher] = field(default_factory=list)

    def pipeline(self, tag: str) -> Pipeline:
        s = self.settings
        # One transactional producer per worker: a transaction is single-threaded, and a stable
        # id per (instance, worker) lets a restarted replica fence its predecessor.
        publisher = Publisher(s.kafka, self.codec, f"{s.kafka.topic_prefix}ingest-{s.runtime.instance_id}-{tag}")
        self.publishers.append(publisher)
        return Pipeline(
            archive=self.archive,
            archive_prefix=s.archive.prefix,
            normalize=self.normalize,
            publisher=publisher,
            codec=self.codec,
            topics=Topics.for_prefix(s.kafka.topic_prefix),
            metrics=self.metrics,
            clock=self.clock,
            max_record_bytes=s.max_record_bytes,
            dead_letter_budget_bytes=s.dead_letter_budget_bytes,
            crash_after_publish=s.test_crash_after_publish,
        )

    def close(self) -> None:
        for p in self.publishers:
            p.close()


def wire(
    settings: IngestSettings,
    *,
    normalize: NormalizeFn | None = None,
    codec: Codec | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = utcnow,
) -> Wiring:
    if not settings.archive.bucket:
        raise ConfigError("ALERTLINE_ARCHIVE__BUCKET is required: nothing is published before it is archived")
    if normalize is None:
        from services.ingest.normalize import normalize as real_normalize

        normalize = real_normalize
    if codec is None:
        from alertline.kafka.schemas import codec_for

        codec = codec_for(settings.kafka)
    registry = registry or CollectorRegistry()
    s3 = aws.client("s3", settings.aws, settings.archive.region)
    return Wiring(
        settings, codec, normalize, registry, IngestMetrics(registry), clock, S3Archive(s3, settings.archive.bucket)
    )


@dataclass
class IngestApp:
    wiring: Wiring
    sources: dict[str, SourceRun]
    stop: threading.Event = field(default_factory=threading.Event)
    http_port: int | None = None
    _threads: dict[str, threading.Thread] = field(default_factory=dict)
    _failed: list[str] = field(default_factory=list)

    def _live(self) -> bool:
        if self._failed:
            return False
        return self.stop.is_set() or all(t.is_alive() for t in self._threads.values())

    def _run_source(self, name: str, run: SourceRun) -> None:
        try:
            run(self.stop)
        except Exception:
            # A bug, not bad input (the pipeline contains that): stop everything, exit non-zero,
            # and let the orchestrator restart us; unacknowledged deliveries come again.
            log.exception("source failed; shutting down", extra={"source": name})
            self._failed.append(name)
            self.stop.set()

    def run(self, install_signals: bool = True) -> int:
        s = self.wiring.settings
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        http = HttpServer(
            s.runtime.http_host, s.runtime.http_port, self.wiring.registry,
            Health(live=self._live, ready=lambda: bool(self._threads) and not self.stop.is_set()),
        )  # fmt: skip
        self.http_port = http.start()
        log.info("starting", extra={"sources": ",".join(self.sources), "http_port": self.http_port})
        for name, run in self.sources.items():
            t = threading.Thread(target=self._run_source, args=(name, run), name=f"source-{name}")
            self._threads[name] = t
            t.start()
        if not self.sources:
            log.warning("no source enabled (ALERTLINE_SQS__ENABLED, ..._PUBSUB__ENABLED, ..._EVENTHUBS__ENABLED)")
        try:
            while not self.stop.wait(0.5):
                pass
            log.info("stopping: draining in-flight deliveries")
            deadline = time.monotonic() + 120
            for t in self._threads.values():
                t.join(max(0.0, deadline - time.monotonic()))
        finally:
            self.wiring.close()
            http.stop()
        log.info("stopped", extra={"failed_sources": ",".join(self._failed)})
        return 1 if self._failed else 0


def build(
    settings: IngestSettings,
    *,
    normalize: NormalizeFn | None = None,
    codec: Codec | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = utcnow,
    eventhubs_receiver: Receiver | None = None,
    pubsub_subscriber: Any = None,
) -> IngestApp:
    """The composition root. Tests pass a stand-in normalizer, a codec, or the Event Hubs
    receiver that drives the handler at the SDK boundary; production passes nothing."""
    w = wire(settings, normalize=normalize, codec=codec, registry=registry, clock=clock)
    rt = settings.runtime
    stop = threading.Event()
    sources: dict[str, SourceRun] = {}
    if settings.sqs.enabled:
        sqs = SqsSource(
            aws.client("sqs", settings.aws),
            settings.sqs.queue_url,
            w.pipeline("sqs"),
            S3Objects(aws.client("s3", settings.aws), settings.sqs.max_object_bytes),
            w.metrics,
            wait_s=settings.sqs.wait_s,
            max_messages=settings.sqs.max_messages,
            visibility_timeout_s=settings.sqs.visibility_timeout_s,
            clock=clock,
            backoff=Backoff(rt.backoff_initial_s, rt.backoff_max_s),
        )
        sources["sqs"] = sqs.run
    if settings.pubsub.enabled:
        if pubsub_subscriber is None:
            from google.cloud import pubsub_v1

            # PUBSUB_EMULATOR_HOST (the library's own switch) points it at a local server.
            pubsub_subscriber = pubsub_v1.SubscriberClient()
        ps = PubSubSource(
            pubsub_subscriber,
            settings.pubsub.subscription,
            [w.pipeline(f"pubsub-{n}") for n in range(settings.pubsub.concurrency)],
            w.metrics,
            max_messages=settings.pubsub.max_messages,
            clock=clock,
            backoff_initial_s=rt.backoff_initial_s,
            backoff_max_s=rt.backoff_max_s,
        )
        sources["pubsub"] = ps.run
    if settings.eventhubs.enabled:
        receiver = eventhubs_receiver or _production_eventhubs(settings)
        handler = EventHubsHandler(
            w.pipeline("eventhubs"), w.metrics, stop, clock=clock,
            backoff=Backoff(rt.backoff_initial_s, rt.backoff_max_s),
        )  # fmt: skip
        sources["eventhubs"] = lambda stop_: receiver(handler, stop_)
    return IngestApp(w, sources, stop)


def _production_eventhubs(settings: IngestSettings) -> Receiver:
    eh = settings.eventhubs
    if eh.connection is None:
        raise ConfigError("ALERTLINE_EVENTHUBS__CONNECTION is required")
    if eh.checkpoint_connection is None or not eh.checkpoint_container:
        raise ConfigError(
            "Event Hubs needs a durable checkpoint store: ALERTLINE_EVENTHUBS__CHECKPOINT_CONNECTION and "
            "ALERTLINE_EVENTHUBS__CHECKPOINT_CONTAINER (Azure Blob Storage)"
        )
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

    store = BlobCheckpointStore.from_connection_string(
        eh.checkpoint_connection.get_secret_value(), eh.checkpoint_container
    )
    return consumer_client_receiver(
        eh.connection.get_secret_value(),
        eh.eventhub,
        eh.consumer_group,
        store,
        max_batch_size=eh.max_batch_size,
        max_wait_s=eh.max_wait_s,
        starting_position=eh.starting_position,
    )


def main() -> None:
    settings = IngestSettings()
    logs.configure("ingest", settings.runtime.log_level)
    code = build(settings).run()
    raise SystemExit(code)
