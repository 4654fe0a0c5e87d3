"""Typed views of the Avro contracts in ``schemas/``.

Records travel as plain dicts (what fastavro reads and writes, with no copying); these
TypedDicts give domain code and mypy their shape. Timestamps are timezone-aware UTC datetimes.
Field documentation lives in the ``.avsc`` files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict

Provider = Literal["aws", "gcp", "azure", "alertline"]
SeverityLabel = Literal["informational", "low", "medium", "high", "critical"]
Status = Literal["active", "resolved", "suppressed"]

SEVERITY_LABELS: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
STATUSES: tuple[str, ...] = ("active", "resolved", "suppressed")


class Resource(TypedDict):
    type: str
    id: str
    name: str | None
    region: str | None
    tags: dict[str, str]
    addresses: list[str]


class Severity(TypedDict):
    label: str
    score: int
    source_label: str | None
    source_score: float | None


class Indicators(TypedDict):
    ips: list[str]
    domains: list[str]
    users: list[str]
    ports: list[int]


class RawRef(TypedDict):
    uri: str
    sha256: str
    index: int


class Alert(TypedDict):
    identity: str
    source_id: str
    revision: str
    provider: str
    product: str
    account: str
    account_name: str | None
    organization: str | None
    region: str | None
    resources: list[Resource]
    title: str
    description: str
    finding_type: str | None
    severity: Severity
    status: str
    status_raw: dict[str, str]
    first_seen: datetime | None
    updated_at: datetime
    updated_at_raw: str | None
    received_at: datetime
    clock_skew: bool
    indicators: Indicators
    control_id: str | None
    console_url: str | None
    raw: RawRef
    attributes: dict[str, str]
    labels: dict[str, str]


class RuleMatch(TypedDict):
    rule_id: str
    why: str


class Decision(TypedDict):
    action: str
    priority: str
    reason: str | None
    repository: str | None
    assignees: list[str]
    labels: list[str]
    auto_close: bool
    group_key: str | None
    matched: list[RuleMatch]
    ruleset: str
    evaluated_at: datetime


class EvaluatedAlert(TypedDict):
    alert: Alert
    decision: Decision


class Enrichment(TypedDict):
    enricher: str
    subject: str
    summary: str
    verdict: str
    data_json: str
    fingerprint: str
    changed_from: str | None
    artifacts: dict[str, str]
    observed_at: datetime


class EnrichedAlert(TypedDict):
    kind: str
    alert: Alert
    decision: Decision
    enrichments: list[Enrichment]
    enriched_at: datetime


class GroupMember(TypedDict):
    identity: str
    line: str
    resolved: bool
    shown_resolved: bool
    updated_at: datetime


class TicketState(TypedDict):
    identity: str
    repository: str
    issue_number: int | None
    state: str
    close_reason: str | None
    occurrences: int
    last_revision: str | None
    alert_status: str
    first_seen: datetime
    last_seen: datetime
    last_comment_at: datetime | None
    closed_at: datetime | None
    comment_fingerprints: list[str]
    labels: list[str]
    group_key: str | None
    product: str
    auto_close: bool
    updated_at: datetime
    record_type: str
    generation: int
    previous_issue: int | None
    gh_updated_at: datetime | None
    removed_labels: list[str]
    title: str | None
    page: int
    members: list[GroupMember]
    dirty_since: datetime | None
    flushed_at: datetime | None
    overflow: int
    overflow_resolved: int


class TicketEvent(TypedDict):
    kind: str
    key: str
    repository: str
    issue_number: int | None
    generation: int
    page: int
    action: str
    issue_state: str | None
    state_reason: str | None
    labels: list[str]
    actor: str | None
    observed_at: datetime
    delivery_id: str | None
    seen_at: datetime | None
    group_key: str | None
    group_title: str | None
    member: GroupMember | None


class EvaluateState(TypedDict):
    revision: str
    decided_at: datetime
    ruleset: str


class DeadLetter(TypedDict):
    service: str
    source: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    error_class: str
    error_message: str
    raw_uri: str | None
    failed_at: datetime
