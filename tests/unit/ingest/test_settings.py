"""Ingest settings: the Helm chart's variable names, sources on when configured, secrets by reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.ingest.settings import IngestSettings


def test_sources_are_switched_on_by_the_chart_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTLINE_INGEST__SQS__QUEUE_URLS", json.dumps(["https://sqs/q1", "https://sqs/q2"]))
    monkeypatch.setenv("ALERTLINE_INGEST__PUBSUB__SUBSCRIPTIONS", json.dumps(["projects/p/subscriptions/s"]))
    monkeypatch.setenv("ALERTLINE_ARCHIVE__BUCKET", "archive")
    monkeypatch.setenv("ALERTLINE_ARCHIVE__ENDPOINT_URL", "http://127.0.0.1:9000")
    s = IngestSettings()
    assert s.ingest.sqs.queue_urls == ["https://sqs/q1", "https://sqs/q2"]
    assert s.ingest.pubsub.subscriptions == ["projects/p/subscriptions/s"]
    assert s.archive.endpoint_url == "http://127.0.0.1:9000"
    assert not s.ingest.eventhubs.fully_qualified_namespace


def test_event_hubs_without_a_checkpoint_container_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE", "ns.servicebus.windows.net")
    monkeypatch.setenv("ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME", "defender")
    with pytest.raises(ValidationError, match="CHECKPOINT_CONTAINER_URL"):
        IngestSettings()


def test_event_hubs_secrets_are_read_from_the_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ALERTLINE_INGEST__EVENTHUBS__CONNECTION_STRING").write_text(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=k"
    )
    monkeypatch.setenv("ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE", "ns.servicebus.windows.net")
    monkeypatch.setenv("ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME", "defender")
    monkeypatch.setenv(
        "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL", "https://acct.blob.core.windows.net/checkpoints"
    )
    s = IngestSettings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    eh = s.ingest.eventhubs
    assert eh.connection_string is not None
    assert eh.connection_string.get_secret_value().startswith("Endpoint=sb://")
    assert "SharedAccessKey" not in repr(s)
    assert eh.checkpoint_account_and_container() == ("https://acct.blob.core.windows.net", "checkpoints")


def test_settings_are_frozen_and_default_to_no_source() -> None:
    s = IngestSettings()
    i = s.ingest
    assert not (i.sqs.queue_urls or i.pubsub.subscriptions or i.eventhubs.fully_qualified_namespace)
    assert i.eventhubs.connection_string is None and s.archive.bucket == ""
    with pytest.raises(ValidationError):
        s.test_crash_after_publish = True  # type: ignore[misc]
