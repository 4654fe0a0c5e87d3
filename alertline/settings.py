"""Settings: one frozen, validated object per service, read from the environment.

Every variable has the ``ALERTLINE_`` prefix (nested fields use ``__``), secrets may also
come from files in ``ALERTLINE_SECRETS_DIR`` (one file per field, as Kubernetes mounts
Secrets). No credential has a default.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    schema_registry_url: str | None = Field(None, description="Use the Confluent wire format via this registry.")
    schema_registry_auth: SecretStr | None = None
    topic_prefix: str = Field("alertline.", description="Prefix of every topic; staging uses another.")
    partitions: int = 6
    replication: int = 1
    retention_ms: int = 14 * 24 * 3600 * 1000
    transaction_timeout_ms: int = 60_000
    extra: dict[str, str] = Field(default_factory=dict, description="Extra librdkafka properties.")

    def client_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
            # librdkafka's own log lines go through logging, so they come out as JSON too.
            "logger": logging.getLogger("alertline.kafka.client"),
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        conf.update(self.extra)
        return conf


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(500, ge=1, le=100_000)
    poll_timeout_s: float = Field(0.5, gt=0)
    batch_linger_s: float = Field(0.02, ge=0, description="After the first record, wait this long to fill a batch.")
    prefetch_kbytes: int = Field(16384, ge=1024, description="Records fetched ahead of the handler, at most (KB).")
    http_host: str = "0.0.0.0"  # noqa: S104 - the health/metrics endpoint must be reachable by the kubelet
    http_port: int = Field(8080, ge=0, le=65535, description="0 picks a free port.")
    instance_id: str = Field(
        default_factory=socket.gethostname, description="Stable per replica; names the transactional id."
    )
    static_membership: bool = Field(
        False, description="Use instance_id as group.instance.id; only with stable pod names (StatefulSet)."
    )
    session_timeout_ms: int = Field(30000, ge=6000, description="How long a silent replica keeps its partitions.")
    pipeline_commits: bool = Field(
        True,
        description="Commit a batch's transaction on a second thread while the next batch's handlers "
        "run (stateless stages only).",
    )
    gc_threshold: int = Field(
        10_000,
        ge=0,
        description="Allocations between young-generation garbage collections once running; what was "
        "loaded at startup is frozen out of collection. 0 keeps Python's defaults.",
    )
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    log_level: str = "INFO"


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTLINE_",
        env_nested_delimiter="__",
        # A mounted Secret's keys are file names like ALERTLINE_KAFKA__SASL_PASSWORD.
        secrets_dir=os.environ.get("ALERTLINE_SECRETS_DIR") or None,
        secrets_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, NestedSecretsSettingsSource(file_secret_settings)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # type: ignore[arg-type]
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)  # type: ignore[arg-type]
