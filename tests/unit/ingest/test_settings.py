"""Ingest settings: sources switched on by environment, secrets by reference, nothing defaulted."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.ingest.settings import IngestSettings


def test_an_enabled_source_without_its_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTLINE_SQS__ENABLED", "true")
    with pytest.raises(ValidationError, match="ALERTLINE_SQS__QUEUE_URL"):
        IngestSettings()


def test_event_hubs_secrets_are_read_from_the_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ALERTLINE_EVENTHUBS__CONNECTION").write_text(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=k"
    )
    monkeypatch.setenv("ALERTLINE_EVENTHUBS__ENABLED", "true")
    monkeypatch.setenv("ALERTLINE_EVENTHUBS__EVENTHUB", "defender")
    s = IngestSettings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    assert s.eventhubs.connection is not None
    assert s.eventhubs.connection.get_secret_value().startswith("Endpoint=sb://")
    assert "SharedAccessKey" not in repr(s)


def test_settings_are_frozen_and_default_to_no_source() -> None:
    s = IngestSettings()
    assert not (s.sqs.enabled or s.pubsub.enabled or s.eventhubs.enabled)
    assert s.eventhubs.connection is None and s.archive.bucket == ""
    with pytest.raises(ValidationError):
        s.max_record_bytes = 5  # type: ignore[misc]
