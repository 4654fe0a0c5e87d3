"""Settings of the evaluate service: ``ALERTLINE_EVALUATE__*`` (plus the shared ``ALERTLINE_KAFKA__*``,
``ALERTLINE_RUNTIME__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from alertline.settings import BaseServiceSettings


class EvaluateOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    rules_dir: Path = Field(default=Path("/etc/alertline/rules"), description="Rule files (*.yaml, *.yml).")
    lookups_dir: Path | None = Field(
        default=None, description="Lookup files (*.yaml, *.yml, *.csv); default <rules_dir>/lookups."
    )
    reload_interval_s: float = Field(default=5.0, gt=0, description="How often the rule files are checked.")
    lookups_topic: bool = Field(default=True, description="Follow the compacted lookups topic on this replica.")
    lookups_ready_timeout_s: float = Field(
        default=300.0, gt=0, description="How long to wait at start for the lookups topic to be read to its end."
    )


class EvaluateSettings(BaseServiceSettings):
    evaluate: EvaluateOptions = Field(default_factory=EvaluateOptions)
