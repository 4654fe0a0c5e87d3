"""Publishing from outside Kafka (ingest, scans, replay): all records of one delivery in one
transaction, so a source is acknowledged only after Kafka confirmed every record of it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer

from alertline.avro import Codec
from alertline.errors import Transient
from alertline.settings import KafkaSettings
from alertline.stage import Output

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, kafka: KafkaSettings, codec: Codec, transactional_id: str) -> None:
        self._conf: dict[str, Any] = kafka.client_config() | {
            "transactional.id": transactional_id,
            "transaction.timeout.ms": kafka.transaction_timeout_ms,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "message.max.bytes": 4 * 1024 * 1024,
        }
        self.codec = codec
        self._producer: Producer | None = None

    def _ensure(self) -> Producer:
        if self._producer is None:
            p = Producer(self._conf)
            try:
                p.init_transactions(30)
            except KafkaException as exc:
                raise Transient(f"kafka unavailable: {exc}") from exc
            self._producer = p
        return self._producer

    def publish(self, outputs: Iterable[Output]) -> int:
        """Produce all outputs atomically; returns how many. Raises Transient on failure."""
        p = self._ensure()
        n = 0
        try:
            p.begin_transaction()
            for o in outputs:
                data = (
                    o.value
                    if (o.value is None or isinstance(o.value, bytes))
                    else self.codec.encode(o.schema or "", o.value, o.topic)
                )
                key = o.key.encode() if isinstance(o.key, str) else o.key
                kw: dict[str, Any] = {}
                if o.partition is not None:
                    kw["partition"] = o.partition
                if o.headers:
                    kw["headers"] = list(o.headers.items())
                while True:
                    try:
                        p.produce(o.topic, data, key, **kw)
                        break
                    except BufferError:
                        p.poll(0.1)
                n += 1
            p.commit_transaction(60)
            return n
        except KafkaException as exc:
            log.warning("publish failed; aborting", extra={"error": str(exc)})
            try:
                if exc.args[0].fatal():
                    raise KafkaException(exc.args[0])
                p.abort_transaction(30)
            except KafkaException:
                self._producer = None
            raise Transient(f"kafka publish failed: {exc}") from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
