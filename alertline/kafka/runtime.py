"""The one service runtime: consume a batch -> hand typed records to a pure handler ->
produce results -> commit, exactly once within Kafka.

Each batch is one Kafka transaction holding the handler outputs, dead letters, state
changes and the input offsets. A crash anywhere before the commit aborts all of it and the
batch is consumed again; a commit makes all of it visible to ``read_committed`` readers at
once. Infrastructure failures back off and retry without committing past unprocessed input.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import signal
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from alertline.avro import Codec, LazyReader, LazyValue
from alertline.clock import Clock, utcnow
from alertline.errors import BadInput, Transient
from alertline.http import Health, HttpServer, Route
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Handler, Output, PartitionState, Record, headers_of

log = logging.getLogger("alertline.runtime")

TP = tuple[str, int]
_Encoded = tuple[str, bytes | None, bytes | None, int | None, Mapping[str, bytes] | None]
_STATELESS = PartitionState()
MAX_ERROR_MESSAGE = 2000
COMMIT_STUCK_S = 100.0  # send_offsets (30 s) + commit (60 s) + margin
GROW = 4  # a batch grows to at most this many times batch_size while the last commit finishes


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


class BatchedHistogram:
    """A Prometheus histogram with one ``service`` label, fed a batch of observations at a time.

    prometheus_client's ``Histogram.observe`` takes a lock per call (about 2 µs); the runtime
    buckets each record's time in plain locals and adds the batch here once.
    """

    def __init__(self, name: str, doc: str, service: str, registry: CollectorRegistry, bounds: Sequence[float]) -> None:
        self.name, self.doc, self.service = name, doc, service
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def add(self, counts: Sequence[int], total: float) -> None:
        """Add per-bucket counts (as ``bisect_left(bounds, value)`` indexes them) and their sum."""
        with self._lock:
            for i, n in enumerate(counts):
                self._counts[i] += n
            self._sum += total

    def observe(self, value: float) -> None:
        counts = [0] * len(self._counts)
        counts[bisect_left(self.bounds, value)] = 1
        self.add(counts, value)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        family = HistogramMetricFamily(self.name, self.doc, labels=["service"])
        family.add_metric([self.service], buckets, total)
        yield family


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
        self.latency = BatchedHistogram(
            "alertline_processing_seconds", "Handler time per record.", service, registry,
            (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
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
    # What the batch's transaction will produce (outputs, dead letters, state), encoded, in order.
    pending: list[_Encoded] = field(default_factory=list)
    produced: dict[str, int] = field(default_factory=dict)  # per topic, once sent


class _Commit:
    """A batch's transaction finishing (offsets + commit) on the committer thread, while the
    main thread runs the handlers of the next batch. librdkafka releases the GIL while it waits."""

    def __init__(self, producer: Producer, batch: _Batch, offsets: list[TopicPartition], group: Any) -> None:
        self.batch = batch
        self.error: BaseException | None = None
        self._args = (producer, offsets, group)
        self._done = threading.Event()

    def run(self) -> None:
        producer, offsets, group = self._args
        try:
            if offsets:
                producer.send_offsets_to_transaction(offsets, group, 30)
            producer.commit_transaction(60)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which recovers or re-raises
            self.error = exc
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> BaseException | None:
        """The commit's error, if any. Both calls have timeouts, but librdkafka can block in
        send_offsets_to_transaction past its timeout while the group coordinator is away
        (librdkafka#5456); a commit that does not return in ``timeout`` is a fatal error, so the
        producer is replaced, which fences the stuck one."""
        if not self._done.wait(timeout):
            log.error("transaction commit is stuck; replacing the producer", extra={"waited_s": timeout})
            return KafkaException(KafkaError(KafkaError._TIMED_OUT, "transaction commit is stuck", fatal=True))
        return self.error


class _Committer:
    """One long-lived thread that finishes commits in order (starting a thread per batch cost
    more than the rest of the runtime's per-batch work). A committer whose commit got stuck is
    closed and replaced; its thread ends when librdkafka lets go of it."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Commit | None] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="alertline-commit", daemon=True).start()

    def submit(self, job: _Commit) -> _Commit:
        self._jobs.put(job)
        return job

    def close(self) -> None:
        self._jobs.put(None)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.run()


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
        self._produced: dict[str, int] = {}
        self._in_txn = False
        self._inflight: _Commit | None = None
        self._committer: _Committer | None = None
        self._revocations = 0  # partitions revoked so far (a batch that straddles one is redone)
        # Stateful stages commit in line: the next batch's handlers must see this one's state.
        self._pipelined = runtime.pipeline_commits and stage.state_topic is None and stage.tick is None

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
            _tune_gc(self.rt.gc_threshold)
            while not self._stop.is_set():
                self._heartbeat = time.monotonic()
                self._resume_due()
                revocations = self._revocations
                msgs = self._next_batch()
                if msgs:
                    self._run_batch(msgs, revocations)
                elif self._inflight is not None:
                    self._settle()  # idle: finish the open commit now
                if self.stage.tick and time.monotonic() - self._last_tick >= self.stage.tick_interval_s:
                    self._settle()
                    self._run_tick()
        finally:
            self._ready = False
            log.info("stopping: draining")
            try:
                self._settle()
            except Exception:
                log.exception("last commit failed")
            if self._consumer is not None:
                self._consumer.close()
            if self._producer is not None:
                self._producer.flush(10)
            if self._committer is not None:
                self._committer.close()
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
        # Right after a commit the coordinator answers the next transaction's first request with
        # CONCURRENT_TRANSACTIONS until its markers are written; at librdkafka's default 100 ms
        # back-off that retry took most of each batch's time. The back-off still grows
        # exponentially (to retry.backoff.max.ms) when the broker is really away; extra may override.
        defaults = {"retry.backoff.ms": 5}
        conf = (
            defaults
            | self.kafka.client_config()
            | {
                "transactional.id": f"{self.stage.group_id}-{self.rt.instance_id}",
                "transaction.timeout.ms": self.kafka.transaction_timeout_ms,
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "message.max.bytes": 4 * 1024 * 1024,
            }
        )
        producer = Producer(conf)
        self._retry_forever("init_transactions", lambda: producer.init_transactions(30))
        return producer

    def _new_consumer(self) -> Consumer:
        conf = (
            self.kafka.client_config()
            | {
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
            | self._fetch_bounds()
        )
        if self.rt.static_membership:
            # A restarted replica with the same stable id takes its partitions back without a rebalance.
            conf["group.instance.id"] = f"{self.stage.group_id}-{self.rt.instance_id}"
        return Consumer(conf)

    def _fetch_bounds(self) -> dict[str, Any]:
        """How much a consumer fetches ahead of the handler (decision 0011).

        librdkafka prefetches up to 64 MB (+ a 50 MB fetch) by default: with large records and a
        backlog that alone is most of a service's memory; a few batches ahead is all a stage
        needs. The queue bound is checked before a fetch, and each partition's fetch (1 MB by
        default) arrives compressed: a consumer of 12 partitions of compressible records
        overshot its 16 MB bound by over 100 MB in the 100,000-finding burst. So each partition
        fetches at most 1/128 of the bound at a time.
        """
        kb = self.rt.prefetch_kbytes
        return {
            "queued.max.messages.kbytes": kb,
            "fetch.max.bytes": min(52428800, max(1048576, kb * 1024 // 2)),
            "max.partition.fetch.bytes": max(65536, kb * 1024 // 128),
            # With the queue full, librdkafka postpones the next fetch by this much (1 s by
            # default): a stage that drains a bounded prefetch in less than that then waits out
            # the rest of the second. Bounded at 16 MB it ran at a quarter of its speed.
            "fetch.queue.backoff.ms": 10,
        }

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
        self._revocations += 1
        self._settle()  # commit what was processed while this member still owns the partitions
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
        } | self._fetch_bounds())  # fmt: skip
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
    def _run_batch(self, msgs: list[Message], revocations: int | None = None) -> None:
        """Process ``msgs`` (consumed after ``revocations`` partition revocations) as one
        transaction. While the previous batch's commit is still in flight, the batch grows with
        records already fetched, up to ``GROW`` times ``batch_size``: under load a stage does
        useful work instead of waiting for the broker, and batches grow as commits slow down."""
        assert self._consumer is not None and self._producer is not None
        batch = _Batch()
        decoded = self._prepare(msgs) if self.stage.prepare is not None else {}
        try:
            self._process(msgs, batch, decoded)  # handlers only: nothing is produced yet
            taken, limit = len(msgs), GROW * self.rt.batch_size
            while taken < limit and self._inflight is not None and not self._inflight.done():
                more = self._consumer.consume(min(self.rt.batch_size, limit - taken), 0)
                if not more:
                    break
                self._process(more, batch, self._prepare(more) if self.stage.prepare is not None else {})
                taken += len(more)
        except KafkaException as exc:  # a fatal consumer error
            if self._settle():
                self._recover(batch, exc)
            return
        if revocations is not None and revocations != self._revocations:
            self._redo(batch)
            return
        self._write_state(batch)
        for tp, (offset, delay) in batch.blocked.items():
            self._pause(tp, offset, delay)
        if not self._settle(later=batch):
            return
        try:
            self._in_txn = True
            self._producer.begin_transaction()
            self._send(batch)
            offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next.items()]
            if self._committer is None:
                self._committer = _Committer()
            self._inflight = self._committer.submit(
                _Commit(self._producer, batch, offsets, self._consumer.consumer_group_metadata())
            )
        except (KafkaException, BufferError) as exc:
            self._recover(batch, exc)
            return
        if not self._pipelined:
            self._settle()

    def _redo(self, batch: _Batch) -> None:
        """Partitions were revoked while this batch was being gathered: some of its records may
        belong to another member now, or be fetched again from the committed offset if they came
        back to this one. Drop it unsent and resume every partition it read from its committed
        offset: nothing is lost and nothing is written twice."""
        log.info("partitions revoked during a batch; redoing it", extra={"partitions": len(batch.start)})
        self._settle()
        for st in self._states.values():
            st.abort_batch()
        self._rewind(self._committed_offsets(batch.start))

    def _settle(self, later: _Batch | None = None) -> bool:
        """Wait for the commit in flight, if any. If it failed: recover, rewinding its records and
        ``later``'s (a batch processed meanwhile, whose outputs are then dropped), and return False."""
        c = self._inflight
        if c is None:
            return True
        self._inflight = None
        err = c.wait(COMMIT_STUCK_S)
        if not c.done() and self._committer is not None:
            self._committer.close()  # its thread is stuck in librdkafka; the next commit gets a new one
            self._committer = None
        if err is None:
            self._committed(c.batch)
            return True
        if not isinstance(err, KafkaException | BufferError):
            raise err
        if later is not None:
            for tp, offset in later.start.items():
                c.batch.start.setdefault(tp, offset)
        self._recover(c.batch, err)
        return False

    def _committed(self, batch: _Batch) -> None:
        self._in_txn = False
        for st in self._states.values():
            st.commit_batch()
        self.metrics.commits.labels(self.stage.service).inc()
        for topic, n in batch.produced.items():
            self.metrics.produced.labels(self.stage.service, topic).inc(n)

    def _send(self, batch: _Batch) -> None:
        assert self._producer is not None
        send = self._producer.produce
        produced = batch.produced
        last, n = "", 0  # outputs come in runs of one topic: counted per run, not per record
        for e in batch.pending:
            topic, value, key, partition, headers = e
            if topic is not last:
                produced[last] = produced.get(last, 0) + n
                last, n = topic, 0
            n += 1
            if partition is None and not headers:
                try:
                    send(topic, value, key)
                except BufferError:
                    self._produce_raw(e)
            else:
                self._produce_raw(e)
        produced[last] = produced.get(last, 0) + n
        produced.pop("", None)

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
            records.append(Record(topic, part, offset, m.key(), value, None, 0, m))
        try:
            self.stage.prepare(records)
        except Exception:
            log.exception("prepare failed; handlers run without it", extra={"records": len(records)})
        return decoded

    def _process(
        self, msgs: list[Message], batch: _Batch, decoded: dict[tuple[str, int, int], Any] | None = None
    ) -> None:
        # The hot loop: everything here runs once per record, so it binds what it uses to
        # locals, does per-partition work once per run of records from one partition (the
        # consumer returns them in such runs), and counts metrics per batch.
        stage = self.stage
        svc = stage.service
        handler = stage.handler
        schema = stage.input_schema
        stateful = stage.state_topic is not None
        lazy_reader = getattr(self.codec, "lazy_reader", None) if schema is not None and stage.prepare is None else None
        readers: dict[str, LazyReader] = {}
        read: LazyReader | None = None
        prefix: bytes = b"\xff"
        cur: Any = None  # the current run's LazyReader's (the prefix matches no Avro value)
        value: Any
        v: Any
        decode = self.codec.decode
        encode = self.codec.encode
        pending = batch.pending
        append = pending.append
        clock = self.clock
        perf = time.perf_counter
        lat = self.metrics.latency
        bounds, lat_sum, slow, failed = lat.bounds, 0.0, [], 0
        fast = bounds[0]  # most records take less than the first bucket's bound: only the rest are kept
        start, nxt, blocked = batch.start, batch.next, batch.blocked
        ctxs: dict[int, Context] = {}
        counts: dict[str, int] = defaultdict(int)
        # One input topic (the usual case): every record's topic is known without asking.
        only = stage.inputs[0] if len(stage.inputs) == 1 and not stage.inputs[0].startswith("^") else None
        # ``last``: the offset of the run's last finished record; the run's next offset is stored
        # once, when the run ends, instead of per record.
        topic, part, tp, skip, n, last = "", -1, ("", -1), False, 0, -1
        ctx = Context()
        # Each record's latency runs from the end of the one before (one clock read each); ``seg``
        # starts the current chain of them, which a failed record ends (its time is not counted).
        t0 = seg = perf()
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error", extra={"error": str(err)})
                continue
            offset: int = m.offset()  # type: ignore[assignment]  # a record without an error has one
            if m.partition() != part or (only is None and m.topic() != topic):  # a new run of records
                counts[topic] += n
                if last >= 0:
                    nxt[tp] = last + 1
                n, last = 0, -1
                topic, part = only or m.topic() or "", m.partition() or 0
                tp = (topic, part)
                if tp not in start:
                    start[tp] = offset
                skip = tp in blocked
                c = ctxs.get(part)
                if c is None:
                    c = ctxs[part] = Context(
                        now=clock, state=self.state(part) if stateful else _STATELESS, partition=part
                    )
                ctx = c
                if lazy_reader is not None:
                    read = readers.get(topic)
                    if read is None:
                        read = readers[topic] = lazy_reader(schema, topic)
                    prefix, cur = read.prefix, read.current
            if skip:
                continue
            n += 1
            mark = len(pending)
            try:
                value = m.value()
                if schema is not None:
                    if value is None:
                        raise BadInput("empty record value")
                    if read is not None:
                        # read(value), inlined for the common case (this build's writer; the
                        # single-object header is 10 bytes, and a slice compares faster than
                        # bytes.startswith)
                        value = LazyValue(cur, value) if value[:10] == prefix else read(value)
                    else:
                        pre = decoded.get((topic, part, offset)) if decoded else None
                        value = pre if pre is not None else decode(schema, value, topic)
                rec = Record(topic, part, offset, m.key(), value, None, 0, m)
                # Outputs are encoded here, inside the record's try: one that cannot be encoded
                # dead-letters its input instead of failing the batch. They go straight onto the
                # batch; a record that fails takes its own back off (from ``mark`` on).
                for o in handler(rec, ctx):
                    out, v, k, sch = o.topic, o.value, o.key, o.schema
                    if v.__class__ is LazyValue:  # forwarded input: unread, it keeps its bytes
                        # v.unread_bytes(sch), inlined for this run's own unread input
                        if v._src is cur and v._value is None and sch == schema:
                            v = v._data
                        else:
                            assert sch is not None, "a mapping value needs a schema"
                            v = v.unread_bytes(sch) or encode(sch, v, out)
                    elif v is not None and not isinstance(v, bytes):
                        assert sch is not None, "a mapping value needs a schema"
                        v = encode(sch, v, out)
                    append((out, v, k.encode() if isinstance(k, str) else k, o.partition, o.headers))
            except Transient as exc:
                del pending[mark:]
                if stateful:
                    ctx.state.end_record(ok=False)
                delay = exc.retry_after if exc.retry_after is not None else self.rt.backoff_initial_s
                blocked[tp] = (offset, delay)
                skip = True
                self.metrics.retries.labels(svc, "handler").inc()
                log.warning(
                    "transient failure; will retry",
                    extra={"topic": topic, "partition": part, "offset": offset, "error": str(exc), "retry_in_s": delay},
                )
                failed += 1
                lat_sum += t0 - seg
                t0 = seg = perf()
                continue
            except Exception as exc:  # noqa: BLE001 - anything else is this record's fault: dead-letter it
                del pending[mark:]
                if stateful:
                    ctx.state.end_record(ok=False)
                self._dead_letter(m, exc, batch)
                last = offset
                failed += 1
                lat_sum += t0 - seg
                t0 = seg = perf()
                continue
            if stateful:
                ctx.state.end_record(ok=True)
            last = offset
            t1 = perf()
            if t1 - t0 > fast:
                slow.append(t1 - t0)
            t0 = t1
        counts[topic] += n
        if last >= 0:
            nxt[tp] = last + 1
        lat_counts = [0] * (len(bounds) + 1)
        lat_counts[0] = sum(counts.values()) - failed - len(slow)
        for dt in slow:
            lat_counts[bisect_left(bounds, dt)] += 1
        lat.add(lat_counts, lat_sum + t0 - seg)
        for name, consumed in counts.items():
            if consumed:
                self.metrics.consumed.labels(svc, name).inc(consumed)

    def _write_state(self, batch: _Batch) -> None:
        if not self.stage.state_topic:
            return
        for part, st in self._states.items():
            for key, value in st.pending().items():
                o = Output(self.stage.state_topic, value, key=key, schema=self.stage.state_schema, partition=part)
                batch.pending.append(self._encode(o))

    def _encode(self, o: Output) -> _Encoded:
        """An Output as the producer's arguments (topic, value bytes, key bytes, partition, headers)."""
        v = o.value
        if v is None or isinstance(v, bytes):
            data = v
        else:
            assert o.schema is not None, "a mapping value needs a schema"
            data = self.codec.encode(o.schema, v, o.topic)
        k = o.key
        return (o.topic, data, k.encode() if isinstance(k, str) else k, o.partition, o.headers)

    def _produce(self, o: Output) -> None:
        self._produce_raw(self._encode(o))
        self._produced[o.topic] = self._produced.get(o.topic, 0) + 1

    def _produce_raw(self, e: _Encoded) -> None:
        assert self._producer is not None
        topic, data, key, partition, headers = e
        while True:
            try:
                if partition is None and not headers:
                    self._producer.produce(topic, data, key)
                else:
                    kw: dict[str, Any] = {}
                    if partition is not None:
                        kw["partition"] = partition
                    if headers:
                        kw["headers"] = list(headers.items())
                    self._producer.produce(topic, data, key, **kw)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _dead_letter(self, m: Message, exc: BaseException, batch: _Batch) -> None:
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
        o = Output(
            self.stage.dlq_topic,
            envelope,
            key=m.key(),
            schema="dead_letter",
            headers=dlq_headers(self.stage.service, m.topic() or "", m.partition(), m.offset(), cls, msg),
        )
        batch.pending.append(self._encode(o))
        self.metrics.dead.labels(self.stage.service, m.topic()).inc()

    def _recover(self, batch: _Batch, exc: BaseException) -> None:
        """Abort, rewind every partition of the batch, back off; recreate the producer if fenced/fatal."""
        assert self._consumer is not None and self._producer is not None
        self.metrics.aborts.labels(self.stage.service).inc()
        fatal = isinstance(exc, KafkaException) and exc.args[0].fatal()
        log.warning("batch failed; aborting and retrying", extra={"error": str(exc), "fatal": fatal})
        for st in self._states.values():
            st.abort_batch()
        if not fatal and self._in_txn:
            try:
                self._producer.abort_transaction(30)
            except KafkaException as abort_exc:
                fatal = fatal or abort_exc.args[0].fatal()
                log.warning("abort failed", extra={"error": str(abort_exc)})
        self._in_txn = False
        start = batch.start
        if fatal:
            self._producer = self._new_producer()
            # The new producer's init_transactions settled the old transaction, which may have
            # committed after all: resume from what the group has committed, not the batch start.
            start = self._committed_offsets(start)
        self._rewind(start)
        self.metrics.retries.labels(self.stage.service, "transaction").inc()
        self._sleep(self.rt.backoff_initial_s)

    def _committed_offsets(self, start: dict[TP, int]) -> dict[TP, int]:
        assert self._consumer is not None
        try:
            got = self._consumer.committed([TopicPartition(t, p) for t, p in start], timeout=30)
        except KafkaException as exc:
            log.warning("committed offsets unknown; rewinding to the batch start", extra={"error": str(exc)})
            return start
        out = dict(start)
        for tp in got:
            if tp.error is None and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = tp.offset
        return out

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
                self._in_txn = True
                self._producer.begin_transaction()
                ctx = Context(now=self.clock, state=st, partition=part)
                try:
                    outs = list(self.stage.tick(ctx))
                except Transient as exc:
                    st.end_record(ok=False)
                    self._producer.abort_transaction(30)
                    self._in_txn = False
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
                self._in_txn = False
                st.commit_batch()
                for topic, n in self._produced.items():
                    self.metrics.produced.labels(self.stage.service, topic).inc(n)
                self._produced.clear()
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


_gc_tuned = False


def _tune_gc(threshold: int) -> None:
    """Once per process, when its stage starts: freeze what startup loaded (modules, schemas,
    rules) out of the cyclic garbage collector and collect young objects every ``threshold``
    allocations instead of 700. At Python's defaults a stage moving records spent a fifth of its
    handler loop in collections (decision 0012): each batch keeps thousands of records alive,
    which pushes the collector into full passes over the whole startup heap. Records rarely form
    reference cycles; reference counting frees them either way."""
    global _gc_tuned  # process-wide, like the collector itself
    if _gc_tuned or threshold == 0:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


def _headers(m: Message) -> dict[str, bytes]:
    return headers_of(m.headers() or [])


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
