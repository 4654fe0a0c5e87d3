"""Scan settings: one frozen object from ``ALERTLINE_*`` variables (nested with ``__``).

Maps, not lists, where an operator names things (accounts, inventory sources), so a Helm value
file can override one entry. Maps and lists can also be given as JSON in one variable, e.g.
``ALERTLINE_AWS__ACCOUNTS='{"111111111111": "prod"}'``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alertline.settings import BaseServiceSettings


class AwsScanSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(default=False, description="Scan AWS accounts.")
    accounts: dict[str, str] = Field(default_factory=dict, description="Account id -> display name to scan.")
    organizations: bool = Field(
        default=False,
        description="Also scan every ACTIVE account AWS Organizations lists (needs organizations:ListAccounts).",
    )
    exclude_accounts: list[str] = Field(default_factory=list, description="Account ids never scanned.")
    regions: list[str] = Field(default_factory=lambda: ["us-east-1"], description="Regions scanned in every account.")
    role_name: str = Field(default="AlertlineScan", description="Role assumed in each account.")
    role_path: str = Field(default="/", description="Path of that role, e.g. /security/.")
    external_id: SecretStr | None = Field(default=None, description="sts:ExternalId, when the roles require one.")
    partition: str = Field(default="aws", description="aws | aws-us-gov | aws-cn")
    session_duration_s: int = Field(default=3600, ge=900, le=43200)
    endpoint_url: str | None = Field(
        default=None, description="Override every AWS endpoint (moto, LocalStack). Local use only."
    )
    organization: str | None = Field(default=None, description="Organization id or name put on the alerts.")
    concurrency: int = Field(default=4, ge=1, le=64, description="Units (account x region) collected in parallel.")
    max_attempts: int = Field(default=5, ge=1, le=20, description="botocore standard-mode attempts per API call.")
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    @field_validator("accounts")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [a for a in v if not (len(a) == 12 and a.isdigit())]
        if bad:
            raise ValueError(f"AWS account ids are 12 digits: {', '.join(bad)}")
        return v

    @field_validator("role_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not (v.startswith("/") and v.endswith("/")):
            raise ValueError("role_path starts and ends with '/'")
        return v


class InventorySource(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: Literal["gcp-cai", "azure-arg"] = Field(
        description="gcp-cai: Cloud Asset Inventory export (JSON lines); azure-arg: Resource Graph query output."
    )
    uri: str = Field(description="A local path, file://..., s3://bucket/key, or s3://bucket/prefix/ (every object).")
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint for s3:// (e.g. https://storage.googleapis.com with HMAC keys).",
    )
    region: str | None = None
    covers: list[str] = Field(
        default_factory=list,
        description="Resource kinds this export always covers, even when none are in it "
        "(lets 'the last one was deleted' resolve).",
    )
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest export read (bytes, all objects).")


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str = Field(default="", description="S3 bucket for raw scan results (required unless --dry-run).")
    prefix: str = Field(default="raw/", description="Keys are <prefix>scan/YYYY/MM/DD/<sha256>.json, as ingest's.")
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="Override the S3 endpoint (moto, LocalStack).")


class ScanPaths(BaseModel):
    model_config = ConfigDict(frozen=True)

    checks_dir: str | None = Field(
        default=None, description="One more checks directory (the Helm chart mounts its checks ConfigMap here)."
    )


class ScanSettings(BaseServiceSettings):
    aws: AwsScanSettings = Field(default_factory=AwsScanSettings)
    inventory: dict[str, InventorySource] = Field(
        default_factory=dict, description="Name -> inventory export; the name is the unit of resolution."
    )
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    checks_dirs: list[str] = Field(
        default_factory=list,
        description="More check directories; a check with a shipped check's id replaces it.",
    )
    include_shipped_checks: bool = Field(default=True, description="Use the checks shipped in services/scan/checks.")
    disabled_checks: list[str] = Field(
        default_factory=list, description="Check ids not run (their open findings are held, not resolved)."
    )
    scan: ScanPaths = Field(default_factory=ScanPaths)
    always_publish: bool = Field(
        default=False, description="Publish every failing finding each scan, not only new or changed ones."
    )
    transactional_id: str | None = Field(
        default=None, description="Kafka transactional id (default <prefix>scan): a stale overlapping run is fenced."
    )
    pushgateway_url: str | None = Field(
        default=None, description="Push the run's metrics to this Prometheus Pushgateway."
    )
    state_read_timeout_s: float = Field(
        default=120.0, gt=0, description="Bound on reading the scan state topic at start."
    )

    @field_validator("inventory")
    @classmethod
    def _names(cls, v: dict[str, InventorySource]) -> dict[str, InventorySource]:
        bad = [n for n in v if not n or not all(ch.isalnum() or ch in "-_." for ch in n)]
        if bad:
            raise ValueError(f"inventory source names hold letters, digits, '-', '_', '.': {bad}")
        return v

    @model_validator(mode="after")
    def _something(self) -> ScanSettings:
        if self.aws.enabled and not (self.aws.accounts or self.aws.organizations):
            raise ValueError("aws.enabled needs ALERTLINE_AWS__ACCOUNTS or ALERTLINE_AWS__ORGANIZATIONS=true")
        return self
