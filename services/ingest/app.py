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
            max_record_bytes=s.ingest.max_record_bytes,
            dead_letter_budget_bytes=s.ingest.dead_letter_budget_bytes,
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
    archive_aws = settings.aws.model_copy(
        update={"endpoint_url": settings.archive.endpoint_url or settings.aws.endpoint_url}
    )
    s3 = aws.client("s3", archive_aws, settings.archive.region)
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
            log.warning(
                "no source configured (ALERTLINE_INGEST__SQS__QUEUE_URLS, ..._PUBSUB__SUBSCRIPTIONS, "
                "..._EVENTHUBS__FULLY_QUALIFIED_NAMESPACE)"
            )
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
    """The composition root. Tests may pass a normalizer, a codec, or the Event Hubs
    receiver that drives the handler at the SDK boundary; production passes nothing."""
    w = wire(settings, normalize=normalize, codec=codec, registry=registry, clock=clock)
    rt = settings.runtime
    stop = threading.Event()
    sources: dict[str, SourceRun] = {}
    src = settings.ingest
    if src.sqs.queue_urls:
        sqs_client = aws.client("sqs", settings.aws)
        objects = S3Objects(aws.client("s3", settings.aws), src.sqs.max_object_bytes)
        for n, url in enumerate(src.sqs.queue_urls):
            sqs = SqsSource(
                sqs_client,
                url,
                w.pipeline(f"sqs-{n}"),
                objects,
                w.metrics,
                wait_s=src.sqs.wait_s,
                max_messages=src.sqs.max_messages,
                visibility_timeout_s=src.sqs.visibility_timeout_s,
                clock=clock,
                backoff=Backoff(rt.backoff_initial_s, rt.backoff_max_s),
            )
            sources[f"sqs-{n}"] = sqs.run
    if src.pubsub.subscriptions:
        if pubsub_subscriber is None:
            from google.cloud import pubsub_v1

            # PUBSUB_EMULATOR_HOST (the library's own switch) points it at a local server.
            pubsub_subscriber = pubsub_v1.SubscriberClient()
        for n, sub in enumerate(src.pubsub.subscriptions):
            ps = PubSubSource(
                pubsub_subscriber,
                sub,
                [w.pipeline(f"pubsub-{n}-{k}") for k in range(src.pubsub.concurrency)],
                w.metrics,
                max_messages=src.pubsub.max_messages,
                clock=clock,
                backoff_initial_s=rt.backoff_initial_s,
                backoff_max_s=rt.backoff_max_s,
            )
            sources[f"pubsub-{n}"] = ps.run
    if src.eventhubs.fully_qualified_namespace:
        receiver = eventhubs_receiver or _production_eventhubs(settings)
        handler = EventHubsHandler(
            w.pipeline("eventhubs"), w.metrics, stop, clock=clock,
            backoff=Backoff(rt.backoff_initial_s, rt.backoff_max_s),
        )  # fmt: skip
        sources["eventhubs"] = lambda stop_: receiver(handler, stop_)
    return IngestApp(w, sources, stop)


def _production_eventhubs(settings: IngestSettings) -> Receiver:
    """The real consumer: connection strings when given, else Workload Identity."""
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

    eh = settings.ingest.eventhubs
    account, container = eh.checkpoint_account_and_container()
    credential: Any = None
    if eh.connection_string is None or eh.checkpoint_connection_string is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if eh.checkpoint_connection_string is not None:
        store = BlobCheckpointStore.from_connection_string(
            eh.checkpoint_connection_string.get_secret_value(), container
        )
    else:
        store = BlobCheckpointStore(account, container, credential=credential)
    return consumer_client_receiver(
        eh.fully_qualified_namespace,
        eh.eventhub_name,
        eh.consumer_group,
        store,
        connection_string=eh.connection_string.get_secret_value() if eh.connection_string else None,
        credential=credential,
        max_batch_size=eh.max_batch_size,
        max_wait_s=eh.max_wait_s,
        starting_position=eh.starting_position,
    )


def main() -> None:
    settings = IngestSettings()
    logs.configure("ingest", settings.runtime.log_level)
    code = build(settings).run()
    raise SystemExit(code)
