"""``alertline rules diff`` over real alert history on the broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition

from alertline.avro import SingleObjectCodec
from alertline.cli import cli
from alertline.clock import to_millis
from alertline.kafka.admin import create_topics
from alertline.settings import KafkaSettings
from alertline.testing.samples import alert
from alertline.topics import topic
from services.evaluate.cli import register

pytestmark = pytest.mark.kafka

OLD = """
rules:
  - {id: gd, description: d, owner: o, match: {field: product, equals: guardduty}, actions: {priority: P2}}
"""
NEW = """
rules:
  - id: probes
    description: d
    owner: o
    match: {field: finding_type, equals: "Recon:EC2/PortProbeUnprotectedPort"}
    actions: {drop: noise}
  - {id: gd, description: d, owner: o, match: {field: product, equals: guardduty}, actions: {priority: P1}}
"""


def _offsets(bootstrap: str, name: str) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-probe"})
    try:
        parts = c.list_topics(name, timeout=10).topics[name].partitions
        return [c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in sorted(parts)]
    finally:
        c.close()


def _all_offsets(k: KafkaSettings) -> dict[str, list[int]]:
    return {n: _offsets(k.bootstrap, topic(k.topic_prefix, n)) for n in ("alerts", "evaluated", "lookups")}


def test_diff_reads_the_time_range_and_reports_changes_without_producing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    create_topics(kafka_settings, ["alerts", "evaluated", "lookups"])
    src = topic(kafka_settings.topic_prefix, "alerts")
    codec = SingleObjectCodec()
    p = Producer({"bootstrap.servers": kafka_settings.bootstrap})
    base = datetime(2026, 11, 20, tzinfo=UTC)

    def send(a: dict, at: datetime) -> None:  # type: ignore[type-arg]
        p.produce(src, codec.encode("alert", a), a["identity"].encode(), timestamp=to_millis(at))

    send(alert(0, product="guardduty"), base - timedelta(hours=2))  # before --since
    for i in range(1, 11):
        send(alert(i, product="guardduty"), base + timedelta(minutes=i))  # priority P2 -> P1
    for i in range(11, 16):  # P2 ticket -> dropped
        probe = alert(i, product="guardduty", finding_type="Recon:EC2/PortProbeUnprotectedPort")
        send(probe, base + timedelta(minutes=i))
    for i in range(16, 20):
        send(alert(i), base + timedelta(minutes=i))  # not guardduty: unchanged
    send(alert(5, product="guardduty"), base + timedelta(minutes=30))  # a redelivery
    p.produce(src, b"\x00 garbage", b"g", timestamp=to_millis(base + timedelta(minutes=31)))
    send(alert(99, product="guardduty"), base + timedelta(hours=5))  # after --until
    p.flush(10)

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "r.yaml").write_text(OLD)
    (new / "r.yaml").write_text(NEW)
    before = {
        n: _offsets(kafka_settings.bootstrap, topic(kafka_settings.topic_prefix, n)) for n in ("alerts", "evaluated")
    }

    if "rules" not in cli.commands:
        register(cli)
    env = {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    args = ["rules", "diff", "--old", str(old), "--new", str(new)]
    args += ["--since", "2026-11-20T00:00:00Z", "--until", "2026-11-20T03:00:00Z"]
    r = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["alerts"] == 19 and report["duplicates_skipped"] == 1 and report["undecodable"] == 1
    # The probes are both dropped and (by the gd rule) P1 now: one alert can change in several ways.
    assert report["counts"] == {"priority P2 -> P1": 15, "ticket -> drop": 5, "unchanged": 4}
    assert report["changed"] == 15
    ex = report["examples"]["ticket -> drop"][0]
    assert ex["old"]["action"] == "ticket" and ex["new"] == {**ex["new"], "action": "drop", "reason": "noise"}
    assert "reading" in r.stderr, "a progress bar goes to stderr"

    text = CliRunner().invoke(cli, args, env=env)
    assert text.exit_code == 0
    assert "19 alerts evaluated with both rule sets; 15 would change" in text.stdout
    assert "examples of 'ticket -> drop':" in text.stdout

    after = {
        n: _offsets(kafka_settings.bootstrap, topic(kafka_settings.topic_prefix, n)) for n in ("alerts", "evaluated")
    }
    assert after == before, "a dry run produces nothing"
