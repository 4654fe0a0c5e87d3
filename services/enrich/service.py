"""The enrich handlers: per record (``handle``), per batch (``prepare``) and per tick (``tick``).

Kafka-free: they see ``Record``/``Context`` and return ``Output``s; the runtime does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from alertline.errors import BadInput
from alertline.model import Alert, EvaluatedAlert
from alertline.stage import Context, Output, Record
from services.enrich.domain import (
    CLOSED_STATUSES,
    Finding,
    Selection,
    actor_context,
    due,
    enriched,
    expired,
    is_intrusion,
    new_state,
    recheck,
)
from services.enrich.engine import Engine, Task
from services.enrich.enrichers import Exposure, exposure_tasks, stored_targets

log = logging.getLogger(__name__)


@dataclass
class EnrichService:
    engine: Engine
    exposure: Exposure | None
    selection: Selection
    out_topic: str
    recheck_interval: timedelta = timedelta(hours=6)
    recheck_max_age: timedelta = timedelta(days=30)
    max_per_tick: int = 200

    # ------------------------------------------------------------------ batch
    def prepare(self, records: Sequence[Record]) -> None:
        alerts: list[Alert] = []
        for r in records:
            v = r.value
            if isinstance(v, dict) and v.get("decision", {}).get("action") != "drop":
                a = v.get("alert")
                if isinstance(a, dict) and a.get("status") not in CLOSED_STATUSES:
                    alerts.append(a)  # type: ignore[arg-type]  # decoded by the 'decision' schema
        if alerts:
            self.engine.prepare(alerts)

    # ------------------------------------------------------------------ record
    def handle(self, rec: Record, ctx: Context) -> Iterable[Output]:
        ev: EvaluatedAlert = rec.value
        alert, decision = ev["alert"], ev["decision"]
        identity = alert["identity"]
        if rec.key is not None and rec.key_str != identity:
            raise BadInput(f"record key {rec.key_str[:100]!r} is not the alert identity {identity[:100]!r}")
        if decision["action"] == "drop":
            # No ticket follows a drop, so there is nothing to re-check for it either.
            if ctx.state.get(identity) is not None:
                ctx.state.delete(identity)
            return []
        now = ctx.now()
        if alert["status"] in CLOSED_STATUSES:
            if ctx.state.get(identity) is not None:
                ctx.state.delete(identity)
            return [self._out("alert", alert, decision, [], now, identity)]
        items = self.engine.plan(alert)
        tasks = [i for i in items if isinstance(i, Task)]
        results = self.engine.run(tasks) if tasks else {}
        findings: list[Finding] = [results[i] if isinstance(i, Task) else i for i in items]
        if is_intrusion(alert, self.selection):
            findings.append(actor_context(alert, findings, now))
        targets = stored_targets(tasks)
        if targets:
            ctx.state.set(identity, new_state(alert, decision, targets, findings, now, self.recheck_interval))
        elif ctx.state.get(identity) is not None:
            ctx.state.delete(identity)
        return [self._out("alert", alert, decision, [f.to_enrichment() for f in findings], now, identity)]

    def _out(self, kind: str, alert: Alert, decision: Any, enrichments: list[Any], now: Any, key: str) -> Output:
        return Output(self.out_topic, enriched(kind, alert, decision, enrichments, now), key=key, schema="enrichment")

    # ------------------------------------------------------------------ periodic re-check
    def tick(self, ctx: Context) -> Iterable[Output]:
        if self.exposure is None:
            return []
        now = ctx.now()
        due_states: list[dict[str, Any]] = []
        for key in list(ctx.state.keys()):
            st = ctx.state.get(key)
            if expired(st, now, self.recheck_max_age):
                ctx.state.delete(key)
            elif due(st, now):
                due_states.append(st)
        due_states.sort(key=lambda s: s["next_check_at"])
        due_states = due_states[: self.max_per_tick]
        if not due_states:
            return []
        plans = {st["identity"]: exposure_tasks(self.exposure, st["targets"], st["identity"]) for st in due_states}
        results = self.engine.run([t for ts in plans.values() for t in ts], fresh=True)
        outs: list[Output] = []
        for st in due_states:
            key = st["identity"]
            outcome = recheck(st, [results[t] for t in plans[key]], now, self.recheck_interval)
            ctx.state.set(key, outcome.state)
            if outcome.changes:
                log.info("re-check changed", extra={"identity": key, "changes": len(outcome.changes)})
                outs.append(self._out("recheck", st["alert"], st["decision"], outcome.changes, now, key))
        return outs
