"""Topic names: ``<prefix><name>.v<major>``; the prefix lets staging and production share a cluster."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compact: bool = False
    description: str = ""


# name -> spec; the versioned suffix changes only with an incompatible contract.
TOPICS: dict[str, TopicSpec] = {
    "alerts": TopicSpec("alerts.v1", description="Normalized alerts from ingest, key = identity."),
    "evaluated": TopicSpec("evaluated.v1", description="Alerts with the evaluate decision (drops included)."),
    "enriched": TopicSpec("enriched.v1", description="Ticket-bound alerts and re-check changes."),
    "tickets.state": TopicSpec("tickets.state.v1", compact=True, description="Ticket state per identity."),
    "tickets.actions": TopicSpec("tickets.actions.v1", description="Intended GitHub actions (shadow mode)."),
    "tickets.events": TopicSpec(
        "tickets.events.v1", description="Human changes on GitHub and storm-group members for ticket; co-partitioned."
    ),
    "enrich.state": TopicSpec("enrich.state.v1", compact=True, description="Last exposure result per identity."),
    "schemas": TopicSpec("schemas.v1", compact=True, description="Writer schemas by fingerprint."),
    "lookups": TopicSpec("lookups.v1", compact=True, description="Lookup-table rows for evaluate."),
    "scan.state": TopicSpec(
        "scan.state.v1", compact=True, description="Findings failing at the last scan of their unit, key = identity."
    ),
    "ingest.dlq": TopicSpec("ingest.dlq.v1", description="Dead letters of ingest."),
    "evaluate.dlq": TopicSpec("evaluate.dlq.v1", description="Dead letters of evaluate."),
    "enrich.dlq": TopicSpec("enrich.dlq.v1", description="Dead letters of enrich."),
    "ticket.dlq": TopicSpec("ticket.dlq.v1", description="Dead letters of ticket."),
    "scan.dlq": TopicSpec("scan.dlq.v1", description="Dead letters of scan (unreadable inventory records)."),
    "evaluate.state": TopicSpec(
        "evaluate.state.v1", compact=True, description="Last revision decided per identity (evaluate dedupe)."
    ),
}


def topic(prefix: str, name: str) -> str:
    return prefix + TOPICS[name].name


def group(prefix: str, service: str) -> str:
    return f"{prefix}{service}"


# The input topic of each consuming service (its consumer group is ``group(prefix, service)``).
SERVICE_INPUTS: dict[str, str] = {"evaluate": "alerts", "enrich": "evaluated", "ticket": "enriched"}
