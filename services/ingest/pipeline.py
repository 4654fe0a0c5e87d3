"""The delivery pipeline: archive the raw bytes FIRST, normalize, publish every alert and
dead letter of the delivery in ONE Kafka transaction, and only then tell the caller it may
acknowledge the source.

The order is the guarantee (docs/decisions/0201-ack-after-kafka-commit.md): a crash before
the archive write or before the commit leaves the source unacknowledged, so the delivery
comes again; a crash after the commit and before the ack re-publishes the same
(identity, revision), which evaluate drops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from alertline.avro import Codec
from alertline.clock import Clock, utcnow
from alertline.errors import BadInput, Transient
from alertline.kafka.runtime import MAX_ERROR_MESSAGE, dlq_headers
from alertline.model import Alert
from alertline.stage import Output
from alertline.topics import topic
from services.ingest.domain import Delivery, Done, Outcome, Retry, TooLarge, archive_key, error_class
from services.ingest.normalize import FindingError, NormalizeResult, RawLocation

log = logging.getLogger("alertline.ingest")

SERVICE = "ingest"
CRASH_EXIT_CODE = 137


class NormalizeFn(Protocol):
    def __call__(
        self, body: bytes, *, raw: RawLocation, received_at: datetime, hint: str | None = None
    ) -> NormalizeResult: ...


class Archive(Protocol):
    def put(self, key: str, body: bytes, sha256_hex: str) -> str:
        """Store the bytes under ``key``; return their URI. Raise ``Transient`` on failure."""
        ...


class Publish(Protocol):
    def publish(self, outputs: Iterable[Output]) -> int:
        """All outputs in one transaction; raise ``Transient`` unless Kafka committed them."""
        ...


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "alertline_ingest_deliveries", "Deliveries by outcome (done | retry).", ["source", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.alerts = Counter("alertline_ingest_alerts", "Alerts published.", ["source"], registry=registry)
        self.dead_letters = Counter(
            "alertline_ingest_dead_letters", "Dead letters published.", ["source"], registry=registry
        )
        self.archive_failures = Counter(
            "alertline_ingest_archive_failures", "Archive writes that failed.", ["source"], registry=registry
        )
        self.publish_failures = Counter(
            "alertline_ingest_publish_failures", "Kafka transactions that failed.", ["source"], registry=registry
        )
        self.ack_failures = Counter(
            "alertline_ingest_ack_failures", "Acknowledgements the source refused.", ["source"], registry=registry
        )
        self.ack_latency = Histogram(
            "alertline_ingest_ack_latency_seconds", "From receipt to acknowledgement of a delivery.", ["source"],
            registry=registry, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )  # fmt: skip

    def acked(self, source: str, received_at: datetime, now: datetime) -> None:
        self.ack_latency.labels(source).observe(max(0.0, (now - received_at).total_seconds()))


@dataclass(frozen=True)
class Topics:
    alerts: str
    dlq: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Topics:
        return cls(alerts=topic(prefix, "alerts"), dlq=topic(prefix, "ingest.dlq"))


class _Budget:
    def __init__(self, remaining: int) -> None:
        self.remaining = remaining


class Pipeline:
    def __init__(
        self,
        *,
        archive: Archive,
        archive_prefix: str,
        normalize: NormalizeFn,
        publisher: Publish,
        codec: Codec,
        topics: Topics,
        metrics: IngestMetrics,
        clock: Clock = utcnow,
        max_record_bytes: int = 1_000_000,
        dead_letter_budget_bytes: int = 16 * 1024 * 1024,
        crash_after_publish: bool = False,
        exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.archive = archive
        self.prefix = archive_prefix
        self.normalize = normalize
        self.publisher = publisher
        self.codec = codec
        self.topics = topics
        self.metrics = metrics
        self.clock = clock
        self.max_record_bytes = max_record_bytes
        # Room for the envelope, cause and headers around the original bytes.
        self.max_dead_value = max_record_bytes - 64 * 1024
        self.dead_letter_budget = dead_letter_budget_bytes
        self.crash_after_publish = crash_after_publish
        self._exit = exit

    def run(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Process deliveries; one outcome each, in order. Never raises for bad input; every
        delivery that is not ``Done`` must not be acknowledged."""
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        staged: list[tuple[int, str, list[Output], int, int]] = []
        for i, d in enumerate(deliveries):
            try:
                uri = self.archive.put(archive_key(self.prefix, d), d.body, d.sha256)
            except Transient as exc:
                self.metrics.archive_failures.labels(d.source).inc()
                log.warning(
                    "archive failed; delivery not acknowledged",
                    extra={"origin": d.origin, "sha256": d.sha256, "error": str(exc)},
                )
                outcomes[i] = Retry(f"archive: {exc}", exc.retry_after)
                continue
            outputs, n_alerts, n_dead = self._outputs(d, uri)
            staged.append((i, uri, outputs, n_alerts, n_dead))

        if staged:
            everything = [o for _, _, outs, _, _ in staged for o in outs]
            try:
                if everything:
                    self.publisher.publish(everything)
            except Transient as exc:
                log.warning("publish failed; deliveries not acknowledged", extra={"error": str(exc)})
                for i, *_ in staged:
                    self.metrics.publish_failures.labels(deliveries[i].source).inc()
                    outcomes[i] = Retry(f"kafka: {exc}", exc.retry_after)
                staged = []
            if staged and everything and self.crash_after_publish:
                # TEST ONLY (ALERTLINE_TEST_CRASH_AFTER_PUBLISH): die between commit and ack.
                log.critical("test hook: exiting after Kafka commit, before acknowledging the source")
                logging.shutdown()
                self._exit(CRASH_EXIT_CODE)
            for i, uri, _, n_alerts, n_dead in staged:
                src = deliveries[i].source
                self.metrics.alerts.labels(src).inc(n_alerts)
                self.metrics.dead_letters.labels(src).inc(n_dead)
                outcomes[i] = Done(uri, n_alerts, n_dead)

        done: list[Outcome] = []
        for d, o in zip(deliveries, outcomes, strict=True):
            assert o is not None
            self.metrics.deliveries.labels(d.source, "done" if isinstance(o, Done) else "retry").inc()
            done.append(o)
        return done

    # ------------------------------------------------------------------ outputs of one delivery
    def _outputs(self, d: Delivery, uri: str) -> tuple[list[Output], int, int]:
        budget = _Budget(self.dead_letter_budget)
        if d.defect is not None:
            return [self._dead(d, uri, d.defect, None, budget)], 0, 1
        try:
            result = self.normalize(d.body, raw=RawLocation(uri, d.sha256), received_at=d.received_at, hint=d.hint)
        except BadInput as exc:
            return [self._dead(d, uri, exc, None, budget)], 0, 1
        except Exception as exc:
            log.exception("normalizer raised unexpectedly", extra={"origin": d.origin, "sha256": d.sha256})
            return [self._dead(d, uri, exc, None, budget)], 0, 1
        outputs: list[Output] = []
        n_alerts = 0
        for index, a in enumerate(result.alerts):
            try:
                outputs.append(self._alert(a))
                n_alerts += 1
            except BadInput as exc:
                outputs.append(self._dead(d, uri, exc, _index(a, index), budget))
        for fe in result.errors:
            outputs.append(self._dead(d, uri, _FindingFailure(fe), fe.index, budget))
        return outputs, n_alerts, len(outputs) - n_alerts

    def _alert(self, a: Alert) -> Output:
        identity = a.get("identity")
        if not isinstance(identity, str) or not identity:
            raise BadInput("normalized alert has no identity")
        try:
            data = self.codec.encode("alert", a, self.topics.alerts)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BadInput(f"normalized alert does not fit the alert schema: {type(exc).__name__}: {exc}") from exc
        if len(data) > self.max_record_bytes:
            raise TooLarge(f"encoded alert is {len(data)} bytes, over the {self.max_record_bytes}-byte record limit")
        return Output(self.topics.alerts, data, key=identity)

    def _dead(self, d: Delivery, uri: str, exc: BaseException, index: int | None, budget: _Budget) -> Output:
        cls = exc.error_class if isinstance(exc, _FindingFailure) else error_class(exc)
        msg = str(exc)[:MAX_ERROR_MESSAGE]
        headers = dlq_headers(SERVICE, d.origin, d.partition, d.offset, cls, msg)
        headers["alertline.raw.uri"] = uri.encode()
        headers["alertline.raw.sha256"] = d.sha256.encode()
        if index is not None:
            headers["alertline.finding.index"] = str(index).encode()
        for k, v in d.meta.items():
            headers[f"alertline.source.{k}"] = v.encode("utf-8", "replace")[:1024]
        value: bytes | None = d.body
        if len(d.body) > self.max_dead_value or len(d.body) > budget.remaining:
            # The archive holds the bytes (content-addressed, sha256 in the headers); a Kafka
            # record cannot (docs/decisions/0200-raw-archive-layout.md).
            value = None
            headers["alertline.value.omitted"] = f"{len(d.body)} bytes; read them from alertline.raw.uri".encode()
        else:
            budget.remaining -= len(d.body)
        envelope = {
            "service": SERVICE, "source": d.origin, "partition": d.partition, "offset": d.offset,
            "key": None, "value": value, "headers": {k: v for k, v in headers.items()},
            "error_class": cls, "error_message": msg, "raw_uri": uri, "failed_at": self.clock(),
        }  # fmt: skip
        log.error(
            "dead-lettered",
            extra={"origin": d.origin, "raw_uri": uri, "finding_index": index, "error_class": cls, "error": msg},
        )
        data = self.codec.encode("dead_letter", envelope, self.topics.dlq)
        return Output(self.topics.dlq, data, key=d.sha256, headers=headers)


class _FindingFailure(BadInput):
    """A per-finding error the normalizer reported (it keeps the normalizer's error class)."""

    def __init__(self, fe: FindingError) -> None:
        super().__init__(fe.message)
        self.error_class = fe.error_class


def _index(a: Alert, default: int) -> int:
    raw = a.get("raw")
    if isinstance(raw, dict) and isinstance(raw.get("index"), int):
        return int(raw["index"])
    return default
