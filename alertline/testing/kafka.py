"""Reading topics back in tests, demo and tools."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def read_all(
    bootstrap: str, topic: str, timeout: float = 30.0, committed_only: bool = True, expect: int | None = None
) -> list[Any]:
    """Read a topic from the beginning to its end (or until ``expect`` records); returns Messages."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        "enable.partition.eof": True,
    })  # fmt: skip
    try:
        md = c.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[Any] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition() or 0)
                        continue
                    raise RuntimeError(str(err))
                eof.discard(m.partition())
                out.append(m)
            if expect is None and len(eof) == len(parts):
                return out
            if expect is not None and len(out) >= expect:
                return out
        return out
    finally:
        c.close()
