"""The scan state: which findings were failing at the last scan of each unit.

It lives in the compacted topic ``<prefix>scan.state.v1``: key = alert identity, value = the
finding's unit, check, revision, first-seen time and last active alert (JSON, see
``domain.prior_to_json``), a tombstone once resolved. It is written in the same Kafka
transaction as the alerts it describes, so the two never disagree; a scan reads it whole at
start (read_committed).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from alertline.errors import Transient
from alertline.settings import KafkaSettings
from services.scan.domain import Prior, prior_from_json

log = logging.getLogger(__name__)


class KafkaState:
    def __init__(self, kafka: KafkaSettings, topic: str, timeout_s: float) -> None:
        self.kafka = kafka
        self.topic = topic
        self.timeout_s = timeout_s

    def load(self) -> dict[str, Prior]:
        """Every live entry. Raises ``Transient`` if the topic cannot be read to its end in
        time: scanning against a half-read state would re-raise or fail to resolve."""
        started = time.monotonic()
        c = Consumer(self.kafka.client_config() | {
            "group.id": f"scan-state-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            # A one-shot read to the end: do not let the broker hold empty fetches.
            "fetch.wait.max.ms": 50,
        })  # fmt: skip
        out: dict[str, Prior] = {}
        bad = 0
        try:
            md = c.list_topics(self.topic, timeout=min(30.0, self.timeout_s))
            t = md.topics.get(self.topic)
            if t is None or t.error is not None:
                raise Transient(f"state topic {self.topic} unavailable: {t.error if t else 'missing'}")
            parts = list(t.partitions)
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            remaining = set(parts)
            deadline = started + self.timeout_s
            while remaining:
                if time.monotonic() > deadline:
                    raise Transient(f"state topic {self.topic}: not read to its end in {self.timeout_s}s")
                for m in c.consume(1000, 0.1):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(m.partition() or 0)
                            continue
                        raise Transient(f"state topic {self.topic}: {err}")
                    key = (m.key() or b"").decode()
                    value = m.value()
                    if value is None:
                        out.pop(key, None)
                        continue
                    try:
                        out[key] = prior_from_json(key, value)
                    except (ValueError, KeyError, TypeError) as exc:
                        # A state entry this version cannot read: keep going (its finding
                        # re-raises as new), but say so.
                        bad += 1
                        log.error("unreadable state entry", extra={"key": key, "error": str(exc)})
        except KafkaException as exc:
            raise Transient(f"state topic {self.topic}: {exc}") from exc
        finally:
            c.close()
        log.info(
            "scan state loaded",
            extra={"entries": len(out), "unreadable": bad, "seconds": round(time.monotonic() - started, 3)},
        )
        return out


class MemoryState:
    """Dry runs and tests without a broker: starts from what it is given."""

    def __init__(self, entries: Mapping[str, Prior] | None = None) -> None:
        self.entries = dict(entries or {})

    def load(self) -> dict[str, Prior]:
        return dict(self.entries)
