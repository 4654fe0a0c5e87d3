"""Microsoft Defender for Cloud via Event Hubs (azure-eventhub consumer with a checkpoint store).

``on_event_batch(partition_context, events)`` is the SDK boundary: the events of one partition
become deliveries, go through the pipeline, and the partition is checkpointed at the last
event only after Kafka confirmed all of them. A failing delivery is retried in place with
back-off (a partition is an ordered log: nothing after it may be checkpointed first); on
shutdown the handler gives up without checkpointing, so the next owner starts at the last
checkpoint and delivers those events again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from alertline.clock import Clock, utcnow
from alertline.errors import AlertlineError
from services.ingest.domain import Delivery, Retry
from services.ingest.pipeline import IngestMetrics, Pipeline
from services.ingest.sources.backoff import Backoff

log = logging.getLogger("alertline.ingest.eventhubs")


class ShuttingDown(AlertlineError):
    """Raised from the handler at shutdown: the batch is left unacknowledged on purpose."""


def event_body(event: Any) -> bytes:
    """The event's bytes. Defender for Cloud sends AMQP data sections (bytes); a producer that
    sent an AMQP value gets it as UTF-8 (strings) or JSON (structured values)."""
    from azure.eventhub.amqp import AmqpMessageBodyType

    if event.body_type == AmqpMessageBodyType.DATA:
        return b"".join(bytes(part) for part in event.body)
    value = event.body
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, default=str).encode()


class EventHubsHandler:
    name = "eventhubs"

    def __init__(
        self,
        pipeline: Pipeline,
        metrics: IngestMetrics,
        stop: threading.Event,
        *,
        clock: Clock = utcnow,
        backoff: Backoff | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.stop = stop
        self.clock = clock
        self.backoff = backoff or Backoff()
        # The SDK runs one partition at a time per receive thread; the lock keeps the
        # pipeline's single transactional producer to one transaction at a time regardless.
        self._lock = threading.Lock()

    def on_event(self, partition_context: Any, event: Any) -> None:
        if event is not None:
            self.on_event_batch(partition_context, [event])

    def on_event_batch(self, partition_context: Any, events: Sequence[Any]) -> None:
        if not events:
            return
        received_at = self.clock()
        pc = partition_context
        origin = f"eventhubs://{pc.fully_qualified_namespace}/{pc.eventhub_name}/{pc.consumer_group}/{pc.partition_id}"
        deliveries = [
            Delivery(
                "eventhubs",
                origin,
                event_body(e),
                received_at,
                e.enqueued_time,
                "eventhubs",
                partition=_int(pc.partition_id),
                offset=e.sequence_number,
                meta={"sequence_number": str(e.sequence_number), "offset": str(e.offset or "")},
            )
            for e in events
        ]
        pending = list(range(len(deliveries)))
        while pending:
            with self._lock:
                outcomes = self.pipeline.run([deliveries[i] for i in pending])
            failed = [(i, o) for i, o in zip(pending, outcomes, strict=True) if isinstance(o, Retry)]
            pending = [i for i, _ in failed]
            if not pending:
                self.backoff.reset()
                break
            hint = failed[0][1].retry_after
            log.warning(
                "events not confirmed; retrying before checkpointing",
                extra={"partition": pc.partition_id, "events": len(pending), "reason": failed[0][1].reason},
            )
            if self.backoff.wait(self.stop, hint):
                raise ShuttingDown(f"stopping with {len(pending)} unconfirmed events on partition {pc.partition_id}")
        partition_context.update_checkpoint(events[-1])
        now = self.clock()
        for _ in events:
            self.metrics.acked(self.name, received_at, now)

    def on_error(self, partition_context: Any, error: BaseException) -> None:
        pid = getattr(partition_context, "partition_id", None)
        if isinstance(error, ShuttingDown):
            log.info("partition released at shutdown", extra={"partition": pid})
            return
        log.warning("event hubs error", extra={"partition": pid, "error": repr(error)})


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


Receiver = Callable[[EventHubsHandler, threading.Event], None]
"""Runs the consumer until ``stop``: production uses EventHubConsumerClient.receive_batch."""


def consumer_client_receiver(
    fully_qualified_namespace: str,
    eventhub: str,
    consumer_group: str,
    checkpoint_store: Any,
    *,
    connection_string: str | None,
    credential: Any,
    max_batch_size: int,
    max_wait_s: float,
    starting_position: str,
) -> Receiver:
    def receive(handler: EventHubsHandler, stop: threading.Event) -> None:
        from azure.eventhub import EventHubConsumerClient

        if connection_string is not None:
            client = EventHubConsumerClient.from_connection_string(
                connection_string, consumer_group=consumer_group, eventhub_name=eventhub,
                checkpoint_store=checkpoint_store,
            )  # fmt: skip
        else:
            client = EventHubConsumerClient(
                fully_qualified_namespace, eventhub, consumer_group, credential, checkpoint_store=checkpoint_store
            )

        def close_on_stop() -> None:
            stop.wait()
            client.close()

        threading.Thread(target=close_on_stop, name="eventhubs-close", daemon=True).start()
        with client:
            client.receive_batch(
                on_event_batch=handler.on_event_batch,
                on_error=handler.on_error,
                max_batch_size=max_batch_size,
                max_wait_time=max_wait_s,
                starting_position=starting_position,
            )

    return receive
