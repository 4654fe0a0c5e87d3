"""How the runtime commits, against the real broker: batches grow while a slow commit is in
flight, a batch gathered across a partition revocation is redone rather than committed, and a
commit stuck in librdkafka is abandoned for a new producer. Each ends exactly once downstream."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

import pytest
from confluent_kafka import Message

from alertline.kafka import runtime
from alertline.kafka.runtime import Runner, Stage
from alertline.stage import Context, Output, Record
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert
from tests.integration.test_runtime_behaviour import Running, produce, topics, wait_until

pytestmark = pytest.mark.kafka


def forwarding_stage(prefix: str, src: str, out: str, dlq: str, seen: Counter[str]) -> Stage:
    def forward(rec: Record, ctx: Context) -> Iterable[Output]:
        seen[rec.value["identity"]] += 1
        yield Output(out, rec.value, key=rec.key, schema="alert")

    return Stage("fwd", prefix + "fwd", [src], "alert", forward, dlq)


def exactly_once(bootstrap: str, out: str, n: int) -> None:
    got = Counter(m.key() for m in read_all(bootstrap, out, expect=n))
    assert len(got) == n and set(got.values()) == {1}, "every record downstream once"


def test_batches_grow_while_a_slow_commit_is_in_flight(
    kafka_bootstrap: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out, dlq = topics(kafka_bootstrap, prefix, "in", "out", "dlq")
    produce(kafka_bootstrap, src, [alert(i) for i in range(400)])
    real_run = runtime._Commit.run

    def slow_run(self: runtime._Commit) -> None:
        threading.Event().wait(0.3)  # a broker slow to commit
        real_run(self)

    monkeypatch.setattr(runtime._Commit, "run", slow_run)
    seen: Counter[str] = Counter()
    with Running(forwarding_stage(prefix, src, out, dlq, seen), kafka_bootstrap, batch_size=10) as runner:
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 400)
        commits = runner.metrics.commits.labels("fwd")._value.get()
    exactly_once(kafka_bootstrap, out, 400)
    # 40 batches of 10 at 0.3 s a commit without growth; growing to 4 x 10 meanwhile needs ~10.
    assert commits <= 20, f"{commits} commits for 400 records in batches of 10"


def test_a_batch_gathered_across_a_revocation_is_redone_not_committed(
    kafka_bootstrap: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka may hand over records of a partition and then revoke it inside the next
    consume call of the same batch: the new owner (or this member, after re-assignment) reads
    from the committed offset, so committing that batch would write its records twice."""
    src, out, dlq = topics(kafka_bootstrap, prefix, "in", "out", "dlq")
    produce(kafka_bootstrap, src, [alert(i) for i in range(200)])
    real_next = Runner._next_batch
    redone = []

    def next_batch_with_revocation(self: Runner) -> list[Message]:
        msgs = real_next(self)
        if msgs and not redone:
            redone.append(len(msgs))
            self._revocations += 1  # as _on_revoke does, here mid-batch
        return msgs

    monkeypatch.setattr(Runner, "_next_batch", next_batch_with_revocation)
    seen: Counter[str] = Counter()
    with Running(forwarding_stage(prefix, src, out, dlq, seen), kafka_bootstrap, batch_size=50):
        wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 200)
    exactly_once(kafka_bootstrap, out, 200)
    assert redone and sum(seen.values()) >= 200 + redone[0], "the first batch was handled twice, written once"


def test_a_stuck_commit_is_abandoned_for_a_new_producer(
    kafka_bootstrap: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka#5456: send_offsets_to_transaction can block past its timeout. The runtime
    gives up on it after COMMIT_STUCK_S, fences the producer with a new one (its open
    transaction is aborted) and resumes from the committed offsets."""
    src, out, dlq = topics(kafka_bootstrap, prefix, "in", "out", "dlq")
    produce(kafka_bootstrap, src, [alert(i) for i in range(150)])
    monkeypatch.setattr(runtime, "COMMIT_STUCK_S", 1.0)
    real_run = runtime._Commit.run
    release, hung = threading.Event(), []

    def run_or_hang(self: runtime._Commit) -> None:
        if not hung:
            hung.append(self)
            release.wait(60)  # never calls librdkafka: the open transaction stays open
            self._done.set()
            return
        real_run(self)

    monkeypatch.setattr(runtime._Commit, "run", run_or_hang)
    seen: Counter[str] = Counter()
    try:
        with Running(forwarding_stage(prefix, src, out, dlq, seen), kafka_bootstrap, batch_size=50) as runner:
            wait_until(lambda: len(read_all(kafka_bootstrap, out, timeout=5)) >= 150)
            assert runner.metrics.aborts.labels("fwd")._value.get() >= 1
    finally:
        release.set()
    exactly_once(kafka_bootstrap, out, 150)
    assert hung and sum(seen.values()) > 150, "the stuck batch was handled again"
