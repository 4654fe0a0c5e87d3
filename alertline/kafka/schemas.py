"""Writer schemas published to a compacted topic, so an older reader can resolve records
from a newer writer by fingerprint (single-object encoding carries only the fingerprint)."""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Producer

from alertline.avro import Codec, SingleObjectCodec, make_codec
from alertline.settings import KafkaSettings
from alertline.testing.kafka import read_all
from alertline.topics import topic

log = logging.getLogger(__name__)


def publish(kafka: KafkaSettings, codec: SingleObjectCodec) -> None:
    """Publish this build's writer schemas (idempotent: same key, same value)."""
    p = Producer(kafka.client_config() | {"enable.idempotence": True})
    t = topic(kafka.topic_prefix, "schemas")
    for fp, text in codec.writer_schemas().items():
        p.produce(t, text.encode(), fp.encode())
    if p.flush(30) != 0:
        log.warning("schema publication not confirmed", extra={"topic": t})


class TopicLookup:
    """Fingerprint -> schema JSON, read from the schemas topic on a miss (at most every 5 s)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._table: dict[str, str] = {}
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, fp: bytes) -> str | None:
        with self._lock:
            if fp.hex() not in self._table and time.monotonic() - self._last > 5:
                self._last = time.monotonic()
                for m in read_all(self.kafka.bootstrap, topic(self.kafka.topic_prefix, "schemas"), timeout=10):
                    if m.key() and m.value():
                        self._table[m.key().decode()] = m.value().decode()
            return self._table.get(fp.hex())


def codec_for(kafka: KafkaSettings) -> Codec:
    """The codec a service uses: Confluent wire format with a registry, else single-object
    encoding that publishes its writer schemas and resolves unknown ones from the topic."""
    if kafka.schema_registry_url:
        auth = kafka.schema_registry_auth.get_secret_value() if kafka.schema_registry_auth else None
        return make_codec(kafka.schema_registry_url, auth)
    codec = SingleObjectCodec(lookup=TopicLookup(kafka))
    publish(kafka, codec)
    return codec
