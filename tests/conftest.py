"""Shared fixtures: one real Kafka broker per test run (or KAFKA_BOOTSTRAP), fresh topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertline.kafka.local import LocalKafka

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real broker: KAFKA_BOOTSTRAP, or one started for this run."""
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    port = int(os.environ.get("ALERTLINE_TEST_KAFKA_PORT", "29092"))
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), port=port, controller_port=port + 1, heap="1g")
    broker.up()
    try:
        yield broker.bootstrap
    finally:
        broker.kill()  # throwaway data: no need to wait for a graceful stop


@pytest.fixture
def prefix() -> str:
    """A fresh topic prefix per test, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, prefix: str):  # type: ignore[no-untyped-def]
    from alertline.settings import KafkaSettings

    return KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=prefix, partitions=3, transaction_timeout_ms=10000)
