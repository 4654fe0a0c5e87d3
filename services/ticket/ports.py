"""What the service needs from an issue tracker (GitHub, or shadow mode's recorder)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.ticket.domain import AddComment, CreateIssue, Observation, UpdateIssue
from services.ticket.text import Marker


@dataclass(frozen=True)
class IssueRef:
    repository: str
    number: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ListedIssue:
    repository: str
    marker: Marker
    observation: Observation
    created_at: datetime


class Tracker(Protocol):
    shadow: bool

    def preflight(self, writes: int) -> None:
        """Raise ``Transient`` unless ``writes`` writes fit the limits now (no partial work)."""

    def invalidate(self) -> None:
        """Partitions moved: issues other replicas created are not in our index yet."""

    def find(self, repository: str, marker: Marker, not_before: datetime) -> IssueRef | None:
        """Our issue carrying ``marker`` if one was created at or after ``not_before``."""

    def create(self, action: CreateIssue) -> IssueRef: ...

    def get(self, repository: str, number: int) -> Observation | None:
        """The issue now; None if it was deleted or transferred away."""

    def update(self, action: UpdateIssue, current: Observation | None) -> Observation | None:
        """Bring the issue to the action's shape; the issue after our writes (None: no write)."""

    def suspect(self, repository: str, number: int) -> bool:
        """True if a write to this issue may have happened without us seeing its result."""

    def has_comment(self, repository: str, number: int, key: str, since: datetime) -> bool: ...

    def comment(self, action: AddComment) -> datetime: ...

    def drain_intents(self) -> list[dict[str, Any]]:
        """Shadow mode: the actions recorded since the last call (empty for GitHub)."""

    def list_ours(self, repository: str, since: datetime | None, state: str = "all") -> Iterator[ListedIssue]:
        """Issues our login created with our marker, updated at or after ``since``."""
