"""`alertline topics create` against the real broker: idempotent, state topics compacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from alertline.topics import TOPICS

pytestmark = pytest.mark.kafka


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alertline.cli", *args], env=os.environ | env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_topics_create_is_idempotent_and_compacts_state_topics(kafka_bootstrap: str, prefix: str) -> None:
    env = {"ALERTLINE_KAFKA__BOOTSTRAP": kafka_bootstrap, "ALERTLINE_KAFKA__TOPIC_PREFIX": prefix,
           "ALERTLINE_KAFKA__PARTITIONS": "2"}  # fmt: skip
    first = run_cli("topics", "create", env=env)
    assert first.returncode == 0, first.stderr
    results = [json.loads(line) for line in first.stdout.splitlines()]
    assert {r["result"] for r in results} == {"created"}
    assert {r["topic"] for r in results} == {prefix + s.name for s in TOPICS.values()}
    second = run_cli("topics", "create", env=env)
    assert {json.loads(line)["result"] for line in second.stdout.splitlines()} == {"exists"}

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    md = admin.list_topics(timeout=10)
    assert len(md.topics[prefix + "alerts.v1"].partitions) == 2
    for name, spec in TOPICS.items():
        res = ConfigResource(ConfigResource.Type.TOPIC, prefix + spec.name)
        cfg = next(iter(admin.describe_configs([res]).values())).result()
        assert cfg["cleanup.policy"].value == ("compact" if spec.compact else "delete"), name


def test_kafka_status_reports_a_stopped_broker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("kafka", "status", "--port", "29999", "--home", str(tmp_path), env={})
    assert out.returncode == 0 and out.stdout.strip() == "stopped"


def test_kafka_up_status_down_manage_a_real_broker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ("--port", "29292", "--home", str(tmp_path))
    up = run_cli("kafka", "up", *args, env={})
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == "127.0.0.1:29292"
        assert run_cli("kafka", "status", *args, env={}).stdout.startswith("running")
        again = run_cli("kafka", "up", *args, env={})  # already running: a no-op
        assert again.returncode == 0
    finally:
        down = run_cli("kafka", "down", *args, env={})
    assert down.returncode == 0
    assert run_cli("kafka", "status", *args, env={}).stdout.strip() == "stopped"
