"""AWS via SQS (boto3, long polling).

A message is a delivery (an EventBridge event: Security Hub, GuardDuty...), or an S3 "object
created" notification whose objects are read and become one delivery each. A message is
deleted only after every delivery made from it is archived and confirmed by Kafka; otherwise
its visibility is set to the back-off and it comes again. While a batch is processed its
visibility is extended, so a slow batch is not handed to another consumer meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alertline.clock import Clock, from_millis, utcnow
from alertline.errors import BadInput, Transient
from services.ingest.domain import Delivery, ObjectMissing, Outcome, Retry, maybe_gunzip
from services.ingest.notifications import ObjectRef, s3_objects
from services.ingest.pipeline import IngestMetrics, Pipeline
from services.ingest.sources.backoff import Backoff

log = logging.getLogger("alertline.ingest.sqs")

_MISSING = {"NoSuchKey", "NoSuchVersion", "404"}


class S3Objects:
    """Reads objects named by notifications; gzip is decoded (bounded)."""

    def __init__(self, client: Any, max_bytes: int) -> None:
        self.client = client
        self.max_bytes = max_bytes

    def read(self, ref: ObjectRef) -> bytes:
        kw: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kw["VersionId"] = ref.version_id
        try:
            obj = self.client.get_object(**kw)
            if int(obj.get("ContentLength") or 0) > self.max_bytes:
                raise BadInput(f"s3://{ref.bucket}/{ref.key} is {obj['ContentLength']} bytes, over {self.max_bytes}")
            data: bytes = obj["Body"].read(self.max_bytes + 1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise ObjectMissing(f"s3://{ref.bucket}/{ref.key}: {code}") from exc
            raise Transient(f"reading s3://{ref.bucket}/{ref.key}: {exc}", retry_after=5.0) from exc
        except BotoCoreError as exc:
            raise Transient(f"reading s3://{ref.bucket}/{ref.key}: {exc}", retry_after=5.0) from exc
        if len(data) > self.max_bytes:
            raise BadInput(f"s3://{ref.bucket}/{ref.key} is over {self.max_bytes} bytes")
        return maybe_gunzip(data, self.max_bytes)


class VisibilityExtender:
    """Keeps in-flight messages invisible while they are processed (every timeout/2)."""

    def __init__(self, client: Any, queue_url: str, handles: Sequence[str], timeout_s: int) -> None:
        self.client = client
        self.queue_url = queue_url
        self.handles = list(handles)
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-visibility", daemon=True)

    def __enter__(self) -> VisibilityExtender:
        if self.handles:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.timeout_s / 2):
            for start in range(0, len(self.handles), 10):
                entries = [
                    {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": self.timeout_s}
                    for n, h in enumerate(self.handles[start : start + 10])
                ]
                try:
                    self.client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
                    log.info("visibility extended", extra={"messages": len(entries), "seconds": self.timeout_s})
                except (ClientError, BotoCoreError) as exc:
                    log.warning("visibility extension failed", extra={"error": str(exc)})


class SqsSource:
    name = "sqs"

    def __init__(
        self,
        client: Any,
        queue_url: str,
        pipeline: Pipeline,
        objects: S3Objects,
        metrics: IngestMetrics,
        *,
        wait_s: int = 20,
        max_messages: int = 10,
        visibility_timeout_s: int = 120,
        clock: Clock = utcnow,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.pipeline = pipeline
        self.objects = objects
        self.metrics = metrics
        self.wait_s = wait_s
        self.max_messages = max_messages
        self.visibility_timeout_s = visibility_timeout_s
        self.clock = clock
        self.backoff = backoff or Backoff()

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``; the batch in hand is finished (and acknowledged) first."""
        log.info("polling", extra={"queue": self.queue_url, "wait_s": self.wait_s})
        while not stop.is_set():
            try:
                retry = self.poll_once()
            except Transient as exc:
                log.warning("sqs unavailable; backing off", extra={"error": str(exc)})
                retry = True
            if retry:
                if self.backoff.wait(stop):
                    break
            else:
                self.backoff.reset()
        log.info("stopped polling", extra={"queue": self.queue_url})

    def poll_once(self) -> bool:
        """One receive + process + acknowledge. True when something must be retried."""
        try:
            resp = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.max_messages,
                WaitTimeSeconds=self.wait_s,
                VisibilityTimeout=self.visibility_timeout_s,
                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise Transient(f"sqs receive: {exc}") from exc
        msgs: list[dict[str, Any]] = resp.get("Messages", [])
        if not msgs:
            return False
        received_at = self.clock()
        with VisibilityExtender(
            self.client, self.queue_url, [m["ReceiptHandle"] for m in msgs], self.visibility_timeout_s
        ):
            ok, failed = self._process(msgs, received_at)
        self._delete(ok, received_at)
        for m, r in failed:
            self._retry_later(m, r)
        return bool(failed)

    # ------------------------------------------------------------------ internals
    def _process(
        self, msgs: list[dict[str, Any]], received_at: datetime
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], Retry]]]:
        deliveries: list[Delivery] = []
        owner: list[int] = []
        early: dict[int, Retry] = {}
        for n, m in enumerate(msgs):
            try:
                ds = self._deliveries(m, received_at)
            except Transient as exc:
                early[n] = Retry(str(exc), exc.retry_after)
                continue
            deliveries.extend(ds)
            owner.extend([n] * len(ds))
        outcomes: list[Outcome] = self.pipeline.run(deliveries) if deliveries else []
        retry: dict[int, Retry] = dict(early)
        for n, o in zip(owner, outcomes, strict=True):
            if isinstance(o, Retry):
                retry.setdefault(n, o)
        ok = [m for n, m in enumerate(msgs) if n not in retry]
        return ok, [(msgs[n], r) for n, r in sorted(retry.items())]

    def _deliveries(self, m: dict[str, Any], received_at: datetime) -> list[Delivery]:
        body: bytes = m.get("Body", "").encode()
        attrs = m.get("Attributes", {})
        sent = from_millis(int(attrs["SentTimestamp"])) if "SentTimestamp" in attrs else None
        meta = {
            "message_id": str(m.get("MessageId", "")),
            "receive_count": str(attrs.get("ApproximateReceiveCount", "")),
        }
        origin = f"{self.queue_url}#{m.get('MessageId', '')}"
        refs = s3_objects(body)
        if refs is None:
            return [Delivery("sqs", origin, body, received_at, sent, "sqs", meta=meta)]
        if not refs:
            log.info("s3 notification without created objects; acknowledging", extra={"origin": origin})
            return []
        out: list[Delivery] = []
        for ref in refs:
            obj_origin = f"s3://{ref.bucket}/{ref.key}"
            ref_meta = meta | {"object": obj_origin} | ({"version_id": ref.version_id} if ref.version_id else {})
            try:
                data = self.objects.read(ref)
            except BadInput as exc:
                # The notification is the only thing we hold: archive it and dead-letter it.
                out.append(Delivery("sqs", origin, body, received_at, sent, "sqs", meta=ref_meta, defect=exc))
                continue
            out.append(Delivery("s3", obj_origin, data, received_at, ref.event_time or sent, "s3", meta=ref_meta))
        return out

    def _delete(self, msgs: list[dict[str, Any]], received_at: datetime) -> None:
        for start in range(0, len(msgs), 10):
            chunk = msgs[start : start + 10]
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)]
            try:
                resp = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                # Published but not deleted: the message comes again and is published again with
                # the same (identity, revision); evaluate drops the repeat.
                self.metrics.ack_failures.labels(self.name).inc(len(chunk))
                log.warning("delete failed; messages will be redelivered", extra={"error": str(exc)})
                continue
            for f in resp.get("Failed", []):
                self.metrics.ack_failures.labels(self.name).inc()
                log.warning("delete refused; message will be redelivered", extra={"error": f.get("Message", "")})
            now = self.clock()
            for _ in range(len(chunk) - len(resp.get("Failed", []))):
                self.metrics.acked(self.name, received_at, now)

    def _retry_later(self, m: dict[str, Any], r: Retry) -> None:
        delay = int(min(max(r.retry_after or 1.0, 0), 43200))
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=delay
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not shorten visibility; message returns after its timeout", extra={"error": str(exc)})
        log.warning(
            "message not acknowledged; will come again", extra={"message_id": m.get("MessageId"), "reason": r.reason}
        )
