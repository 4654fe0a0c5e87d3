"""Shadow mode: record the GitHub actions the service would take instead of taking them.

Staging reads production's alerts with its own topic prefix and this tracker: every intended
action goes to ``tickets.actions`` (and the log), state evolves as if GitHub had obeyed, and
nothing is written anywhere a responder looks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from alertline.clock import Clock, iso, utcnow
from services.ticket.domain import AddComment, CreateIssue, Observation, UpdateIssue
from services.ticket.ports import IssueRef, ListedIssue
from services.ticket.text import Marker

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def shadow_number(marker: Marker) -> int:
    """A stable made-up issue number (the same marker always gets the same one)."""
    return int(hashlib.sha256(marker.key.encode()).hexdigest()[:7], 16) + 1


class ShadowTracker:
    shadow = True

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self._intents: list[dict[str, Any]] = []

    def _record(self, action: str, repository: str, **fields: Any) -> None:
        intent = {"action": action, "repository": repository, "at": iso(self.clock()), **fields}
        self._intents.append(intent)
        log.info("shadow: would %s", action, extra={"intent": action, "repository": repository,
                                                     "issue": fields.get("number")})  # fmt: skip

    def preflight(self, writes: int) -> None:
        return None

    def invalidate(self) -> None:
        return None

    def find(self, repository: str, marker: Marker, not_before: datetime) -> IssueRef | None:
        return None

    def create(self, action: CreateIssue) -> IssueRef:
        n = shadow_number(action.marker)
        self._record("create_issue", action.repository, number=n, marker=action.marker.key, title=action.title,
                     labels=list(action.labels), assignees=list(action.assignees), body=action.body)  # fmt: skip
        now = self.clock()
        return IssueRef(action.repository, n, now, now)

    def get(self, repository: str, number: int) -> Observation | None:
        # Unknown: an observation older than anything we wrote, so it never looks like a human change.
        return Observation(number, "unknown", None, (), _EPOCH)

    def update(self, action: UpdateIssue, current: Observation | None) -> Observation | None:
        fields = {k: v for k, v in {
            "title": action.title, "state": action.state, "state_reason": action.state_reason,
            "status": action.status, "body": action.body,
        }.items() if v is not None}  # fmt: skip
        self._record("update_issue", action.repository, number=action.number, fields=fields,
                     add_labels=list(action.add_labels), remove_labels=list(action.remove_labels))  # fmt: skip
        return None

    def suspect(self, repository: str, number: int) -> bool:
        return False

    def has_comment(self, repository: str, number: int, key: str, since: datetime) -> bool:
        return False

    def comment(self, action: AddComment) -> datetime:
        self._record("comment", action.repository, number=action.number, key=action.key, body=action.body)
        return self.clock()

    def drain_intents(self) -> list[dict[str, Any]]:
        out, self._intents = self._intents, []
        return out

    def list_ours(self, repository: str, since: datetime | None, state: str = "all") -> Iterator[ListedIssue]:
        return iter(())
