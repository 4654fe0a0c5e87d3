"""A local fake of Google Cloud Pub/Sub's gRPC API, for the real google-cloud-pubsub client.

Point the client at it with ``PUBSUB_EMULATOR_HOST=127.0.0.1:<port>`` (the library's own switch:
an insecure channel, anonymous credentials). It implements, with the wire types shipped in
``google.pubsub_v1.types`` (the serializers the client's own gRPC transport uses):

- google.pubsub.v1.Subscriber: StreamingPull, Pull, Acknowledge, ModifyAckDeadline,
  CreateSubscription, GetSubscription, DeleteSubscription
- google.pubsub.v1.Publisher: CreateTopic, GetTopic, Publish

Semantics kept faithful where the ingest service depends on them: every delivery gets a new
ack id and a lease (the stream's ack deadline, then whatever ModifyAckDeadline sets); a
message not acked when its lease expires is delivered again (to any stream or Pull); a
modack to 0 s is a nack (redelivered at once); an ack with a stale ack id is ignored (at-least-
once, as without exactly-once delivery); StreamingPull honours max_outstanding_messages.

For tests and the demo: ``PubSubFake().start()``, ``create_topic``, ``create_subscription``,
``publish``, and ``stats``. Run standalone: ``python -m devtools.pubsub_fake --port 8085``.
Never imported by service code.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1.types import pubsub

Ctx = grpc.ServicerContext

log = logging.getLogger("devtools.pubsub_fake")

MIN_DEADLINE, MAX_DEADLINE = 10, 600


@dataclass
class _Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime
    ordering_key: str = ""
    acked: bool = False
    ack_id: str | None = None
    lease_until: float = 0.0
    stream: int | None = None
    deliveries: int = 0


@dataclass
class _Subscription:
    name: str
    topic: str
    ack_deadline_seconds: int
    messages: dict[str, _Message] = field(default_factory=dict)
    by_ack_id: dict[str, str] = field(default_factory=dict)
    acked: int = 0


@dataclass
class Stats:
    published: int
    acked: int
    unacked: int
    deliveries: dict[str, int]


class PubSubFake:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._topics: dict[str, list[str]] = {}
        self._subs: dict[str, _Subscription] = {}
        self._ids = itertools.count(1)
        self._streams = itertools.count(1)
        self._server: grpc.Server | None = None
        self._stopping = False
        self.port = 0

    # ------------------------------------------------------------------ test / demo API
    def start(self, port: int = 0) -> str:
        self._server = grpc.server(ThreadPoolExecutor(max_workers=32, thread_name_prefix="pubsub-fake"))
        self._server.add_generic_rpc_handlers((self._subscriber_handler(), self._publisher_handler()))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()
        return self.host

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float = 0.5) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(grace).wait(5)

    def create_topic(self, name: str) -> None:
        with self._cond:
            self._topics.setdefault(name, [])

    def create_subscription(self, name: str, topic: str, ack_deadline_seconds: int = 10) -> None:
        with self._cond:
            if topic not in self._topics:
                raise KeyError(f"topic {topic} not found")
            if name not in self._subs:
                self._subs[name] = _Subscription(name, topic, _clamp(ack_deadline_seconds or MIN_DEADLINE))
                self._topics[topic].append(name)

    def publish(self, topic: str, data: bytes, attributes: dict[str, str] | None = None, ordering_key: str = "") -> str:
        with self._cond:
            if topic not in self._topics:
                raise KeyError(f"topic {topic} not found")
            mid = str(next(self._ids))
            now = datetime.now(UTC)
            for sub in self._topics[topic]:
                self._subs[sub].messages[mid] = _Message(mid, bytes(data), dict(attributes or {}), now, ordering_key)
            self._cond.notify_all()
            return mid

    def stats(self, subscription: str) -> Stats:
        with self._cond:
            s = self._subs[subscription]
            return Stats(
                published=len(s.messages),
                acked=s.acked,
                unacked=sum(1 for m in s.messages.values() if not m.acked),
                deliveries={m.message_id: m.deliveries for m in s.messages.values()},
            )

    def wait_acked(self, subscription: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._subs[subscription].acked < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    # ------------------------------------------------------------------ core (lock held)
    def _sub(self, name: str, context: Ctx) -> _Subscription:
        s = self._subs.get(name)
        if s is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={name}).")
        assert s is not None
        return s

    def _available(self, s: _Subscription, now: float) -> Iterator[_Message]:
        for m in s.messages.values():
            if not m.acked and (m.ack_id is None or m.lease_until <= now):
                yield m

    def _lease(
        self, s: _Subscription, m: _Message, seconds: int, stream: int | None, now: float
    ) -> pubsub.ReceivedMessage:
        if m.ack_id is not None:
            s.by_ack_id.pop(m.ack_id, None)
        m.ack_id = f"{s.name}:{m.message_id}:{uuid.uuid4().hex[:12]}"
        s.by_ack_id[m.ack_id] = m.message_id
        m.lease_until = now + seconds
        m.stream = stream
        m.deliveries += 1
        return pubsub.ReceivedMessage(
            ack_id=m.ack_id,
            message=pubsub.PubsubMessage(
                data=m.data, attributes=m.attributes, message_id=m.message_id, publish_time=m.publish_time,
                ordering_key=m.ordering_key,
            ),
        )  # fmt: skip

    def _ack(self, s: _Subscription, ack_ids: Any) -> None:
        for a in ack_ids:
            mid = s.by_ack_id.pop(a, None)
            if mid is None:
                continue  # stale (redelivered since) or unknown: ignored, as without exactly-once delivery
            m = s.messages[mid]
            if not m.acked:
                m.acked = True
                s.acked += 1
        self._cond.notify_all()

    def _modack(self, s: _Subscription, ack_ids: Any, seconds: Any, context: Ctx | None) -> None:
        now = self._clock()
        for a, sec in zip(ack_ids, seconds, strict=True):
            if not 0 <= sec <= MAX_DEADLINE and context is not None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid ack deadline {sec}")
            mid = s.by_ack_id.get(a)
            if mid is None:
                continue
            m = s.messages[mid]
            if m.acked:
                continue
            m.lease_until = now + sec  # 0 = nack: available again now
            if sec == 0:
                s.by_ack_id.pop(a, None)
                m.ack_id = None
        self._cond.notify_all()

    # ------------------------------------------------------------------ Subscriber RPCs
    def _streaming_pull(
        self, requests: Iterator[pubsub.StreamingPullRequest], context: Ctx
    ) -> Iterator[pubsub.StreamingPullResponse]:
        try:
            first = next(requests)
        except StopIteration:
            return
        with self._cond:
            s = self._sub(first.subscription, context)
            if not MIN_DEADLINE <= first.stream_ack_deadline_seconds <= MAX_DEADLINE:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid stream_ack_deadline_seconds {first.stream_ack_deadline_seconds}",
                )
            stream = next(self._streams)
            state = {"deadline": first.stream_ack_deadline_seconds, "open": True}
            max_out = first.max_outstanding_messages or 1000
            self._ack(s, first.ack_ids)
            self._modack(s, first.modify_deadline_ack_ids, first.modify_deadline_seconds, context)

        def read() -> None:
            try:
                for req in requests:
                    with self._cond:
                        if req.stream_ack_deadline_seconds:
                            state["deadline"] = _clamp(req.stream_ack_deadline_seconds)
                        self._ack(s, req.ack_ids)
                        if len(req.modify_deadline_ack_ids) == len(req.modify_deadline_seconds):
                            self._modack(s, req.modify_deadline_ack_ids, req.modify_deadline_seconds, None)
            except grpc.RpcError:
                pass
            finally:
                with self._cond:
                    state["open"] = False
                    self._cond.notify_all()

        threading.Thread(target=read, name=f"pubsub-fake-stream-{stream}", daemon=True).start()
        log.info("stream %s opened on %s", stream, s.name)
        while True:
            with self._cond:
                if self._stopping or not state["open"] or not context.is_active():
                    break
                now = self._clock()
                out_now = sum(
                    1
                    for m in s.messages.values()
                    if m.stream == stream and not m.acked and m.ack_id and m.lease_until > now
                )
                batch = []
                for m in self._available(s, now):
                    if out_now + len(batch) >= max_out:
                        break
                    batch.append(self._lease(s, m, int(state["deadline"]), stream, now))
                if not batch:
                    self._cond.wait(0.2)
                    continue
            yield pubsub.StreamingPullResponse(
                received_messages=batch,
                subscription_properties=pubsub.StreamingPullResponse.SubscriptionProperties(
                    exactly_once_delivery_enabled=False, message_ordering_enabled=False
                ),
            )
        log.info("stream %s closed", stream)

    def _pull(self, req: pubsub.PullRequest, context: Ctx) -> pubsub.PullResponse:
        if req.max_messages <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be positive")
        deadline = time.monotonic() + 2.0
        with self._cond:
            s = self._sub(req.subscription, context)
            while True:
                now = self._clock()
                out = [
                    self._lease(s, m, s.ack_deadline_seconds, None, now)
                    for m in itertools.islice(self._available(s, now), req.max_messages)
                ]
                if out or time.monotonic() >= deadline or self._stopping:
                    return pubsub.PullResponse(received_messages=out)
                self._cond.wait(0.2)

    def _acknowledge(self, req: pubsub.AcknowledgeRequest, context: Ctx) -> empty_pb2.Empty:
        with self._cond:
            self._ack(self._sub(req.subscription, context), req.ack_ids)
        return empty_pb2.Empty()

    def _modify_ack_deadline(self, req: pubsub.ModifyAckDeadlineRequest, context: Ctx) -> empty_pb2.Empty:
        with self._cond:
            s = self._sub(req.subscription, context)
            self._modack(s, req.ack_ids, [req.ack_deadline_seconds] * len(req.ack_ids), context)
        return empty_pb2.Empty()

    def _create_subscription(self, req: pubsub.Subscription, context: Ctx) -> pubsub.Subscription:
        with self._cond:
            if req.name in self._subs:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            if req.topic not in self._topics:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={req.topic}).")
        self.create_subscription(req.name, req.topic, req.ack_deadline_seconds or MIN_DEADLINE)
        return self._get_subscription(pubsub.GetSubscriptionRequest(subscription=req.name), context)

    def _get_subscription(self, req: pubsub.GetSubscriptionRequest, context: Ctx) -> pubsub.Subscription:
        with self._cond:
            s = self._sub(req.subscription, context)
            return pubsub.Subscription(name=s.name, topic=s.topic, ack_deadline_seconds=s.ack_deadline_seconds)

    def _delete_subscription(self, req: pubsub.DeleteSubscriptionRequest, context: Ctx) -> empty_pb2.Empty:
        with self._cond:
            s = self._sub(req.subscription, context)
            del self._subs[s.name]
            self._topics[s.topic].remove(s.name)
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ Publisher RPCs
    def _create_topic(self, req: pubsub.Topic, context: Ctx) -> pubsub.Topic:
        with self._cond:
            if req.name in self._topics:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            self._topics[req.name] = []
        return pubsub.Topic(name=req.name)

    def _get_topic(self, req: pubsub.GetTopicRequest, context: Ctx) -> pubsub.Topic:
        with self._cond:
            if req.topic not in self._topics:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={req.topic}).")
        return pubsub.Topic(name=req.topic)

    def _publish(self, req: pubsub.PublishRequest, context: Ctx) -> pubsub.PublishResponse:
        with self._cond:
            if req.topic not in self._topics:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={req.topic}).")
        ids = [self.publish(req.topic, m.data, dict(m.attributes), m.ordering_key) for m in req.messages]
        return pubsub.PublishResponse(message_ids=ids)

    # ------------------------------------------------------------------ wiring
    def _subscriber_handler(self) -> grpc.GenericRpcHandler:
        def unary(fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.deserialize, response_serializer=resp
            )

        empty = empty_pb2.Empty.SerializeToString
        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Subscriber",
            {
                "StreamingPull": grpc.stream_stream_rpc_method_handler(
                    self._streaming_pull,
                    request_deserializer=pubsub.StreamingPullRequest.deserialize,
                    response_serializer=pubsub.StreamingPullResponse.serialize,
                ),
                "Pull": unary(self._pull, pubsub.PullRequest, pubsub.PullResponse.serialize),
                "Acknowledge": unary(self._acknowledge, pubsub.AcknowledgeRequest, empty),
                "ModifyAckDeadline": unary(self._modify_ack_deadline, pubsub.ModifyAckDeadlineRequest, empty),
                "CreateSubscription": unary(
                    self._create_subscription, pubsub.Subscription, pubsub.Subscription.serialize
                ),
                "GetSubscription": unary(
                    self._get_subscription, pubsub.GetSubscriptionRequest, pubsub.Subscription.serialize
                ),
                "DeleteSubscription": unary(self._delete_subscription, pubsub.DeleteSubscriptionRequest, empty),
            },
        )

    def _publisher_handler(self) -> grpc.GenericRpcHandler:
        def unary(fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.deserialize, response_serializer=resp
            )

        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher",
            {
                "CreateTopic": unary(self._create_topic, pubsub.Topic, pubsub.Topic.serialize),
                "GetTopic": unary(self._get_topic, pubsub.GetTopicRequest, pubsub.Topic.serialize),
                "Publish": unary(self._publish, pubsub.PublishRequest, pubsub.PublishResponse.serialize),
            },
        )


def _clamp(seconds: int) -> int:
    return max(MIN_DEADLINE, min(MAX_DEADLINE, int(seconds)))


def main() -> None:
    ap = argparse.ArgumentParser(description="Local fake of the Google Pub/Sub gRPC API.")
    ap.add_argument("--port", type=int, default=8085)
    ap.add_argument("--topic", action="append", default=[], help="projects/P/topics/T to create")
    ap.add_argument("--subscription", action="append", default=[], help="SUB=TOPIC to create")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    fake = PubSubFake()
    for t in args.topic:
        fake.create_topic(t)
    for spec in args.subscription:
        sub, _, topic = spec.partition("=")
        fake.create_subscription(sub, topic)
    print(f"PUBSUB_EMULATOR_HOST={fake.start(args.port)}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    fake.stop()


if __name__ == "__main__":
    main()
