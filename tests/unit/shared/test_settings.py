"""Settings come from ALERTLINE_* variables and secret files; they are frozen; no credentials default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from alertline.settings import BaseServiceSettings


def test_settings_read_prefixed_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTLINE_KAFKA__BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("ALERTLINE_KAFKA__TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("ALERTLINE_RUNTIME__BATCH_SIZE", "42")
    s = BaseServiceSettings()
    assert s.kafka.bootstrap == "broker:9092"
    assert s.kafka.topic_prefix == "staging."
    assert s.runtime.batch_size == 42


def test_settings_are_frozen() -> None:
    s = BaseServiceSettings()
    with pytest.raises(ValidationError):
        s.kafka = s.kafka  # type: ignore[misc]


def test_invalid_values_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTLINE_RUNTIME__BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        BaseServiceSettings()


def test_no_credential_has_a_default_and_secrets_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    s = BaseServiceSettings()
    assert s.kafka.sasl_password is None and s.kafka.schema_registry_auth is None
    monkeypatch.setenv("ALERTLINE_KAFKA__SASL_PASSWORD", "hunter2")
    s = BaseServiceSettings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.kafka.client_config()["sasl.password"] == "hunter2"


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "ALERTLINE_KAFKA__SASL_USERNAME").write_text("svc")
    (tmp_path / "ALERTLINE_KAFKA__SASL_PASSWORD").write_text("from-file\n")
    s = BaseServiceSettings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    assert s.kafka.sasl_username == "svc"
    assert s.kafka.client_config()["sasl.password"] == "from-file"
