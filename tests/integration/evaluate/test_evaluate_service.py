"""The evaluate service against the real broker: alerts in, decisions out."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create_topics
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.testing.kafka import read_all
from alertline.testing.samples import alert
from alertline.topics import topic
from services.evaluate import rules
from services.evaluate.app import EvaluateService, build, run_in_thread
from services.evaluate.settings import EvaluateOptions, EvaluateSettings

pytestmark = pytest.mark.kafka

CODEC = SingleObjectCodec()
TOPICS = ["alerts", "evaluated", "evaluate.dlq", "evaluate.state", "lookups"]

RULES_V1 = """
rules:
  - id: drop-port-probes
    description: noise
    owner: secops
    match: {field: finding_type, equals: "Recon:EC2/PortProbeUnprotectedPort"}
    actions: {drop: port probes are noise}
  - id: guardduty-p1
    description: guardduty first
    owner: secops
    match: {field: product, equals: guardduty}
    actions: {priority: P1}
  - id: route
    description: route by owner
    owner: secops
    match: {field: account, in_lookup: accounts}
    actions: {repository: "${lookup('accounts', account).repository}"}
"""
ACCOUNTS = '"123456789012": {repository: acme/from-file}\n'


def _eventually(cond: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


class Env:
    def __init__(self, kafka: KafkaSettings, rules_dir: Path) -> None:
        self.kafka = kafka
        self.rules_dir = rules_dir
        self.prefix = kafka.topic_prefix
        self.producer = Producer({"bootstrap.servers": kafka.bootstrap})

    def t(self, name: str) -> str:
        return topic(self.prefix, name)

    def send(self, *alerts: dict[str, Any], key: str | None = None) -> None:
        for a in alerts:
            self.producer.produce(self.t("alerts"), CODEC.encode("alert", a), (key or a["identity"]).encode())
        self.producer.flush(10)

    def send_raw(self, value: bytes, key: bytes) -> None:
        self.producer.produce(self.t("alerts"), value, key)
        self.producer.flush(10)

    def lookup(self, key: str, row: dict[str, Any] | None) -> None:
        self.producer.produce(self.t("lookups"), None if row is None else json.dumps(row).encode(), key.encode())
        self.producer.flush(10)

    def evaluated(self, expect: int | None = None, timeout: float = 30) -> list[dict[str, Any]]:
        msgs = read_all(self.kafka.bootstrap, self.t("evaluated"), timeout=timeout, expect=expect)
        return [CODEC.decode("decision", m.value()) for m in msgs]

    @contextmanager
    def service(self, instance: str = "a") -> Iterator[EvaluateService]:
        settings = EvaluateSettings(
            kafka=self.kafka,
            runtime=RuntimeSettings(
                instance_id=instance, http_port=0, http_host="127.0.0.1", session_timeout_ms=6000, poll_timeout_s=0.2
            ),
            evaluate=EvaluateOptions(rules_dir=self.rules_dir, reload_interval_s=0.2, lookups_ready_timeout_s=30),
        )
        svc = build(settings, rules.load(self.rules_dir), codec=CODEC)
        thread = run_in_thread(svc)
        try:
            assert _eventually(lambda: svc.runner.http is not None and svc.runner._ready, 30), "service did not start"
            yield svc
        finally:
            svc.stop()
            thread.join(30)
            assert not thread.is_alive(), "the service must stop cleanly"


@pytest.fixture
def env(kafka_settings: KafkaSettings, tmp_path: Path) -> Env:
    create_topics(kafka_settings, TOPICS)
    rules_dir = tmp_path / "rules"
    (rules_dir / "lookups").mkdir(parents=True)
    (rules_dir / "10-rules.yaml").write_text(RULES_V1)
    (rules_dir / "lookups" / "accounts.yaml").write_text(ACCOUNTS)
    return Env(kafka_settings, rules_dir)


def _by_id(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["alert"]["identity"], []).append(r)
    return out


def test_alerts_in_decisions_out_drops_recorded_duplicates_skipped_bad_input_dead_lettered(env: Env) -> None:
    ticket = alert(1, product="guardduty", finding_type="UnauthorizedAccess:EC2/TorClient")
    probe = alert(2, product="guardduty", finding_type="Recon:EC2/PortProbeUnprotectedPort")
    plain = alert(3, account="999999999999")
    with env.service():
        env.send(ticket, probe, plain)
        env.send(ticket)  # the ingest republished the same version after a crash
        env.send(dict(ticket, revision="rev-1b", title="updated"))  # a real update
        env.send_raw(b"\x00\x01 not an alert", b"garbage")
        env.send(alert(4), key="not-the-identity")
        got = env.evaluated(expect=4)
        time.sleep(1.5)  # give a duplicate time to show up before judging
        got = env.evaluated()
        dead = read_all(env.kafka.bootstrap, env.t("evaluate.dlq"), timeout=30, expect=2)

    by_id = _by_id(got)
    assert sorted(by_id) == [ticket["identity"], probe["identity"], plain["identity"]]
    assert [r["alert"]["revision"] for r in by_id[ticket["identity"]]] == ["rev-1", "rev-1b"]
    t = by_id[ticket["identity"]][0]["decision"]
    assert (t["action"], t["priority"], t["repository"]) == ("ticket", "P1", "acme/from-file")
    assert [m["rule_id"] for m in t["matched"]] == ["guardduty-p1", "route"]
    assert t["ruleset"].startswith("sha256:")
    d = by_id[probe["identity"]][0]["decision"]
    assert (d["action"], d["reason"]) == ("drop", "port probes are noise"), "drops are recorded, not lost"
    p = by_id[plain["identity"]][0]["decision"]
    assert (p["action"], p["priority"], p["matched"]) == ("ticket", "P2", []), "default: ticket, priority from severity"

    assert len(dead) == 2
    causes = {dict(m.headers())["alertline.error.class"].decode(): m for m in dead}
    assert set(causes) == {"alertline.errors.DecodeError", "alertline.errors.BadInput"}
    envelope = CODEC.decode("dead_letter", causes["alertline.errors.DecodeError"].value())
    assert envelope["value"] == b"\x00\x01 not an alert" and envelope["service"] == "evaluate"
    assert b"not the alert identity" in dict(causes["alertline.errors.BadInput"].headers())["alertline.error.message"]


def test_dedupe_state_survives_a_restart(env: Env) -> None:
    a = alert(7, product="guardduty")
    with env.service("a"):
        env.send(a)
        assert len(env.evaluated(expect=1)) == 1
    with env.service("a"):  # same static member id: a restarted pod takes its partitions back at once
        env.send(a)  # redelivered after the restart: the state topic remembers it
        env.send(dict(a, revision="rev-7b"))
        got = env.evaluated(expect=2)
        time.sleep(1.5)
        got = env.evaluated()
    assert [r["alert"]["revision"] for r in got] == ["rev-7", "rev-7b"]


def test_a_lookup_topic_update_changes_decisions_without_a_restart(env: Env) -> None:
    acct = "123456789012"
    with env.service():
        assert _route(env, acct) == "acme/from-file"
        env.lookup(f"accounts/{acct}", {"repository": "acme/from-topic"})
        env.lookup("accounts/555555555555", {"repository": "acme/new-team"})
        # The reader follows the topic in the background; alerts after the update see the row.
        assert _eventually(lambda: _route(env, acct) == "acme/from-topic", 20)
        assert _route(env, "555555555555") == "acme/new-team"
        env.lookup(f"accounts/{acct}", None)  # tombstone: the file row shows again
        assert _eventually(lambda: _route(env, acct) == "acme/from-file", 20)


_SEQ = iter(range(1000, 100000))


def _route(env: Env, account: str) -> str | None:
    """Send one alert for ``account`` and return the repository its decision names."""
    a = alert(next(_SEQ), account=account)
    env.send(a)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for r in env.evaluated(timeout=5):
            if r["alert"]["identity"] == a["identity"]:
                return r["decision"]["repository"]  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"no decision for {a['identity']}")


def _rules_status(svc: EvaluateService) -> dict[str, Any]:
    assert svc.runner.http is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{svc.runner.http.port}/rules", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_a_reload_with_a_broken_file_keeps_the_old_rules_and_reports_it(env: Env) -> None:
    with env.service() as svc:
        before = _rules_status(svc)
        assert before["reload_failing"] is False
        env.send(alert(20, product="guardduty"))
        first = env.evaluated(expect=1)[0]["decision"]
        assert first["priority"] == "P1"

        broken = "rules:\n  - id: x\n    description: d\n    owner: o\n    mtch: {}\n"
        (env.rules_dir / "20-broken.yaml").write_text(broken)
        assert _eventually(lambda: _rules_status(svc)["reload_failing"], 10)
        status = _rules_status(svc)
        assert any("20-broken.yaml:5: error: unknown field 'mtch'" in p for p in status["problems"]), status
        assert status["fingerprint"] == before["fingerprint"]
        assert svc.runner.http is not None
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{svc.runner.http.port}/metrics", timeout=5).read()
        assert b"alertline_evaluate_rules_reload_failing 1.0" in metrics

        env.send(alert(21, product="guardduty"))
        got = env.evaluated(expect=2)
        assert got[1]["decision"]["priority"] == "P1", "the last good rules keep deciding"
        assert got[1]["decision"]["ruleset"] == first["ruleset"]

        (env.rules_dir / "20-broken.yaml").unlink()
        (env.rules_dir / "10-rules.yaml").write_text(RULES_V1.replace("priority: P1", "priority: P4"))
        assert _eventually(lambda: _rules_status(svc)["fingerprint"] != before["fingerprint"], 10)
        assert not _rules_status(svc)["reload_failing"]
        env.send(alert(22, product="guardduty"))
        got = env.evaluated(expect=3)
        assert got[2]["decision"]["priority"] == "P4", "a valid change applies without a restart"
        assert got[2]["decision"]["ruleset"] != first["ruleset"]
