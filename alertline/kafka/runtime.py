"""The one service runtime: consume a batch -> hand typed records to a pure handler ->
produce results -> commit, exactly once within Kafka.

Each batch is one Kafka transaction holding the handler outputs, dead letters, state
changes and the input offsets. A crash anywhere before the commit aborts all of it and the
batch is consumed again; a commit makes all of it visible to ``read_committed`` readers at
once. Infrastructure failures back off and retry without committing past unprocessed input.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alertline.avro import Codec
from alertline.clock import Clock, utcnow
from alertline.errors import BadInput, Transient
from alertline.http import Health, HttpServer, Route
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Handler, Output, PartitionState, Record

log = logging.getLogger("alertline.runtime")

TP = tuple[str, int]
_STATELESS = PartitionState()
MAX_ERROR_MESSAGE = 2000


@dataclass(frozen=True)
class Stage:
    """What a service is, as far as the runtime cares."""

    service: str
    group_id: str
    inputs: Sequence[str]
    input_schema: str | None
    handler: Handler
    dlq_topic: str
    state_topic: str | None = None
    state_schema: str | None = None
    tick: Callable[[Context], Iterable[Output]] | None = None
    tick_interval_s: float = 60.0
    # Called with the decoded records of a whole batch before any handler runs (outside the
    # transaction), so a stage can do slow I/O for the batch concurrently; the handler then
    # reads the results. Advisory: records it cannot see still reach the handler.
    prepare: Callable[[Sequence[Record]], None] | None = None


class Metrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        lbl = ["service", "topic"]
        self.service = service
        self.consumed = Counter("alertline_consumed", "Records consumed.", lbl, registry=registry)
        self.produced = Counter("alertline_produced", "Records produced.", lbl, registry=registry)
        self.dead = Counter("alertline_dead_lettered", "Records sent to the dead-letter topic.", lbl, registry=registry)
        self.retries = Counter(
            "alertline_retries", "Back-offs after transient failures.", ["service", "reason"], registry=registry
        )
        self.aborts = Counter("alertline_transactions_aborted", "Aborted transactions.", ["service"], registry=registry)
        self.commits = Counter(
            "alertline_transactions_committed", "Committed transactions.", ["service"], registry=registry
        )
        self.latency = Histogram(
            "alertline_processing_seconds", "Handler time per record.", ["service"], registry=registry,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
        )  # fmt: skip
        self.lag = Gauge(
            "alertline_consumer_lag",
            "Records behind the end of the partition.",
            ["service", "topic", "partition"],
            registry=registry,
        )
        self.state_keys = Gauge("alertline_state_keys", "Keys held in state.", ["service"], registry=registry)


@dataclass
class _Batch:
    start: dict[TP, int] = field(default_factory=dict)
    next: dict[TP, int] = field(default_factory=dict)
    blocked: dict[TP, tuple[int, float]] = field(default_factory=dict)
    outputs: int = 0


class Runner:
    """Runs one Stage until stopped (SIGTERM/SIGINT or ``stop()``)."""

    def __init__(
        self,
        stage: Stage,
        kafka: KafkaSettings,
        runtime: RuntimeSettings,
        codec: Codec,
        registry: CollectorRegistry | None = None,
        clock: Clock = utcnow,
        routes: dict[tuple[str, str], Route] | None = None,
    ) -> None:
        self.stage = stage
        self.kafka = kafka
        self.rt = runtime
        self.codec = codec
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, stage.service)
        self.routes = routes or {}
        self._stop = threading.Event()
        self._heartbeat = time.monotonic()
        self._ready = False
        self._states: dict[int, PartitionState] = {}
        self._paused: dict[TP, float] = {}
        self._last_tick = 0.0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.http: HttpServer | None = None
        self._latency = self.metrics.latency.labels(stage.service)
        self._produced: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.http = HttpServer(
            self.rt.http_host, self.rt.http_port, self.registry,
            Health(live=self._live, ready=lambda: self._ready), dict(self.routes),
        )  # fmt: skip
        port = self.http.start()
        log.info("starting", extra={"http_port": port, "inputs": list(self.stage.inputs), "group": self.stage.group_id})
        try:
            self._producer = self._new_producer()
            self._consumer = self._new_consumer()
            self._consumer.subscribe(
                list(self.stage.inputs), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
            self._ready = True
            while not self._stop.is_set():
                self._heartbeat = time.monotonic()
                self._resume_due()
                msgs = self._next_batch()
                if msgs:
                    self._run_batch(msgs)
                if self.stage.tick and time.monotonic() - self._last_tick >= self.stage.tick_interval_s:
                    self._run_tick()
        finally:
            self._ready = False
            log.info("stopping: draining")
            if self._consumer is not None:
                self._consumer.close()
            if self._producer is not None:
                self._producer.flush(10)
            self.http.stop()
            log.info("stopped")

    def _next_batch(self) -> list[Message]:
        """Wait up to ``poll_timeout_s`` for the first record, then at most ``batch_linger_s`` for
        the rest of a batch: a trickle is handled at once instead of waiting out the poll
        timeout for a batch that will not fill; under load the batch fills from the fetched
        queue without waiting."""
        assert self._consumer is not None
        first = self._consumer.consume(1, self.rt.poll_timeout_s)
        if not first or self.rt.batch_size == 1:
            return first
        return first + self._consumer.consume(self.rt.batch_size - 1, self.rt.batch_linger_s)

    def _live(self) -> bool:
        return time.monotonic() - self._heartbeat < 300

    # ------------------------------------------------------------------ clients
    def _new_producer(self) -> Producer:
        conf = self.kafka.client_config() | {
            "transactional.id": f"{self.stage.group_id}-{self.rt.instance_id}",
            "transaction.timeout.ms": self.kafka.transaction_timeout_ms,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "message.max.bytes": 4 * 1024 * 1024,
        }
        producer = Producer(conf)
        self._retry_forever("init_transactions", lambda: producer.init_transactions(30))
        return producer

    def _new_consumer(self) -> Consumer:
        conf = self.kafka.client_config() | {
            "group.id": self.stage.group_id,
            "session.timeout.ms": self.rt.session_timeout_ms,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "statistics.interval.ms": 15000,
            "stats_cb": self._on_stats,
            "max.poll.interval.ms": 600000,
        }
        if self.rt.static_membership:
            # A restarted replica with the same stable id takes its partitions back without a rebalance.
            conf["group.instance.id"] = f"{self.stage.group_id}-{self.rt.instance_id}"
        return Consumer(conf)

    def _retry_forever(self, what: str, fn: Callable[[], Any]) -> Any:
        delay = self.rt.backoff_initial_s
        while True:
            try:
                return fn()
            except KafkaException as exc:
                if self._stop.is_set():
                    raise
                log.warning("kafka call failed; retrying", extra={"call": what, "error": str(exc), "retry_in_s": delay})
                self.metrics.retries.labels(self.stage.service, what).inc()
                self._sleep(delay)
                delay = min(delay * 2, self.rt.backoff_max_s)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # ------------------------------------------------------------------ rebalance + state
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned", extra={"partitions": ",".join(f"{p.topic}[{p.partition}]" for p in partitions)})
        if self.stage.state_topic:
            wanted = sorted({p.partition for p in partitions} - set(self._states))
            for part, st in self._restore(wanted).items():
                self._states[part] = st
            self.metrics.state_keys.labels(self.stage.service).set(sum(len(s.committed) for s in self._states.values()))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked", extra={"partitions": ",".join(f"{p.topic}[{p.partition}]" for p in partitions)})
        for p in partitions:
            self._states.pop(p.partition, None)
            self._paused.pop((p.topic, p.partition), None)

    def _restore(self, partitions: list[int]) -> dict[int, PartitionState]:
        """Read the state topic's partitions (same numbers as the input's) to their end."""
        out = {p: self._new_state() for p in partitions}
        if not partitions:
            return out
        assert self.stage.state_topic and self.stage.state_schema
        started = time.monotonic()
        c = Consumer(self.kafka.client_config() | {
            "group.id": f"{self.stage.group_id}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        })  # fmt: skip
        try:
            c.assign([TopicPartition(self.stage.state_topic, p, OFFSET_BEGINNING) for p in partitions])
            remaining = set(partitions)
            n = 0
            while remaining:
                for m in c.consume(1000, 1.0):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(m.partition())
                            continue
                        raise KafkaException(err)
                    key = (m.key() or b"").decode()
                    part, value = m.partition() or 0, m.value()
                    if value is None:
                        out[part].committed.pop(key, None)
                    else:
                        self.codec.decode(self.stage.state_schema, value, self.stage.state_topic)  # valid?
                        out[part].committed[key] = bytes(value)
                    n += 1
        finally:
            c.close()
        log.info(
            "state restored",
            extra={
                "partitions": ",".join(map(str, partitions)),
                "records": n,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return out

    def state(self, partition: int) -> PartitionState:
        return self._states.setdefault(partition, self._new_state())

    def _new_state(self) -> PartitionState:
        """Committed state kept Avro-encoded (decoded on read) when the stage has a state schema."""
        schema, name = self.stage.state_schema, self.stage.state_topic
        if schema is None:
            return PartitionState()
        codec = self.codec
        return PartitionState(
            pack=lambda v: codec.encode(schema, v, name or ""), unpack=lambda b: codec.decode(schema, b, name or "")
        )

    # ------------------------------------------------------------------ batch
    def _run_batch(self, msgs: list[Message]) -> None:
        assert self._consumer is not None and self._producer is not None
        batch = _Batch()
        decoded = self._prepare(msgs) if self.stage.prepare is not None else {}
        try:
            self._producer.begin_transaction()
            self._process(msgs, batch, decoded)
            if batch.next:
                offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next.items()]
                self._producer.send_offsets_to_transaction(offsets, self._consumer.consumer_group_metadata(), 30)
            self._producer.commit_transaction(60)
        except (KafkaException, BufferError) as exc:
            self._recover(batch, exc)
            return
        for st in self._states.values():
            st.commit_batch()
        self.metrics.commits.labels(self.stage.service).inc()
        for tp, (offset, delay) in batch.blocked.items():
            self._pause(tp, offset, delay)

    def _prepare(self, msgs: list[Message]) -> dict[tuple[str, int, int], Any]:
        """Decode the batch once and hand it to ``stage.prepare``; undecodable records are left
        to the per-record path, which dead-letters them with their cause."""
        assert self.stage.prepare is not None
        decoded: dict[tuple[str, int, int], Any] = {}
        records: list[Record] = []
        for m in msgs:
            if m.error() is not None:
                continue
            topic, part, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
            value = m.value()
            if self.stage.input_schema is not None:
                if value is None:
                    continue
                try:
                    value = self.codec.decode(self.stage.input_schema, value, topic)
                except Exception:  # noqa: BLE001, S112 - dead-lettered with its cause in _process
                    continue
                decoded[(topic, part, offset)] = value
            records.append(Record(topic, part, offset, m.key(), value, _headers(m), m.timestamp()[1]))
        try:
            self.stage.prepare(records)
        except Exception:
            log.exception("prepare failed; handlers run without it", extra={"records": len(records)})
        return decoded

    def _process(
        self, msgs: list[Message], batch: _Batch, decoded: dict[tuple[str, int, int], Any] | None = None
    ) -> None:
        svc = self.stage.service
        counts: dict[str, int] = defaultdict(int)
        observe = self._latency.observe
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error", extra={"error": str(err)})
                continue
            topic, part, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
            tp = (topic, part)
            batch.start.setdefault(tp, offset)
            if tp in batch.blocked:
                continue
            counts[topic] += 1
            ctx = Context(
                now=self.clock, state=self.state(part) if self.stage.state_topic else _STATELESS, partition=part
            )
            t0 = time.perf_counter()
            try:
                value = m.value()
                if self.stage.input_schema is not None:
                    if value is None:
                        raise BadInput("empty record value")
                    pre = decoded.get((topic, part, offset)) if decoded else None
                    value = pre if pre is not None else self.codec.decode(self.stage.input_schema, value, topic)
                rec = Record(topic, part, offset, m.key(), value, _headers(m), m.timestamp()[1])
                outs = list(self.stage.handler(rec, ctx))
            except Transient as exc:
                ctx.state.end_record(ok=False)
                delay = exc.retry_after if exc.retry_after is not None else self.rt.backoff_initial_s
                batch.blocked[tp] = (offset, delay)
                self.metrics.retries.labels(svc, "handler").inc()
                log.warning(
                    "transient failure; will retry",
                    extra={"topic": topic, "partition": part, "offset": offset, "error": str(exc), "retry_in_s": delay},
                )
                continue
            except Exception as exc:  # noqa: BLE001 - anything else is this record's fault: dead-letter it
                ctx.state.end_record(ok=False)
                self._dead_letter(m, exc)
                batch.next[tp] = offset + 1
                continue
            ctx.state.end_record(ok=True)
            for o in outs:
                self._produce(o)
            batch.outputs += len(outs)
            batch.next[tp] = offset + 1
            observe(time.perf_counter() - t0)
        self._write_state()
        for topic, n in counts.items():
            self.metrics.consumed.labels(svc, topic).inc(n)
        for topic, n in self._produced.items():
            self.metrics.produced.labels(svc, topic).inc(n)
        self._produced.clear()

    def _write_state(self) -> None:
        if not self.stage.state_topic:
            return
        for part, st in self._states.items():
            for key, value in st.pending().items():
                self._produce(
                    Output(self.stage.state_topic, value, key=key, schema=self.stage.state_schema, partition=part)
                )

    def _produce(self, o: Output) -> None:
        assert self._producer is not None
        if o.value is None or isinstance(o.value, bytes):
            data = o.value
        else:
            assert o.schema is not None, "a mapping value needs a schema"
            data = self.codec.encode(o.schema, o.value, o.topic)
        key = o.key.encode() if isinstance(o.key, str) else o.key
        kw: dict[str, Any] = {}
        if o.partition is not None:
            kw["partition"] = o.partition
        if o.headers:
            kw["headers"] = list(o.headers.items())
        while True:
            try:
                self._producer.produce(o.topic, data, key, **kw)
                break
            except BufferError:
                self._producer.poll(0.1)
        self._produced[o.topic] = self._produced.get(o.topic, 0) + 1

    def _dead_letter(self, m: Message, exc: BaseException) -> None:
        cls = f"{type(exc).__module__}.{type(exc).__qualname__}"
        msg = str(exc)[:MAX_ERROR_MESSAGE]
        log.error(
            "dead-lettered",
            extra={
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "error_class": cls,
                "error": msg,
            },
        )
        headers = _headers(m)
        envelope = {
            "service": self.stage.service, "source": m.topic(), "partition": m.partition(), "offset": m.offset(),
            "key": m.key(), "value": m.value(), "headers": headers, "error_class": cls, "error_message": msg,
            "raw_uri": None, "failed_at": self.clock(),
        }  # fmt: skip
        self._produce(
            Output(
                self.stage.dlq_topic,
                envelope,
                key=m.key(),
                schema="dead_letter",
                headers=dlq_headers(self.stage.service, m.topic() or "", m.partition(), m.offset(), cls, msg),
            )
        )
        self.metrics.dead.labels(self.stage.service, m.topic()).inc()

    def _recover(self, batch: _Batch, exc: BaseException) -> None:
        """Abort, rewind every partition of the batch, back off; recreate the producer if fenced/fatal."""
        assert self._consumer is not None and self._producer is not None
        self.metrics.aborts.labels(self.stage.service).inc()
        fatal = isinstance(exc, KafkaException) and exc.args[0].fatal()
        log.warning("batch failed; aborting and retrying", extra={"error": str(exc), "fatal": fatal})
        for st in self._states.values():
            st.abort_batch()
        if not fatal:
            try:
                self._producer.abort_transaction(30)
            except KafkaException as abort_exc:
                fatal = fatal or abort_exc.args[0].fatal()
                log.warning("abort failed", extra={"error": str(abort_exc)})
        if fatal:
            self._producer = self._new_producer()
        self._rewind(batch.start)
        self.metrics.retries.labels(self.stage.service, "transaction").inc()
        self._sleep(self.rt.backoff_initial_s)

    def _rewind(self, start: dict[TP, int]) -> None:
        assert self._consumer is not None
        for (t, p), o in start.items():
            try:
                self._consumer.seek(TopicPartition(t, p, o))
            except KafkaException as exc:
                # Not assigned any more: the new owner starts from the committed offset.
                log.info("rewind skipped", extra={"topic": t, "partition": p, "error": str(exc)})

    def _pause(self, tp: TP, offset: int, delay: float) -> None:
        assert self._consumer is not None
        tpo = TopicPartition(tp[0], tp[1], offset)
        try:
            self._consumer.pause([tpo])
            self._consumer.seek(tpo)
            self._paused[tp] = time.monotonic() + delay
        except KafkaException as exc:
            log.info("pause skipped", extra={"topic": tp[0], "partition": tp[1], "error": str(exc)})

    def _resume_due(self) -> None:
        if not self._paused or self._consumer is None:
            return
        now = time.monotonic()
        due = [tp for tp, at in self._paused.items() if at <= now]
        if due:
            self._consumer.resume([TopicPartition(t, p) for t, p in due])
            for tp in due:
                del self._paused[tp]

    # ------------------------------------------------------------------ ticks
    def _run_tick(self) -> None:
        """Run the stage's periodic task for each owned partition, one transaction each."""
        assert self.stage.tick and self._producer is not None
        self._last_tick = time.monotonic()
        for part in sorted(self._states):
            st = self._states[part]
            try:
                self._producer.begin_transaction()
                ctx = Context(now=self.clock, state=st, partition=part)
                try:
                    outs = list(self.stage.tick(ctx))
                except Transient as exc:
                    st.end_record(ok=False)
                    self._producer.abort_transaction(30)
                    st.abort_batch()
                    log.warning("tick postponed", extra={"partition": part, "error": str(exc)})
                    continue
                st.end_record(ok=True)
                for o in outs:
                    self._produce(o)
                for key, value in st.pending().items():
                    self._produce(
                        Output(
                            self.stage.state_topic or "", value, key=key, schema=self.stage.state_schema, partition=part
                        )
                    )
                self._producer.commit_transaction(60)
                st.commit_batch()
            except KafkaException as exc:
                self._recover(_Batch(), exc)

    # ------------------------------------------------------------------ stats
    def _on_stats(self, raw: str) -> None:
        try:
            stats = json.loads(raw)
            for topic, t in stats.get("topics", {}).items():
                for pid, p in t.get("partitions", {}).items():
                    lag = p.get("consumer_lag_stored", p.get("consumer_lag", -1))
                    if pid != "-1" and lag is not None and lag >= 0:
                        self.metrics.lag.labels(self.stage.service, topic, pid).set(lag)
        except (ValueError, AttributeError) as exc:
            log.debug("bad stats", extra={"error": str(exc)})


def _headers(m: Message) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    raw = m.headers() or []
    for k, v in raw.items() if isinstance(raw, dict) else raw:
        out[k] = v.encode() if isinstance(v, str) else (v or b"")
    return out


def dlq_headers(
    service: str, topic: str, partition: int | None, offset: int | None, cls: str, msg: str
) -> dict[str, bytes]:
    return {
        "alertline.service": service.encode(),
        "alertline.source.topic": topic.encode(),
        "alertline.source.partition": str(partition if partition is not None else "").encode(),
        "alertline.source.offset": str(offset if offset is not None else "").encode(),
        "alertline.error.class": cls.encode(),
        "alertline.error.message": msg.encode("utf-8", "replace")[:MAX_ERROR_MESSAGE],
    }
