"""Settings of the evaluate service (environment: ``ALERTLINE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from alertline.settings import BaseServiceSettings


class EvaluateSettings(BaseServiceSettings):
    rules_dir: Path = Field(default=Path("/etc/alertline/rules"), description="Rule files (*.yaml, *.yml).")
    lookups_dir: Path | None = Field(
        default=None, description="Lookup files (*.yaml, *.yml, *.csv); default <rules_dir>/lookups."
    )
    reload_interval_s: float = Field(default=5.0, gt=0, description="How often the rule files are checked.")
    lookups_topic: bool = Field(default=True, description="Follow the compacted lookups topic on this replica.")
    lookups_ready_timeout_s: float = Field(
        default=300.0, gt=0, description="How long to wait at start for the lookups topic to be read to its end."
    )
