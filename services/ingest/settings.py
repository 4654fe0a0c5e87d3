"""Ingest settings: one frozen object from ``ALERTLINE_*`` variables (nested with ``__``).

Secrets (the Event Hubs and checkpoint-store connection strings) are read by reference: a
file named after the variable (``ALERTLINE_EVENTHUBS__CONNECTION``) in ``ALERTLINE_SECRETS_DIR``
(a mounted Kubernetes Secret), or the variable itself; they have no defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from alertline.settings import BaseServiceSettings


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str = Field(
        default="", description="S3 bucket that receives every raw delivery before anything is published."
    )
    prefix: str = Field(default="raw/", description="Key prefix; keys are <prefix><source>/YYYY/MM/DD/<sha256>.json.")
    region: str | None = Field(None, description="AWS region of the bucket (default: the SDK's).")


class AwsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_url: str | None = Field(None, description="Override the S3/SQS endpoint (moto, LocalStack) for local use.")
    region: str | None = Field(None, description="AWS region (default: the SDK's resolution chain).")
    connect_timeout_s: float = 5.0
    read_timeout_s: float = Field(
        default=30.0, description="Must exceed sqs.wait_s (long polling holds the request open)."
    )


class SqsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    queue_url: str = ""
    wait_s: int = Field(
        default=20, ge=0, le=20, description="Long-polling wait (WaitTimeSeconds); bounds SIGTERM drain too."
    )
    max_messages: int = Field(default=10, ge=1, le=10)
    visibility_timeout_s: int = Field(
        default=120,
        ge=2,
        le=43200,
        description="Requested per receive; extended while a message is still being processed.",
    )
    max_object_bytes: int = Field(
        default=256 * 1024 * 1024, description="Largest (decompressed) S3 object read from a notification."
    )


class PubSubSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    subscription: str = Field(default="", description="projects/<project>/subscriptions/<name>")
    max_messages: int = Field(default=100, ge=1, description="Flow control: messages leased at once.")
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Callbacks (and Kafka transactional producers) in parallel."
    )


class EventHubsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    eventhub: str = Field(default="", description="Event Hub name (the export target of Defender for Cloud).")
    consumer_group: str = "$Default"
    checkpoint_container: str = Field(
        default="", description="Blob container holding checkpoints and partition ownership."
    )
    max_batch_size: int = Field(default=100, ge=1)
    max_wait_s: float = Field(default=5.0, gt=0)
    # Secrets by reference: files ALERTLINE_EVENTHUBS__CONNECTION and
    # ALERTLINE_EVENTHUBS__CHECKPOINT_CONNECTION in ALERTLINE_SECRETS_DIR (a mounted Secret).
    connection: SecretStr | None = Field(default=None, description="Event Hubs connection string (listen).")
    checkpoint_connection: SecretStr | None = Field(
        default=None, description="Azure Storage connection string for the blob checkpoint store."
    )
    starting_position: str = Field(
        default="-1", description="Where a partition without checkpoint starts: -1 = earliest."
    )


class IngestSettings(BaseServiceSettings):
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)  # type: ignore[arg-type]
    aws: AwsSettings = Field(default_factory=AwsSettings)  # type: ignore[arg-type]
    sqs: SqsSettings = Field(default_factory=SqsSettings)
    pubsub: PubSubSettings = Field(default_factory=PubSubSettings)
    eventhubs: EventHubsSettings = Field(default_factory=EventHubsSettings)

    max_record_bytes: int = Field(
        default=1_000_000, ge=10_000, description="Largest Kafka record produced (the broker default is ~1 MiB)."
    )
    dead_letter_budget_bytes: int = Field(
        default=16 * 1024 * 1024, description="Original bytes copied into the dead letters of one delivery, at most."
    )
    test_crash_after_publish: bool = Field(
        default=False,
        description="TEST ONLY: os._exit(137) right after a Kafka commit and before the source ack, "
        "so tests can show a crash there loses nothing.",
    )

    @model_validator(mode="after")
    def _check(self) -> IngestSettings:
        missing = []
        if self.sqs.enabled and not self.sqs.queue_url:
            missing.append("ALERTLINE_SQS__QUEUE_URL")
        if self.pubsub.enabled and not self.pubsub.subscription:
            missing.append("ALERTLINE_PUBSUB__SUBSCRIPTION")
        if self.eventhubs.enabled:
            if not self.eventhubs.eventhub:
                missing.append("ALERTLINE_EVENTHUBS__EVENTHUB")
            if self.eventhubs.connection is None:
                missing.append("ALERTLINE_EVENTHUBS__CONNECTION")
        if missing:
            raise ValueError("enabled sources need: " + ", ".join(missing))
        return self
