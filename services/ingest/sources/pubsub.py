"""Google Security Command Center via Pub/Sub (google-cloud-pubsub, streaming pull).

Each message is one delivery (``message.data``, a NotificationMessage). The callback archives,
publishes and only then acks; on failure it waits the back-off (the client keeps extending the
lease meanwhile) and nacks, so the message is redelivered. Callbacks run on a small thread
pool; each holds its own pipeline (its own Kafka transactional producer) while it works.
On shutdown the streaming pull is cancelled, in-flight callbacks finish (and ack), and
messages not yet started are nacked by the client library.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from alertline.clock import Clock, utcnow
from services.ingest.domain import Delivery, Done
from services.ingest.pipeline import IngestMetrics, Pipeline
from services.ingest.sources.backoff import Backoff

log = logging.getLogger("alertline.ingest.pubsub")


class PubSubSource:
    name = "pubsub"

    def __init__(
        self,
        subscriber: pubsub_v1.SubscriberClient,
        subscription: str,
        pipelines: Sequence[Pipeline],
        metrics: IngestMetrics,
        *,
        max_messages: int = 100,
        clock: Clock = utcnow,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.subscriber = subscriber
        self.subscription = subscription
        self.metrics = metrics
        self.max_messages = max_messages
        self.clock = clock
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._pool: queue.Queue[Pipeline] = queue.Queue()
        for p in pipelines:
            self._pool.put(p)
        self._workers = len(pipelines)
        self._stop = threading.Event()
        self._failures = 0
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        reconnect = Backoff(self.backoff_initial_s, self.backoff_max_s)
        while not stop.is_set():
            future = self.subscriber.subscribe(
                self.subscription,
                self._callback,
                flow_control=pubsub_v1.types.FlowControl(max_messages=self.max_messages),
                scheduler=ThreadScheduler(ThreadPoolExecutor(self._workers, thread_name_prefix="pubsub-cb")),
                await_callbacks_on_shutdown=True,
            )
            log.info("streaming pull open", extra={"subscription": self.subscription})
            while not stop.wait(0.5) and not future.done():
                pass
            if not future.done():
                future.cancel()  # waits for in-flight callbacks; nacks what never started
            try:
                future.result(timeout=60)
            except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
                log.warning("streaming pull ended; reconnecting", extra={"error": str(exc)})
                if reconnect.wait(stop):
                    break
            except Exception as exc:  # noqa: BLE001 - CancelledError or a client-side failure: log, reconnect
                if not stop.is_set():
                    log.warning("streaming pull stopped; reconnecting", extra={"error": repr(exc)})
                    if reconnect.wait(stop):
                        break
        log.info("stopped", extra={"subscription": self.subscription})

    def _callback(self, message: Any) -> None:
        received_at = self.clock()
        publish_time = message.publish_time
        d = Delivery(
            "pubsub",
            f"pubsub://{self.subscription}",
            bytes(message.data),
            received_at,
            publish_time if publish_time is not None and publish_time.tzinfo is not None else None,
            "pubsub",
            meta={"message_id": str(message.message_id)},
        )
        pipeline = self._pool.get()
        try:
            outcome = pipeline.run([d])[0]
        finally:
            self._pool.put(pipeline)
        if isinstance(outcome, Done):
            message.ack()
            self.metrics.acked(self.name, received_at, self.clock())
            with self._lock:
                self._failures = 0
            return
        with self._lock:
            self._failures += 1
            delay = min(self.backoff_initial_s * 2 ** min(self._failures - 1, 16), self.backoff_max_s)
        delay = max(delay, outcome.retry_after or 0.0) if not self._stop.is_set() else 0.0
        log.warning(
            "message not acknowledged; nacking after back-off",
            extra={"message_id": message.message_id, "reason": outcome.reason, "retry_in_s": delay},
        )
        # Wait here (the lease is kept alive) so a failing dependency is not hammered by
        # immediate redeliveries; then nack for redelivery.
        self._stop.wait(min(delay, self.backoff_max_s))
        message.nack()
