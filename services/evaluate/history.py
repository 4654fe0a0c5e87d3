"""Read a time range of a topic (the alert history) without a consumer group: offsets by
timestamp (``offsets_for_times``) to the end offsets as they were when reading began."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from alertline.clock import to_millis
from alertline.errors import Transient
from alertline.settings import KafkaSettings


@dataclass(frozen=True)
class Span:
    partition: int
    start: int
    end: int  # exclusive

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class Raw:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_range(
    kafka: KafkaSettings,
    topic: str,
    since: datetime,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    on_spans: Callable[[list[Span]], None] | None = None,
    idle_timeout_s: float = 30.0,
) -> Iterator[Raw]:
    """Committed records of ``topic`` with timestamps in [since, until), partition by partition
    interleaved as the broker returns them. ``progress(n)`` reports offsets advanced."""
    c = Consumer(
        kafka.client_config()
        | {
            "group.id": f"alertline-history-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        spans = _spans(c, topic, since, until)
        if on_spans is not None:
            on_spans(spans)
        todo = {s.partition: s for s in spans if s.size > 0}
        if not todo:
            return
        c.assign([TopicPartition(topic, s.partition, s.start) for s in todo.values()])
        pos = {p: s.start for p, s in todo.items()}
        last_progress = time.monotonic()
        while todo:
            msgs = c.consume(500, 1.0)
            if not msgs and time.monotonic() - last_progress > idle_timeout_s:
                raise Transient(f"no progress reading {topic} for {idle_timeout_s}s")
            for m in msgs:
                part = m.partition() or 0
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        _advance(todo, pos, part, todo[part].end if part in todo else 0, progress)
                        continue
                    raise KafkaException(err)
                if part not in todo:
                    continue
                offset = m.offset() or 0
                last_progress = time.monotonic()
                span = todo[part]
                if offset >= span.end:
                    _advance(todo, pos, part, span.end, progress)
                    continue
                yield Raw(part, offset, m.key(), m.value())
                _advance(todo, pos, part, offset + 1, progress)
                if offset + 1 >= span.end:
                    todo.pop(part, None)
    finally:
        c.close()


def _advance(
    todo: dict[int, Span], pos: dict[int, int], part: int, to: int, progress: Callable[[int], None] | None
) -> None:
    if part not in pos:
        return
    step = max(0, to - pos[part])
    pos[part] = max(pos[part], to)
    if progress is not None and step:
        progress(step)
    span = todo.get(part)
    if span is not None and pos[part] >= span.end:
        todo.pop(part, None)


def _spans(c: Consumer, topic: str, since: datetime, until: datetime | None) -> list[Span]:
    md = c.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise KafkaException(t.error if t is not None else KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    parts = sorted(t.partitions)
    starts = c.offsets_for_times([TopicPartition(topic, p, to_millis(since)) for p in parts], timeout=10)
    ends = (
        c.offsets_for_times([TopicPartition(topic, p, to_millis(until)) for p in parts], timeout=10)
        if until is not None
        else None
    )
    out: list[Span] = []
    for i, p in enumerate(parts):
        _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        start = starts[i].offset if starts[i].offset >= 0 else high  # -1: nothing at or after since
        end = high
        if ends is not None and ends[i].offset >= 0:
            end = min(high, ends[i].offset)
        out.append(Span(p, start, end))
    return out
