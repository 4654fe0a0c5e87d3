"""A live, read-only mirror of a compacted topic, kept on every replica.

Lookup tables and similar reference data are small, keyed, and needed whole by every
replica, so this reader does not join a consumer group: it assigns every partition of the
topic from the beginning, reads ``read_committed``, and applies each row to a dict (a ``None``
value — a tombstone — deletes the key). ``ready`` is set once every partition has been read
to the end that existed when reading began; after that, updates keep flowing in the
background. Partitions added to the topic later are picked up by a periodic metadata check.

A row that cannot be decoded is logged with its topic/partition/offset, counted, and
skipped; the key keeps its previous value.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from alertline.settings import KafkaSettings

log = logging.getLogger("alertline.table")

Decoder = Callable[[bytes], Any]
OnChange = Callable[[str, Any | None], None]


def json_decoder(data: bytes) -> Any:
    return json.loads(data)


class TableReader:
    """Mirror ``topic`` into ``rows`` in a background thread."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        decode: Decoder = json_decoder,
        on_change: OnChange | None = None,
        registry: CollectorRegistry | None = None,
        poll_timeout_s: float = 0.5,
        metadata_refresh_s: float = 30.0,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.decode = decode
        self.on_change = on_change
        self.poll_timeout_s = poll_timeout_s
        self.metadata_refresh_s = metadata_refresh_s
        self.rows: dict[str, Any] = {}
        self.ready = threading.Event()
        self.applied = 0
        self.bad_rows = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned: set[int] = set()
        self._pending_eof: set[int] = set()
        reg = registry or CollectorRegistry()
        self._m_rows = Gauge("alertline_table_rows", "Rows held from a compacted topic.", ["topic"], registry=reg)
        self._m_bad = Counter(
            "alertline_table_bad_rows", "Rows skipped because they could not be decoded.", ["topic"], registry=reg
        )
        self._m_ready = Gauge("alertline_table_ready", "1 once the table caught up at start.", ["topic"], registry=reg)

    # ------------------------------------------------------------------ public
    def start(self) -> TableReader:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=f"table:{self.topic}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def get(self, key: str, default: Any = None) -> Any:
        return self.rows.get(key, default)

    def healthy(self) -> bool:
        """False once the reader thread died (a fatal client error); the table then goes stale."""
        return self.failure is None and (self._thread is None or self._thread.is_alive() or self._stop.is_set())

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        consumer = Consumer(
            self.kafka.client_config()
            | {
                # Never used to commit: every replica reads everything, from the beginning.
                "group.id": f"table-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        try:
            next_check = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_check:
                    self._assign_new(consumer)
                    next_check = time.monotonic() + (self.metadata_refresh_s if self._assigned else 1.0)
                if not self._assigned:
                    self._stop.wait(self.poll_timeout_s)
                    continue
                for m in consumer.consume(500, self.poll_timeout_s):
                    self._handle(m)
        except Exception as exc:  # recorded for healthy(): a thread has no caller to raise to
            self.failure = exc
            log.exception("table reader stopped", extra={"topic": self.topic})
        finally:
            consumer.close()

    def _assign_new(self, consumer: Consumer) -> None:
        try:
            md = consumer.list_topics(self.topic, timeout=5)
        except KafkaException as exc:
            log.warning("table metadata unavailable", extra={"topic": self.topic, "error": str(exc)})
            return
        t = md.topics.get(self.topic)
        if t is None or t.error is not None:
            log.warning(
                "table topic not available yet", extra={"topic": self.topic, "error": str(t.error if t else "missing")}
            )
            return
        new = sorted(set(t.partitions) - self._assigned)
        if not new:
            return
        consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in new])
        self._assigned.update(new)
        if not self.ready.is_set():
            self._pending_eof.update(new)
        log.info("table partitions assigned", extra={"topic": self.topic, "partitions": ",".join(map(str, new))})

    def _handle(self, m: Any) -> None:
        err = m.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._pending_eof.discard(m.partition())
                if not self._pending_eof and not self.ready.is_set():
                    self.ready.set()
                    self._m_ready.labels(self.topic).set(1)
                    log.info("table caught up", extra={"topic": self.topic, "rows": len(self.rows)})
                return
            if err.fatal():
                raise KafkaException(err)
            log.warning("table consumer error", extra={"topic": self.topic, "error": str(err)})
            return
        key = (m.key() or b"").decode("utf-8", "replace")
        raw = m.value()
        try:
            value = None if raw is None else self.decode(raw)
            if self.on_change is not None:
                self.on_change(key, value)
        except Exception as exc:  # noqa: BLE001 - a bad row must not stop the table; it is logged and counted
            self.bad_rows += 1
            self._m_bad.labels(self.topic).inc()
            log.error(
                "table row skipped",
                extra={
                    "topic": m.topic(),
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "key": key,
                    "error_class": type(exc).__name__,
                    "error": str(exc)[:500],
                },
            )
            return
        if value is None:
            self.rows.pop(key, None)
        else:
            self.rows[key] = value
        self.applied += 1
        self._m_rows.labels(self.topic).set(len(self.rows))
