"""Runtime overhead vs the raw client ceiling, on the same broker in one run.

(a) raw confluent-kafka consume -> produce of the same bytes (the ceiling on this machine);
(b) the Alertline runtime: Avro decode, a no-op handler, Avro encode, transactional commit.
Prints both rates and their ratio (goal: b/a >= 0.5).

usage: KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/runtime_passthrough.py [N]
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable

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


def end_offsets(topic: str) -> int:
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "bench-offsets", "isolation.level": "read_committed"})
    total = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTS))
    c.close()
    return total


def wait_for(topic: str, n: int, started: float) -> float:
    while end_offsets(topic) < n:
        time.sleep(0.05)
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    run = uuid.uuid4().hex[:8]
    src, raw_out, rt_out, dlq = (f"bench-{run}-{x}" for x in ("src", "raw", "rt", "dlq"))
    create(AdminClient({"bootstrap.servers": BOOT}), [NewTopic(t, PARTS, 1) for t in (src, raw_out, rt_out, dlq)])
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
    size = len(payloads[0][0])
    print(f"records: {n}, {size} bytes each (Avro alert), {PARTS} partitions")

    # (a) raw ceiling
    c = Consumer({"bootstrap.servers": BOOT, "group.id": f"bench-raw-{run}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})  # fmt: skip
    out = Producer({"bootstrap.servers": BOOT, "linger.ms": 5, "compression.type": "lz4"})
    c.subscribe([src])
    t0 = time.perf_counter()
    seen = 0
    while seen < n:
        msgs = c.consume(500, 0.5)
        for m in msgs:
            if m.error():
                continue
            while True:
                try:
                    out.produce(raw_out, m.value(), m.key())
                    break
                except BufferError:
                    out.poll(0.05)
            seen += 1
        if msgs:
            c.commit(asynchronous=True)
    out.flush()
    raw_s = time.perf_counter() - t0
    c.close()
    raw_rate = n / raw_s

    # (b) the runtime with Avro decode/encode and a no-op handler
    def noop(rec: Record, ctx: Context) -> Iterable[Output]:
        yield Output(rt_out, rec.value, key=rec.key, schema="alert")

    stage = Stage("bench", f"bench-rt-{run}", [src], "alert", noop, dlq)
    runner = Runner(stage, KafkaSettings(bootstrap=BOOT), RuntimeSettings(http_port=0, instance_id=run, batch_size=2000),
                    codec)  # fmt: skip
    t0 = time.perf_counter()
    th = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
    th.start()
    rt_s = wait_for(rt_out, n, t0)
    runner.stop()
    th.join(30)
    rt_rate = n / rt_s
    print(f"(a) raw consume->produce ceiling: {raw_rate:10,.0f} records/s ({raw_s:.2f} s)")
    print(
        f"(b) runtime, Avro + transactions:  {rt_rate:10,.0f} records/s ({rt_s:.2f} s, includes start-up and group join)"
    )
    print(f"ratio b/a: {rt_rate / raw_rate:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
