"""`alertline replay offsets`: move a group to a time, dry run, refuse while members are live."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from alertline.kafka.admin import create

pytestmark = pytest.mark.kafka
BASE_MS = 1_790_000_000_000  # a fixed past instant; records are 1 minute apart


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alertline.cli", "replay", "offsets", *args],
                          env=os.environ | env, capture_output=True, text=True, timeout=120)  # fmt: skip


def committed(boot: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": boot, "group.id": group})
    try:
        return sum(max(tp.offset, 0) for tp in c.committed([TopicPartition(topic, 0)], timeout=10))
    finally:
        c.close()


@pytest.fixture
def setup(kafka_bootstrap: str, prefix: str) -> tuple[dict[str, str], str, str]:
    topic, group = prefix + "alerts.v1", prefix + "evaluate"
    create(AdminClient({"bootstrap.servers": kafka_bootstrap}), [NewTopic(topic, 1, 1)])
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):
        p.produce(topic, b"x", b"k", timestamp=BASE_MS + i * 60_000)
    p.flush()
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    c.close()
    env = {"ALERTLINE_KAFKA__BOOTSTRAP": kafka_bootstrap, "ALERTLINE_KAFKA__TOPIC_PREFIX": prefix}
    return env, topic, group


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def test_replay_moves_the_group_to_the_first_record_at_or_after_the_time(kafka_bootstrap: str, setup) -> None:  # type: ignore[no-untyped-def]
    env, topic, group = setup
    out = cli(env, "--service", "evaluate", "--to-time", iso(BASE_MS + 5 * 60_000))
    assert out.returncode == 0, out.stderr
    assert "5 record(s) will be reprocessed" in out.stdout
    assert committed(kafka_bootstrap, group, topic) == 5


def test_dry_run_shows_the_plan_and_changes_nothing(kafka_bootstrap: str, setup) -> None:  # type: ignore[no-untyped-def]
    env, topic, group = setup
    out = cli(env, "--service", "evaluate", "--to-time", iso(BASE_MS), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "dry run" in out.stdout and "10 record(s) would be reprocessed" in out.stdout
    lines = [line.split() for line in out.stdout.splitlines() if line.strip().startswith("0 ")]
    assert lines == [["0", "10", "0", "10", "0", "10"]]  # partition committed target end lag-before lag-after
    assert committed(kafka_bootstrap, group, topic) == 10


def test_replay_refuses_while_the_group_has_live_members(kafka_bootstrap: str, setup) -> None:  # type: ignore[no-untyped-def]
    env, topic, group = setup
    member = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "session.timeout.ms": 6000})
    member.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.2)
        out = cli(env, "--service", "evaluate", "--to-time", "now-1d")
    finally:
        member.close()
    assert out.returncode != 0
    assert "live member" in out.stderr
    assert committed(kafka_bootstrap, group, topic) == 10


def test_a_bad_time_is_a_clear_error(setup) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = setup
    out = cli(env, "--service", "evaluate", "--to-time", "yesterday-ish")
    assert out.returncode != 0 and "not a time" in out.stderr
