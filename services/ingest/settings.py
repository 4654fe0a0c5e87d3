"""Ingest settings: one frozen object from ``ALERTLINE_*`` variables (nested with ``__``).

The names are the ones the Helm chart sets (deploy/helm/alertline/templates/_helpers.tpl): a
source is on when it is configured (queue URLs, subscriptions, an Event Hubs namespace).
Secrets (Event Hubs and checkpoint-store connection strings) come by reference: a Kubernetes
``secretKeyRef`` into the variable, or a file of the variable's name in
``ALERTLINE_SECRETS_DIR``; without them the Azure clients use Workload Identity
(``DefaultAzureCredential``). No credential has a default.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from alertline.settings import BaseServiceSettings


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str = Field(default="", description="S3 bucket receiving every raw delivery before anything is published.")
    prefix: str = Field(default="raw/", description="Key prefix: <prefix><source>/YYYY/MM/DD/<sha256>.json.")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint of the archive.")
    region: str | None = Field(default=None, description="Region of the archive bucket (default: the SDK's).")


class AwsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_url: str | None = Field(default=None, description="SQS/S3 endpoint override (moto, LocalStack).")
    region: str | None = Field(default=None, description="Region (default: AWS_REGION / the SDK's chain).")
    connect_timeout_s: float = 5.0
    read_timeout_s: float = Field(default=30.0, description="Must exceed ingest.sqs.wait_s (long polls).")


class SqsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    queue_urls: list[str] = Field(default_factory=list, description="Queues to poll; empty disables SQS.")
    wait_s: int = Field(default=20, ge=0, le=20, description="Long-poll wait; also bounds the SIGTERM drain.")
    max_messages: int = Field(default=10, ge=1, le=10, description="Messages per receive = one transaction.")
    visibility_timeout_s: int = Field(
        default=120, ge=2, le=43200, description="Requested per receive; extended while still processing."
    )
    max_object_bytes: int = Field(default=256 * 1024 * 1024, description="Largest (decompressed) S3 object read.")


class PubSubSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    subscriptions: list[str] = Field(
        default_factory=list, description="projects/<p>/subscriptions/<s>; empty disables Pub/Sub."
    )
    max_messages: int = Field(default=100, ge=1, description="Flow control: messages leased at once.")
    concurrency: int = Field(default=4, ge=1, le=64, description="Callbacks (each with a producer) in parallel.")


class EventHubsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    fully_qualified_namespace: str = Field(default="", description="<ns>.servicebus.windows.net; empty disables.")
    eventhub_name: str = ""
    consumer_group: str = "$Default"
    connection_string: SecretStr | None = Field(default=None, description="Listen connection string (secret).")
    checkpoint_container_url: str = Field(
        default="", description="https://<account>.blob.core.windows.net/<container> for checkpoints."
    )
    checkpoint_connection_string: SecretStr | None = Field(default=None, description="Storage connection (secret).")
    max_batch_size: int = Field(default=100, ge=1)
    max_wait_s: float = Field(default=5.0, gt=0)
    starting_position: str = Field(default="-1", description="Start of a partition without checkpoint (-1: earliest).")

    def checkpoint_account_and_container(self) -> tuple[str, str]:
        u = urlsplit(self.checkpoint_container_url)
        container = u.path.strip("/").split("/", 1)[0]
        return f"{u.scheme}://{u.netloc}", container


class IngestSourceSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    sqs: SqsSettings = Field(default_factory=SqsSettings)
    pubsub: PubSubSettings = Field(default_factory=PubSubSettings)
    eventhubs: EventHubsSettings = Field(default_factory=EventHubsSettings)
    max_record_bytes: int = Field(
        default=1_000_000, ge=10_000, description="Largest Kafka record produced (broker default ~1 MiB)."
    )
    dead_letter_budget_bytes: int = Field(
        default=16 * 1024 * 1024, description="Original bytes copied into the dead letters of one delivery."
    )

    @model_validator(mode="after")
    def _check(self) -> IngestSourceSettings:
        eh = self.eventhubs
        if eh.fully_qualified_namespace:
            missing = [
                name
                for name, value in (
                    ("ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME", eh.eventhub_name),
                    ("ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL", eh.checkpoint_container_url),
                )
                if not value
            ]
            if missing:
                raise ValueError("Event Hubs needs " + ", ".join(missing))
            if not all(eh.checkpoint_account_and_container()):
                raise ValueError("ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL must name a container")
        return self


class IngestSettings(BaseServiceSettings):
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    ingest: IngestSourceSettings = Field(default_factory=IngestSourceSettings)
    test_crash_after_publish: bool = Field(
        default=False,
        description="TEST ONLY (ALERTLINE_TEST_CRASH_AFTER_PUBLISH): os._exit(137) right after a Kafka commit, "
        "before the source ack, so tests can show a crash there loses nothing.",
    )
