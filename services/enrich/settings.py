"""Enrich settings: ``ALERTLINE_*`` environment variables (nested with ``__``; lists and maps as JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alertline.settings import BaseServiceSettings, RuntimeSettings
from services.enrich.domain import Selection

_FROZEN = ConfigDict(frozen=True)
_SEL = Selection()


class ProbeSettings(BaseModel):
    model_config = _FROZEN

    allow: list[str] = Field(default_factory=list, description="CIDRs the prober may touch although not public.")
    only: list[str] = Field(
        default_factory=list, description="When set, probe nothing outside these CIDRs (labs, demo, tests)."
    )
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(default=5.0, gt=0)
    banner_wait_s: float = Field(default=1.0, ge=0, description="How long to wait for a server-first banner (SSH).")
    probe_timeout_s: float = Field(default=30.0, gt=0, description="Overall budget for one target:port.")
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_targets: int = Field(default=8, ge=1, le=256, description="Hosts probed per alert.")
    max_ports: int = Field(default=8, ge=1, le=64, description="Ports probed per host.")
    concurrency: int = Field(default=64, ge=1, le=1024, description="Probes in flight at once, all alerts together.")
    rate_per_s: float = Field(default=50.0, ge=0, description="Probe starts per second (0: unlimited).")
    per_target_concurrency: int = Field(default=2, ge=1, description="Connections at once to one address.")
    per_target_delay_s: float = Field(default=0.2, ge=0, description="Spacing of connection starts to one address.")
    cache_ttl_s: float = Field(default=60.0, ge=0, description="Reuse a probe result within one batch window.")
    user_agent: str = "alertline-probe/0.1 (+exposure check by the owner's security team)"


class ScreenshotSettings(BaseModel):
    model_config = _FROZEN

    enabled: bool = True
    chromium: str = "/usr/bin/chromium"
    timeout_s: float = Field(default=20.0, gt=0)
    concurrency: int = Field(default=2, ge=1)
    window: str = "1280,800"


class ArtifactSettings(BaseModel):
    model_config = _FROZEN

    bucket: str | None = Field(default=None, description="S3 bucket for screenshots; none: screenshots are not taken.")
    prefix: str = "screenshots/"
    endpoint_url: str | None = None
    region: str | None = None


class Ec2Settings(BaseModel):
    model_config = _FROZEN

    enabled: bool = True
    endpoint_url: str | None = None
    default_region: str = "us-east-1"
    role_arn_template: str | None = Field(default=None, description="e.g. arn:aws:iam::{account}:role/alertline-enrich")
    cache_ttl_s: float = Field(default=60.0, ge=0, description="Reuse a security group's interfaces this long.")


class FeedSettings(BaseModel):
    model_config = _FROZEN

    url: str
    kind: Literal["tor", "blocklist"] = "blocklist"
    verdict: Literal["suspicious", "malicious"] = "malicious"


def _default_feeds() -> dict[str, FeedSettings]:
    return {
        "tor-exit": FeedSettings(url="https://check.torproject.org/torbulkexitlist", kind="tor", verdict="suspicious")
    }


class ReputationSettings(BaseModel):
    model_config = _FROZEN

    feeds: dict[str, FeedSettings] = Field(default_factory=_default_feeds)
    refresh_interval_s: float = Field(default=3600.0, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)


class AbuseIpDbSettings(BaseModel):
    model_config = _FROZEN

    api_key: SecretStr | None = Field(default=None, description="Enables the AbuseIPDB enricher.")
    base_url: str = "https://api.abuseipdb.com"
    max_age_days: int = Field(default=90, ge=1, le=365)
    rate_per_s: float = Field(default=0.5, ge=0)
    cache_ttl_s: float = Field(default=86400.0, ge=0)


class GeoIpSettings(BaseModel):
    model_config = _FROZEN

    database: str | None = Field(default=None, description="Path of a MaxMind .mmdb file (City, Country or ASN).")


class SelectionSettings(BaseModel):
    model_config = _FROZEN

    exposure_control_ids: list[str] = Field(default_factory=lambda: list(_SEL.exposure_control_ids))
    exposure_finding_types: list[str] = Field(default_factory=lambda: list(_SEL.exposure_finding_types))
    intrusion_products: list[str] = Field(default_factory=lambda: list(_SEL.intrusion_products))
    intrusion_finding_types: list[str] = Field(default_factory=lambda: list(_SEL.intrusion_finding_types))
    default_ports: list[int] = Field(default_factory=lambda: list(_SEL.default_ports))

    def selection(self) -> Selection:
        return Selection(
            exposure_control_ids=tuple(self.exposure_control_ids),
            exposure_finding_types=tuple(self.exposure_finding_types),
            intrusion_products=tuple(self.intrusion_products),
            intrusion_finding_types=tuple(self.intrusion_finding_types),
            default_ports=tuple(self.default_ports),
        )


class RecheckSettings(BaseModel):
    model_config = _FROZEN

    interval_s: float = Field(default=6 * 3600.0, gt=0, description="Time between re-checks of one open exposure.")
    tick_interval_s: float = Field(default=60.0, gt=0, description="How often due re-checks are looked for.")
    max_per_tick: int = Field(default=200, ge=1, description="Identities re-checked per partition per tick.")
    max_age_days: float = Field(
        default=30.0, gt=0, description="Stop re-checking when no alert was seen for this long."
    )


class EnrichSettings(BaseServiceSettings):
    # Probes make a batch slow: smaller batches keep a transaction and the liveness window short.
    runtime: RuntimeSettings = Field(default_factory=lambda: RuntimeSettings.model_validate({"batch_size": 100}))
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    screenshot: ScreenshotSettings = Field(default_factory=ScreenshotSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    ec2: Ec2Settings = Field(default_factory=Ec2Settings)
    reputation: ReputationSettings = Field(default_factory=ReputationSettings)
    abuseipdb: AbuseIpDbSettings = Field(default_factory=AbuseIpDbSettings)
    geoip: GeoIpSettings = Field(default_factory=GeoIpSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    recheck: RecheckSettings = Field(default_factory=RecheckSettings)
    batch_timeout_s: float = Field(default=240.0, gt=0, description="Upper bound on investigating one batch.")
