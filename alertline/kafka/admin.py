"""Topic administration: create every topic idempotently, state topics compacted."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # exported at runtime, missing from the stubs

from alertline.errors import AlertlineError
from alertline.settings import KafkaSettings
from alertline.topics import TOPICS

log = logging.getLogger(__name__)


def topic_configs(compact: bool, retention_ms: int) -> dict[str, str]:
    if compact:
        return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", "segment.ms": "3600000"}
    return {"cleanup.policy": "delete", "retention.ms": str(retention_ms)}


def create_topics(
    settings: KafkaSettings, names: Iterable[str] | None = None, partitions: int | None = None
) -> dict[str, str]:
    """Create the named topics (all by default). Returns topic -> 'created' | 'exists'."""
    admin = AdminClient(settings.client_config())
    wanted = list(names) if names is not None else list(TOPICS)
    new = [
        NewTopic(
            settings.topic_prefix + TOPICS[n].name,
            num_partitions=partitions or settings.partitions,
            replication_factor=settings.replication,
            config=topic_configs(TOPICS[n].compact, settings.retention_ms),
        )
        for n in wanted
    ]
    return create(admin, new)


def create(admin: AdminClient, new: list[NewTopic]) -> dict[str, str]:
    result: dict[str, str] = {}
    if not new:
        return result
    for name, fut in admin.create_topics(new, operation_timeout=30).items():
        try:
            fut.result()
            result[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() == 36:  # TOPIC_ALREADY_EXISTS
                result[name] = "exists"
            else:
                raise AlertlineError(f"creating topic {name}: {exc}") from exc
    return result
