"""Chaos, CI-sized: kills, a broker restart and GitHub faults lose and duplicate nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertline.kafka.local import LocalKafka
from devtools.chaos import Chaos, chaos_env, scenario
from devtools.stack import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """The chaos run restarts its broker, so it has one of its own."""
    k = LocalKafka(tmp_path / "kafka", port=29392, controller_port=29393, heap="768m")
    k.up()
    try:
        yield k
    finally:
        k.kill()  # its data is thrown away; a graceful stop would only cost time


def test_kills_broker_restart_and_github_faults_lose_and_duplicate_nothing(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    stack = Stack(tmp_path / "stack", bootstrap=own_broker.bootstrap, prefix="chaos.", service_env=chaos_env())
    rng = random.Random(20261123)

    def restart_broker() -> None:
        own_broker.kill()
        time.sleep(2)
        own_broker.up()

    try:
        stack.start_infrastructure()
        stack.start_services()
        report = Chaos(stack, rng, restart_broker).run(scenario(8, rng), kills=12, every=(1.0, 2.5))
    finally:
        stack.stop()
    print("\n".join(report.lines()))
    assert sum(report.kills.values()) >= 10
    assert report.broker_restarts == 1
    assert report.identities == 32
    assert not report.lost, report.lines()
    assert not report.duplicated, report.lines()
    assert not report.wrong_state, report.lines()
    assert not report.repeated_comments, report.lines()
    assert report.archived >= report.distinct_deliveries
