"""The runtime's promises, against the real broker: back-off without loss, state that survives
restarts exactly once, periodic ticks, health endpoints, and a broker restart mid-stream."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from alertline.avro import SingleObjectCodec
from alertline.errors import Transient
from alertline.kafka.admin import create
from alertline.kafka.local import LocalKafka
from alertline.kafka.runtime import Runner, Stage
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Handler, Output, Record
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert

pytestmark = pytest.mark.kafka
CODEC = SingleObjectCodec()


def topics(bootstrap: str, prefix: str, *names: str, compact: tuple[str, ...] = ()) -> list[str]:
    new = [NewTopic(prefix + n, 3, 1, config={"cleanup.policy": "compact"} if n in compact else {}) for n in names]
    create(AdminClient({"bootstrap.servers": bootstrap}), new)
    return [prefix + n for n in names]


def produce(bootstrap: str, topic: str, alerts: Iterable[dict]) -> None:  # type: ignore[type-arg]
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for a in alerts:
        p.produce(topic, CODEC.encode("alert", a), a["identity"].encode())
    p.flush()


class Running:
    def __init__(self, stage: Stage, bootstrap: str, instance: str = "x", **rt: object) -> None:
        self.runner = Runner(
            stage,
            KafkaSettings(bootstrap=bootstrap, transaction_timeout_ms=10000),
            RuntimeSettings(http_port=0, instance_id=instance, session_timeout_ms=6000, backoff_initial_s=0.2, **rt),  # type: ignore[arg-type]
            CODEC,
        )
        self.thread = threading.Thread(target=self.runner.run, kwargs={"install_signals": False}, daemon=True)

    def __enter__(self) -> Runner:
        self.thread.start()
        return self.runner

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(120)
        assert not self.thread.is_alive()


def wait_until(cond, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_transient_failure_backs_off_and_retries_without_skipping(kafka_bootstrap: str, prefix: str) -> None:
    src, out, dlq = topics(kafka_bootstrap, prefix, "in", "out", "dlq")
    failures = Counter[str]()

    def flaky(rec: Record, ctx: Context) -> Iterable[Output]:
        ident = rec.value["identity"]
        if rec.value["title"] == "flaky" and failures[ident] < 3:
            failures[ident] += 1
            raise Transient("github is down", retry_after=0.3)
        yield Output(out, rec.value, key=ident, schema="alert")

    produce(kafka_bootstrap, src, [alert(i, title="flaky" if i % 10 == 0 else "ok") for i in range(100)])
    with Running(Stage("t", prefix + "g", [src], "alert", flaky, dlq), kafka_bootstrap) as runner:
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 100)
        assert runner.metrics.retries.labels("t", "handler")._value.get() >= 30
    got = Counter(m.key() for m in read_all(kafka_bootstrap, out))
    assert len(got) == 100 and set(got.values()) == {1}
    assert read_all(kafka_bootstrap, dlq, timeout=5) == []


def counting_stage(prefix: str, src: str, out: str, dlq: str, state: str) -> Stage:
    """Counts occurrences per identity in state and emits the running count."""

    def count(rec: Record, ctx: Context) -> Iterable[Output]:
        ident = rec.value["identity"]
        prev = ctx.state.get(ident)
        n = (prev["occurrences"] if prev else 0) + 1
        a = rec.value["received_at"]
        ctx.state.set(ident, {
            "identity": ident, "repository": "r", "issue_number": None, "state": "open", "close_reason": None,
            "occurrences": n, "last_revision": None, "alert_status": "active", "first_seen": a, "last_seen": a,
            "last_comment_at": None, "closed_at": None, "comment_fingerprints": [], "labels": [], "group_key": None,
            "product": "", "auto_close": True, "updated_at": a,
        })  # fmt: skip
        rec.value["labels"]["count"] = str(n)
        yield Output(out, rec.value, key=ident, schema="alert")

    return Stage(
        "counter", prefix + "counter", [src], "alert", count, dlq, state_topic=state, state_schema="ticket_state"
    )


def test_state_is_restored_on_restart_and_counts_exactly_once(kafka_bootstrap: str, prefix: str) -> None:
    src, out, dlq, state = topics(kafka_bootstrap, prefix, "in", "out", "dlq", "state", compact=("state",))
    stage = counting_stage(prefix, src, out, dlq, state)
    produce(kafka_bootstrap, src, [alert(i % 10) for i in range(50)])
    with Running(stage, kafka_bootstrap):
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 50)
    produce(kafka_bootstrap, src, [alert(i % 10) for i in range(30)])
    with Running(stage, kafka_bootstrap) as runner:
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 80)
        assert sum(len(s.committed) for s in runner._states.values()) == 10
    counts = Counter()
    last: dict[str, str] = {}
    for m in read_all(kafka_bootstrap, out):
        v = CODEC.decode("alert", m.value())
        counts[v["identity"]] += 1
        last[v["identity"]] = v["labels"]["count"]
    assert set(counts.values()) == {8}
    assert set(last.values()) == {"8"}, "state must carry over the restart"


def test_tick_runs_per_owned_partition_with_state(kafka_bootstrap: str, prefix: str) -> None:
    src, out, dlq, state = topics(kafka_bootstrap, prefix, "in", "out", "dlq", "state", compact=("state",))
    base = counting_stage(prefix, src, out, dlq, state)
    ticked: list[int] = []

    def tick(ctx: Context) -> Iterator[Output]:
        ticked.append(ctx.partition)
        for key in list(ctx.state.keys()):
            ctx.state.delete(key)
        return iter(())

    stage = Stage(base.service, base.group_id, base.inputs, "alert", base.handler, dlq, state, "ticket_state",
                  tick=tick, tick_interval_s=0.5)  # fmt: skip
    produce(kafka_bootstrap, src, [alert(i) for i in range(20)])
    with Running(stage, kafka_bootstrap) as runner:
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 20)
        wait_until(lambda: sum(len(s.committed) for s in runner._states.values()) == 0, timeout=20)
    assert set(ticked) == {0, 1, 2}
    tombstones = [m for m in read_all(kafka_bootstrap, state) if m.value() is None]
    assert len(tombstones) == 20


def test_health_and_metrics_endpoints_answer(kafka_bootstrap: str, prefix: str) -> None:
    src, out, dlq = topics(kafka_bootstrap, prefix, "in", "out", "dlq")

    def passthrough(rec: Record, ctx: Context) -> Iterable[Output]:
        yield Output(out, rec.value, key=rec.key, schema="alert")

    produce(kafka_bootstrap, src, [alert(i) for i in range(5)])
    with Running(Stage("svc", prefix + "g", [src], "alert", passthrough, dlq), kafka_bootstrap) as runner:
        wait_until(lambda: runner.http is not None and runner._ready)
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 5)
        base = f"http://127.0.0.1:{runner.http.port}"  # type: ignore[union-attr]
        assert urllib.request.urlopen(base + "/healthz").status == 200
        assert urllib.request.urlopen(base + "/readyz").status == 200
        metrics = urllib.request.urlopen(base + "/metrics").read().decode()
        assert f'alertline_consumed_total{{service="svc",topic="{src}"}} 5.0' in metrics
        assert f'alertline_produced_total{{service="svc",topic="{out}"}} 5.0' in metrics
        assert "alertline_processing_seconds_bucket" in metrics


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, so it can be killed without disturbing the others."""
    k = LocalKafka(tmp_path / "kafka", port=29192, controller_port=29193, heap="512m")
    k.up()
    try:
        yield k
    finally:
        k.kill()  # its data is thrown away; a graceful stop would only cost time


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(private_broker: LocalKafka, prefix: str) -> None:
    boot = private_broker.bootstrap
    src, out, dlq = topics(boot, prefix, "in", "out", "dlq")

    def slow(rec: Record, ctx: Context) -> Iterable[Output]:
        time.sleep(0.002)
        yield Output(out, rec.value, key=rec.key, schema="alert")

    produce(boot, src, [alert(i) for i in range(3000)])
    handler: Handler = slow
    with Running(Stage("svc", prefix + "g", [src], "alert", handler, dlq), boot, batch_size=50):
        wait_until(lambda: len(read_all(boot, out, timeout=5)) > 200, timeout=120)
        private_broker.kill()
        time.sleep(3)
        private_broker.up()
        wait_until(lambda: len(read_all(boot, out, timeout=5)) >= 3000, timeout=180)
    got = Counter(m.key() for m in read_all(boot, out))
    assert len(got) == 3000
    assert set(got.values()) == {1}
