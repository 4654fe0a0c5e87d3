"""Runtime overhead vs the raw client ceiling, on the same broker in one run.

(a) raw confluent-kafka consume -> produce of the same bytes (the ceiling on this machine);
(b) the Alertline runtime with the alert schema, a no-op handler that forwards ``rec.value``
    unread, and a transactional commit per batch. The runtime checks each record's Avro header
    and decodes the body only when the handler reads it; an unread value written back under the
    same schema keeps its bytes, so (b) does no Avro body work (decision 0010);
(c) the runtime moving bytes (no schema), to separate the runtime's own cost from Avro's;
(d) as (b), but the handler reads every field (``dict(rec.value)``): a full Avro decode and
    re-encode per record, what a handler that looks at its input costs.
Rates are steady-state: timed from the first record seen downstream to the last. This machine
moves single runs by 2-4x, so the bench runs ROUNDS rounds of (a)-(d) back to back over the same
input (a fresh consumer group each) and prints each round, then the medians, and the ratios as
the median of each round's own ratio (goal for b/a: >= 0.5).

usage: KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/runtime_passthrough.py [N] [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create
from alertline.kafka.runtime import Runner, Stage
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Output, Record
from alertline.testing.samples import alert

BOOT = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PARTS = 3


def end_offset(c: Consumer, topic: str) -> int:
    return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTS))


def steady_rate(topic: str, n: int, start: Callable[[], None]) -> float:
    """Start the work, then time it from the first record downstream to the n-th."""
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "bench-offsets", "isolation.level": "read_committed"})
    start()
    first_at, first_n = 0.0, 0
    while True:
        done = end_offset(c, topic)
        now = time.perf_counter()
        if done and not first_at:
            first_at, first_n = now, done
        if done >= n:
            c.close()
            return (n - first_n) / (now - first_at) if now > first_at else float("nan")
        time.sleep(0.02)


def raw_passthrough(src: str, dst: str, n: int, run: str) -> None:
    # librdkafka postpones a fetch by fetch.queue.backoff.ms (1 s) whenever its prefetch queue is
    # full: at this rate that is most of the time, so the ceiling gets the runtime's setting.
    c = Consumer({"bootstrap.servers": BOOT, "group.id": f"bench-raw-{run}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})  # fmt: skip
    out = Producer({"bootstrap.servers": BOOT, "linger.ms": 5, "compression.type": "lz4"})
    c.subscribe([src])
    seen = 0
    while seen < n:
        msgs = c.consume(500, 0.5)
        for m in msgs:
            if m.error():
                continue
            while True:
                try:
                    out.produce(dst, m.value(), m.key())
                    break
                except BufferError:
                    out.poll(0.005)
            seen += 1
        if msgs:
            c.commit(asynchronous=True)
            out.poll(0)  # serve delivery reports: the producer's queue never fills
    out.flush()
    c.close()


def runtime(src: str, dst: str, dlq: str, run: str, schema: str | None, read: bool = False) -> Runner:
    def noop(rec: Record, ctx: Context) -> Iterable[Output]:
        yield Output(dst, rec.value, key=rec.key, schema=schema)

    def reads_all(rec: Record, ctx: Context) -> Iterable[Output]:
        yield Output(dst, dict(rec.value), key=rec.key, schema=schema)

    stage = Stage("bench", f"bench-{dst}", [src], schema, reads_all if read else noop, dlq)
    settings = RuntimeSettings(http_port=0, instance_id=run, batch_size=2000)
    return Runner(stage, KafkaSettings(bootstrap=BOOT), settings, SingleObjectCodec())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    run = uuid.uuid4().hex[:8]
    src, dlq = f"bench-{run}-src", f"bench-{run}-dlq"
    names = ("raw", "avro", "bytes", "read")
    outs = [{k: f"bench-{run}r{i}-{k}" for k in names} for i in range(rounds)]
    topics = [src, dlq, *(t for o in outs for t in o.values())]
    create(AdminClient({"bootstrap.servers": BOOT}), [NewTopic(t, PARTS, 1) for t in topics])
    codec = SingleObjectCodec()
    p = Producer(
        {"bootstrap.servers": BOOT, "linger.ms": 20, "compression.type": "lz4", "partitioner": "murmur2_random"}
    )
    payloads = [(codec.encode("alert", alert(i)), f"id-{i:08d}".encode()) for i in range(1000)]
    for i in range(n):
        v, k = payloads[i % 1000]
        while True:
            try:
                p.produce(src, v, k)
                break
            except BufferError:
                p.poll(0.1)
    p.flush()
    print(f"records: {n}, {len(payloads[0][0])} bytes each (Avro alert), {PARTS} partitions")

    threads: list[threading.Thread] = []

    def bg(target: Callable[[], None]) -> Callable[[], None]:
        def start() -> None:
            t = threading.Thread(target=target, daemon=True)
            threads.append(t)
            t.start()

        return start

    rates: dict[str, list[float]] = {k: [] for k in names}
    for i, out in enumerate(outs):
        tag = f"{run}r{i}"
        rates["raw"].append(steady_rate(out["raw"], n, bg(lambda o=out["raw"], t=tag: raw_passthrough(src, o, n, t))))
        for name, schema in (("avro", "alert"), ("bytes", None), ("read", "alert")):
            r = runtime(src, out[name], dlq, tag + name, schema, read=name == "read")
            rates[name].append(steady_rate(out[name], n, bg(lambda r=r: r.run(install_signals=False))))  # type: ignore[misc]
            r.stop()
        for t in threads:
            t.join(30)
        a, b, c, d = (rates[k][-1] for k in names)
        print(f"round {i + 1}: a {a:10,.0f}  b {b:10,.0f}  c {c:10,.0f}  d {d:8,.0f}  b/a {b / a:.2f}", flush=True)

    # A round whose first look downstream already saw every record measured nothing (nan): skipped.
    def med(k: str) -> float:
        return statistics.median([x for x in rates[k] if x == x] or [float("nan")])

    def ratio(k: str) -> float:
        rs = [x / a for x, a in zip(rates[k], rates["raw"], strict=True)]
        return statistics.median([r for r in rs if r == r] or [float("nan")])

    print(f"medians of {rounds} rounds:")
    print(f"(a) raw consume->produce ceiling:                  {med('raw'):10,.0f} records/s")
    print(f"(b) runtime, Avro no-op handler (lazy body) + txn: {med('avro'):10,.0f} records/s")
    print(f"(c) runtime, bytes only + txn:                     {med('bytes'):10,.0f} records/s")
    print(f"(d) runtime, handler reads all: decode+encode+txn: {med('read'):10,.0f} records/s")
    print(
        f"ratio b/a: {ratio('avro'):.2f} (goal >= 0.5; per round "
        f"{', '.join(f'{x / a:.2f}' for x, a in zip(rates['avro'], rates['raw'], strict=True))}); "
        f"c/a: {ratio('bytes'):.2f}; d/a: {ratio('read'):.2f}"
    )


if __name__ == "__main__":
    main()
