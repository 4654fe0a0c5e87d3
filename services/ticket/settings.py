"""Ticket service settings (``ALERTLINE_`` environment variables, ``__`` for nesting).

The Helm chart sets ``ALERTLINE_TICKET__SHADOW`` and the ``ALERTLINE_GITHUB__*`` variables
(docs/configuration.md); everything else has a default and is listed in docs/tickets.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alertline.errors import ConfigError
from alertline.settings import BaseServiceSettings
from services.ticket.domain import Policy


def _secret(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {what} from {path}: {exc}") from exc
    return None


class GitHubSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    api_url: str = Field(default="https://api.github.com", description="REST API root (Enterprise, or the fake).")
    repository: str | None = Field(default=None, description="Default owner/name when no rule routes elsewhere.")
    repository_override: str | None = Field(default=None, description="Every issue goes here (staging).")
    repositories: list[str] = Field(default_factory=list, description="More owner/name to reconcile and rebuild.")
    token: SecretStr | None = Field(default=None, description="A token with Issues read/write, when no App is set.")
    token_file: Path | None = None
    app_id: int | None = Field(default=None, description="GitHub App id (App authentication).")
    installation_id: int | None = Field(default=None, description="The App's installation on the repositories.")
    app_private_key: SecretStr | None = Field(default=None, description="The App's PEM private key.")
    app_private_key_file: Path | None = None
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC secret of X-Hub-Signature-256.")
    login: str | None = Field(default=None, description="Our issues' author; default: asked from GitHub.")
    timeout_s: int = Field(default=15, ge=1)
    per_page: int = Field(default=100, ge=1, le=100)
    writes_per_minute: int = Field(default=80, ge=1, description="Content-creating requests per minute window.")
    minute_window_s: float = Field(default=60.0, gt=0)
    writes_per_hour: int = Field(default=500, ge=1, description="Content-creating requests per hour window.")
    hour_window_s: float = Field(default=3600.0, gt=0)

    def token_value(self) -> str | None:
        return _secret(self.token, self.token_file, "github.token")

    def private_key_value(self) -> str | None:
        return _secret(self.app_private_key, self.app_private_key_file, "github.app_private_key")

    def uses_app(self) -> bool:
        return self.app_id is not None

    def check_credentials(self) -> None:
        if self.uses_app():
            if self.installation_id is None or self.private_key_value() is None:
                raise ConfigError("GitHub App auth needs ALERTLINE_GITHUB__INSTALLATION_ID and __APP_PRIVATE_KEY")
        elif self.token_value() is None:
            raise ConfigError(
                "no GitHub credentials: set ALERTLINE_GITHUB__APP_ID (+ INSTALLATION_ID, APP_PRIVATE_KEY) or "
                "ALERTLINE_GITHUB__TOKEN, or run in shadow mode (ALERTLINE_TICKET__SHADOW=true)"
            )

    def all_repositories(self) -> list[str]:
        out = [r for r in (self.repository_override, self.repository) if r]
        return list(dict.fromkeys(out + list(self.repositories)))


class TicketOptions(BaseModel):
    """The ticket service's own options: ``ALERTLINE_TICKET__<NAME>``."""

    model_config = ConfigDict(frozen=True)

    shadow: bool = Field(default=False, description="Write intended actions to tickets.actions and the log only.")
    webhook_path: str = Field(default="/webhook/github", description="Where GitHub delivers issue events.")
    recurrence_comment_window_s: float = Field(default=86400.0, ge=0, description="One 'seen again' comment per.")
    reopen_window_s: float = Field(default=30 * 86400.0, ge=0, description="Closed longer than this: a new issue.")
    not_planned: Literal["stay_closed", "new_issue"] = "stay_closed"
    inactivity_s: dict[str, float] = Field(
        default_factory=lambda: {"guardduty": 14 * 86400.0},
        description="product -> seconds without activity before closing (sources that never resolve).",
    )
    storm_enabled: bool = True
    storm_window_s: float = Field(default=900.0, gt=0)
    storm_key_threshold: int = Field(default=3, ge=1, description="New identities per group key and partition.")
    storm_partition_threshold: int = Field(default=10, ge=1, description="Individual issues per partition.")
    page_size: int = Field(default=200, ge=1, le=400)
    storm_max_pages: int = Field(default=5, ge=1, description="Issues listing one group; beyond, counted only.")
    flush_quiet_s: float = Field(default=120.0, ge=0)
    flush_max_delay_s: float = Field(default=600.0, ge=0)
    body_refresh_s: float = Field(
        default=600.0, ge=0, description="A recurrence alone rewrites the issue body at most once per (0: always)."
    )
    reconcile_interval_s: float = Field(default=300.0, ge=0, description="0 turns the periodic reconcile off.")
    reconcile_lookback_s: float = Field(default=86400.0, ge=0, description="How far back the first pass looks.")
    tick_interval_s: float = Field(default=30.0, gt=0)
    adopt_margin_s: float = Field(default=600.0, ge=0, description="Clock-skew margin when finding our issues.")

    def to_policy(self, default_repository: str, repository_override: str | None = None) -> Policy:
        return Policy(
            default_repository=default_repository,
            repository_override=repository_override,
            recurrence_comment_window=timedelta(seconds=self.recurrence_comment_window_s),
            reopen_window=timedelta(seconds=self.reopen_window_s),
            not_planned=self.not_planned,
            inactivity={k: timedelta(seconds=v) for k, v in self.inactivity_s.items()},
            storm_enabled=self.storm_enabled,
            storm_window=timedelta(seconds=self.storm_window_s),
            storm_key_threshold=self.storm_key_threshold,
            storm_partition_threshold=self.storm_partition_threshold,
            page_size=self.page_size,
            max_pages=self.storm_max_pages,
            flush_quiet=timedelta(seconds=self.flush_quiet_s),
            flush_max_delay=timedelta(seconds=self.flush_max_delay_s),
            body_refresh=timedelta(seconds=self.body_refresh_s),
        )


class TicketSettings(BaseServiceSettings):
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    ticket: TicketOptions = Field(default_factory=TicketOptions)
