"""Move a service's consumer group on its input topic to a point in time (offsets by time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from alertline.errors import AlertlineError
from alertline.settings import KafkaSettings
from alertline.topics import SERVICE_INPUTS, group, topic


class GroupActive(AlertlineError):
    """The consumer group has live members; moving its offsets now would race them."""


@dataclass(frozen=True)
class PartitionMove:
    partition: int
    committed: int | None
    target: int
    end: int

    @property
    def lag_before(self) -> int | None:
        return None if self.committed is None else self.end - self.committed

    @property
    def lag_after(self) -> int:
        return self.end - self.target


def plan_and_move(
    kafka: KafkaSettings, service: str, to: datetime, dry_run: bool
) -> tuple[str, str, list[PartitionMove]]:
    if service not in SERVICE_INPUTS:
        raise AlertlineError(f"{service!r} has no input topic; choose one of {sorted(SERVICE_INPUTS)}")
    g, t = group(kafka.topic_prefix, service), topic(kafka.topic_prefix, SERVICE_INPUTS[service])
    admin = AdminClient(kafka.client_config())
    try:
        desc = admin.describe_consumer_groups([g])[g].result(timeout=30)
    except KafkaException as exc:
        raise AlertlineError(f"cannot describe group {g}: {exc}") from exc
    if desc.members:
        raise GroupActive(
            f"group {g} has {len(desc.members)} live member(s); stop the {service} service (scale to 0) and retry"
        )
    c = Consumer(kafka.client_config() | {"group.id": g, "enable.auto.commit": False})
    try:
        md = c.list_topics(t, timeout=10)
        if t not in md.topics or md.topics[t].error is not None:
            raise AlertlineError(f"topic {t} does not exist")
        parts = sorted(md.topics[t].partitions)
        ms = int(to.timestamp() * 1000)
        found = c.offsets_for_times([TopicPartition(t, p, ms) for p in parts], timeout=30)
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(t, p) for p in parts], timeout=30)}
        moves = []
        for tp in found:
            end = c.get_watermark_offsets(TopicPartition(t, tp.partition), timeout=10)[1]
            target = tp.offset if tp.offset >= 0 else end  # nothing at or after the time: the end
            prev = committed.get(tp.partition)
            moves.append(PartitionMove(tp.partition, prev if prev is not None and prev >= 0 else None, target, end))
        if not dry_run:
            c.commit(offsets=[TopicPartition(t, m.partition, m.target) for m in moves], asynchronous=False)
        return g, t, moves
    finally:
        c.close()
