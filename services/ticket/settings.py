"""Ticket service settings (``ALERTLINE_`` environment variables, ``__`` for nesting).

Examples: ``ALERTLINE_GITHUB__TOKEN``, ``ALERTLINE_GITHUB__DEFAULT_REPOSITORY=acme/security-alerts``,
``ALERTLINE_POLICY__REOPEN_WINDOW_S=604800``, ``ALERTLINE_SHADOW=true``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alertline.errors import ConfigError
from alertline.settings import BaseServiceSettings
from services.ticket.domain import Policy


class GitHubSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_url: str = Field(
        default="https://api.github.com", description="REST API root; GitHub Enterprise or the local fake."
    )
    token: SecretStr | None = Field(default=None, description="Token (PAT or installation token) with issues: write.")
    token_file: Path | None = Field(
        default=None, description="File holding the token (a mounted Secret); read at start."
    )
    login: str | None = Field(default=None, description="Login our issues are created by; default: asked from /user.")
    default_repository: str | None = Field(default=None, description="owner/name when the rule does not route.")
    repositories: list[str] = Field(default_factory=list, description="Also reconciled and rebuilt (owner/name).")
    timeout_s: int = Field(default=15, ge=1)
    per_page: int = Field(default=100, ge=1, le=100)
    writes_per_minute: int = Field(default=80, ge=1, description="Content-creating requests per minute window.")
    minute_window_s: float = Field(default=60.0, gt=0)
    writes_per_hour: int = Field(default=500, ge=1, description="Content-creating requests per hour window.")
    hour_window_s: float = Field(default=3600.0, gt=0)

    def token_value(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read github.token_file {self.token_file}: {exc}") from exc
        raise ConfigError("set ALERTLINE_GITHUB__TOKEN or ALERTLINE_GITHUB__TOKEN_FILE (or run in shadow mode)")

    def all_repositories(self) -> list[str]:
        out = [self.default_repository] if self.default_repository else []
        return out + [r for r in self.repositories if r not in out]


class PolicySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    recurrence_comment_window_s: float = Field(
        default=86400.0, ge=0, description="At most one 'seen again' comment per."
    )
    reopen_window_s: float = Field(default=30 * 86400.0, ge=0, description="Closed longer than this: a new issue.")
    not_planned: Literal["stay_closed", "new_issue"] = "stay_closed"
    inactivity_s: dict[str, float] = Field(
        default_factory=lambda: {"guardduty": 14 * 86400.0},
        description="product -> seconds without activity before closing (sources that never resolve).",
    )
    storm_enabled: bool = True
    storm_window_s: float = Field(default=900.0, gt=0)
    storm_key_threshold: int = Field(
        default=3, ge=1, description="New identities per group key and partition per window."
    )
    storm_partition_threshold: int = Field(default=10, ge=1, description="Individual issues per partition per window.")
    page_size: int = Field(default=200, ge=1, le=400)
    flush_quiet_s: float = Field(default=120.0, ge=0)
    flush_max_delay_s: float = Field(default=600.0, ge=0)

    def to_policy(self, default_repository: str) -> Policy:
        return Policy(
            default_repository=default_repository,
            recurrence_comment_window=timedelta(seconds=self.recurrence_comment_window_s),
            reopen_window=timedelta(seconds=self.reopen_window_s),
            not_planned=self.not_planned,
            inactivity={k: timedelta(seconds=v) for k, v in self.inactivity_s.items()},
            storm_enabled=self.storm_enabled,
            storm_window=timedelta(seconds=self.storm_window_s),
            storm_key_threshold=self.storm_key_threshold,
            storm_partition_threshold=self.storm_partition_threshold,
            page_size=self.page_size,
            flush_quiet=timedelta(seconds=self.flush_quiet_s),
            flush_max_delay=timedelta(seconds=self.flush_max_delay_s),
        )


class TicketSettings(BaseServiceSettings):
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    shadow: bool = Field(
        default=False, description="Write intended actions to tickets.actions and the log, not GitHub."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="GitHub webhook secret; no secret, no webhook route."
    )
    webhook_path: str = "/github/webhook"
    reconcile_interval_s: float = Field(default=300.0, ge=0, description="0 turns the periodic reconcile off.")
    reconcile_lookback_s: float = Field(default=86400.0, ge=0, description="How far back the first reconcile looks.")
    tick_interval_s: float = Field(default=30.0, gt=0)
    adopt_margin_s: float = Field(default=600.0, ge=0, description="Clock-skew margin when looking for our own issues.")
