"""The ticket handler and tick: state in, domain plan, idempotent execution, state out.

Kafka transactions cannot cover GitHub, so every effect is made safe to repeat:
- a create first looks for its marker among our recent issues (``Tracker.find``), so an issue
  created by an attempt whose state never committed is adopted, not duplicated;
- an update reads the issue and writes only what differs;
- a comment carries a key; this process remembers the keys it posted (a retried record skips
  them) and, when a previous owner of the partition may have posted it, looks for the key first.
See docs/decisions/0502.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter

from alertline.avro import Codec
from alertline.clock import from_millis
from alertline.errors import BadInput, DecodeError, Transient
from alertline.model import EnrichedAlert, TicketEvent, TicketState
from alertline.stage import Context, Output, PartitionState, Record
from services.ticket import domain
from services.ticket.domain import AddComment, CreateIssue, Plan, Policy, UpdateIssue
from services.ticket.ports import Tracker

log = logging.getLogger(__name__)
JOURNAL_SIZE = 100_000


@dataclass(frozen=True)
class Topics:
    enriched: str
    events: str
    actions: str


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "alertline_ticket_actions", "Issue actions taken, by kind.", ["action"], registry=registry
        )
        self.events = Counter(
            "alertline_ticket_events", "Inputs handled, by kind and outcome.", ["kind", "outcome"], registry=registry
        )
        self.skipped = Counter(
            "alertline_ticket_repeats_skipped", "Effects found already done (retries, restarts).", ["what"],
            registry=registry,
        )  # fmt: skip


class TicketService:
    def __init__(
        self,
        policy: Policy,
        tracker: Tracker,
        codec: Codec,
        topics: Topics,
        registry: CollectorRegistry,
        margin: timedelta = timedelta(minutes=10),
        max_tick_writes: int = 50,
    ) -> None:
        self.policy = policy
        self.tracker = tracker
        self.codec = codec
        self.topics = topics
        self.metrics = ServiceMetrics(registry)
        self.margin = margin
        self.max_tick_writes = max_tick_writes
        self._owned: dict[int, tuple[PartitionState, datetime]] = {}
        # partition -> (its state object, group hash -> member identity -> page): see _where
        self._members: dict[int, tuple[PartitionState, dict[str, dict[str, int]]]] = {}
        self._journal: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ ownership
    def _own_since(self, ctx: Context) -> datetime:
        """When this process took the partition (a new PartitionState object means a new
        assignment): issues other owners created before then are not in our index yet."""
        held = self._owned.get(ctx.partition)
        if held is None or held[0] is not ctx.state:
            self.tracker.invalidate()
            held = (ctx.state, ctx.now())
            self._owned[ctx.partition] = held
            log.info("partition taken", extra={"partition": ctx.partition})
        return held[1]

    def _member_index(self, ctx: Context) -> dict[str, dict[str, int]]:
        """Which page each storm member is on, per group, for this assignment of the partition
        (a new PartitionState object starts a new index)."""
        held = self._members.get(ctx.partition)
        if held is None or held[0] is not ctx.state:
            held = (ctx.state, {})
            self._members[ctx.partition] = held
        return held[1]

    @staticmethod
    def _where(index: dict[str, dict[str, int]], ctx: Context) -> Callable[[str, str], int | None]:
        def where(ghash: str, identity: str) -> int | None:
            if ghash not in index:  # first event of this group here: learn its pages once
                pages = domain.pages_of(ctx.state.get, ghash)
                index[ghash] = {m["identity"]: p["page"] for p in pages for m in p["members"]}
            return index[ghash].get(identity)

        return where

    def _journaled(self, key: str) -> bool:
        return key in self._journal

    def _journal_add(self, key: str) -> None:
        self._journal[key] = None
        while len(self._journal) > JOURNAL_SIZE:
            self._journal.popitem(last=False)

    # ------------------------------------------------------------------ handler
    def handle(self, rec: Record, ctx: Context) -> Iterable[Output]:
        own_since = self._own_since(ctx)
        if not isinstance(rec.value, bytes | bytearray):
            raise BadInput("expected raw bytes from the runtime")
        if rec.topic == self.topics.enriched:
            ea = cast(EnrichedAlert, self.codec.decode("enrichment", bytes(rec.value), rec.topic))
            return self._on_enriched(rec, ea, ctx, own_since)
        if rec.topic == self.topics.events:
            ev = cast(TicketEvent, self.codec.decode("ticket_event", bytes(rec.value), rec.topic))
            return self._on_event(rec, ev, ctx)
        raise BadInput(f"unexpected topic {rec.topic}")

    def _on_enriched(self, rec: Record, ea: EnrichedAlert, ctx: Context, own_since: datetime) -> list[Output]:
        identity = ea["alert"]["identity"]
        if rec.key_str != identity:
            # State lives in the partition of the identity: a record keyed otherwise would be
            # ticketed from the wrong partition and could race its twin.
            raise BadInput(f"record key {rec.key_str!r} is not the alert identity {identity!r}")
        if not identity:
            raise DecodeError("alert without identity")
        now = ctx.now()
        prev = cast("TicketState | None", ctx.state.get(identity))
        rec_ts = from_millis(rec.timestamp_ms) if rec.timestamp_ms > 0 else now

        def make(st: TicketState | None) -> Plan:
            return domain.on_alert(st, ea, now, self.policy, ctx.state.get)

        suspect = rec_ts < own_since + self.margin
        state, plan = self._apply(prev, make, ctx, not_before=max(rec_ts, _ts(prev)) - self.margin, suspect=suspect)
        outs = self._finish(identity, state, plan, ctx)
        self.metrics.events.labels(ea.get("kind", "alert"), "acted" if plan.actions else "noted").inc()
        if plan.note:
            log.info(plan.note, extra={"identity": identity, "partition": rec.partition, "offset": rec.offset})
        return outs

    def _on_event(self, rec: Record, ev: TicketEvent, ctx: Context) -> list[Output]:
        if rec.key_str != ev["key"]:
            raise BadInput(f"record key {rec.key_str!r} is not the event key {ev['key']!r}")
        now = ctx.now()
        if ev["kind"] == "member":
            index = self._member_index(ctx)
            plan = domain.on_member(ctx.state.get, ev, now, self.policy, self._where(index, ctx))
            key = plan.state["identity"] if plan.state else ev["key"]
            member = ev.get("member")
            if plan.state is not None and member is not None and ev.get("group_key"):
                index.setdefault(domain.group_hash(ev["group_key"] or ""), {})[member["identity"]] = plan.state["page"]
        elif ev["kind"] == "human":
            key = ev["key"]
            if ev.get("page"):
                key = f"{ev['key']}#{ev['page']}"
            plan = domain.on_human(cast("TicketState | None", ctx.state.get(key)), ev, now)
        else:
            raise BadInput(f"unknown ticket event kind {ev['kind']!r}")
        self.metrics.events.labels(ev["kind"], "changed" if plan.state else "ignored").inc()
        if plan.note:
            log.info(plan.note, extra={"key": key, "action": ev["action"], "partition": rec.partition})
        return self._finish(key, plan.state, plan, ctx)

    def _finish(self, key: str, state: TicketState | None, plan: Plan, ctx: Context) -> list[Output]:
        if state is not None:
            ctx.state.set(key, state)
        for k, v in plan.other_states.items():
            if v is None:
                ctx.state.delete(k)
            else:
                ctx.state.set(k, v)
        outs = [self._member_output(m, ctx.now()) for m in plan.members]
        outs.extend(self._intents())
        return outs

    def _member_output(self, m: domain.MemberOut, now: datetime) -> Output:
        ev: dict[str, Any] = {
            "kind": "member", "key": m.key, "repository": m.repository, "issue_number": None, "generation": 0,
            "page": 0, "action": "join" if m.joined else "update", "issue_state": None, "state_reason": None,
            "labels": [], "actor": None,
            "observed_at": now, "delivery_id": None, "seen_at": None, "group_key": m.group_key,
            "group_title": m.group_title,
            "member": m.member,
        }  # fmt: skip
        return Output(self.topics.events, ev, key=m.key, schema="ticket_event")

    def _intents(self) -> list[Output]:
        out = []
        for intent in self.tracker.drain_intents():
            key = f"{intent.get('repository')}#{intent.get('number')}"
            out.append(Output(self.topics.actions, json.dumps(intent, default=str).encode(), key=key))
        return out

    # ------------------------------------------------------------------ execution
    def _apply(
        self,
        prev: TicketState | None,
        make: Callable[[TicketState | None], Plan],
        ctx: Context,
        not_before: datetime,
        suspect: bool,
    ) -> tuple[TicketState | None, Plan]:
        """Plan, look at the issue if the plan touches it, re-plan if a human changed it, then
        execute. Returns the state to commit and the plan that was executed."""
        plan = make(prev)
        if not plan.actions:
            return plan.state, plan
        current: domain.Observation | None = None
        number = prev.get("issue_number") if prev else None
        touches = any(isinstance(a, UpdateIssue | AddComment) for a in plan.actions)
        if prev is not None and number is not None and touches and not self.tracker.shadow:
            self.tracker.preflight(plan.writes)
            current = self.tracker.get(prev["repository"], number)
            if current is None:
                return self._gone(prev, ctx.now()), Plan(note="issue deleted or transferred: stopped tracking it")
            folded = self._fold(prev, current, ctx.now())
            if folded is not None:
                log.info("human change seen on GitHub", extra={"key": prev["identity"], "issue": number})
                plan = make(folded)
                if plan.state is None:
                    plan.state = folded
                if not plan.actions:
                    return plan.state, plan
        self.tracker.preflight(plan.writes)
        state = plan.state
        for action in plan.actions:
            state = self._execute(action, state, prev, current, not_before, suspect)
        return state, plan

    def _fold(self, prev: TicketState, obs: domain.Observation, now: datetime) -> TicketState | None:
        if prev.get("record_type") == "page":
            return domain.observe_page(prev, obs, now)
        return domain.observe(prev, obs)

    def _gone(self, prev: TicketState, now: datetime) -> TicketState:
        st = cast(TicketState, dict(prev))
        st.update({"state": domain.CLOSED, "close_reason": domain.R_HUMAN, "closed_at": now, "updated_at": now})
        return st

    def _execute(
        self,
        action: domain.Action,
        state: TicketState | None,
        prev: TicketState | None,
        current: domain.Observation | None,
        not_before: datetime,
        suspect: bool,
    ) -> TicketState | None:
        assert state is not None, "a plan with actions always carries its state"
        if isinstance(action, CreateIssue):
            ref = self.tracker.find(action.repository, action.marker, not_before)
            if ref is not None:
                self.metrics.skipped.labels("create").inc()
                log.warning(
                    "adopted an issue created earlier (its state was never committed)",
                    extra={"key": state["identity"], "repository": ref.repository, "issue": ref.number},
                )
            else:
                ref = self.tracker.create(action)
                self.metrics.actions.labels("create").inc()
                log.info("issue created", extra={"key": state["identity"], "repository": ref.repository,
                                                 "issue": ref.number})  # fmt: skip
            return domain.with_issue(state, ref.number, None if self.tracker.shadow else ref.updated_at)
        if isinstance(action, UpdateIssue):
            cur = current if current is not None else self.tracker.get(action.repository, action.number)
            after = self.tracker.update(action, cur)
            if after is None:
                return state
            self.metrics.actions.labels("update").inc()
            # The issue after our write: anything unlike what we meant is a human's meanwhile.
            folded = self._fold(state, after, state["updated_at"])
            out = folded if folded is not None else state
            if out["gh_updated_at"] is None or after.updated_at > out["gh_updated_at"]:
                out = domain.with_issue(out, action.number, after.updated_at)
            return out
        key = f"{action.repository}#{action.number}:{action.key}"
        if self._journaled(key):
            self.metrics.skipped.labels("comment").inc()
            return state
        if suspect or self.tracker.suspect(action.repository, action.number):
            since = _ts(prev) - self.margin
            if self.tracker.has_comment(action.repository, action.number, action.key, since):
                self.metrics.skipped.labels("comment").inc()
                self._journal_add(key)
                return state
        self.tracker.comment(action)
        self._journal_add(key)
        self.metrics.actions.labels("comment").inc()
        return state

    # ------------------------------------------------------------------ tick
    def tick(self, ctx: Context) -> Iterable[Output]:
        """Periodic work of one partition: expire storm counters, close inactive issues, write
        storm pages. Stops at the first back-pressure and keeps what it finished."""
        self._own_since(ctx)
        now = ctx.now()
        writes = 0
        outs: list[Output] = []
        for key in list(ctx.state.keys()):
            if writes >= self.max_tick_writes:
                break
            st = cast("TicketState | None", ctx.state.get(key))
            if st is None:
                continue
            rt = st.get("record_type", "identity")
            make: Callable[[TicketState | None], Plan] | None = None
            if rt == "storm":
                if now - st["first_seen"] >= self.policy.storm_window:
                    ctx.state.delete(key)
                continue
            if rt == "identity":
                timeout = domain.inactive_due(st, now, self.policy)
                if timeout is not None:
                    make = _inactive_maker(timeout, now, self.policy)
                elif domain.refresh_due(st, now, self.policy):
                    make = _refresh_maker(now, self.policy)
            elif rt == "page" and domain.flush_due(st, now, self.policy):
                make = _flush_maker(now, self.policy)
            if make is None:
                continue
            try:
                state, plan = self._apply(st, make, ctx, not_before=_ts(st) - self.margin, suspect=True)
            except Transient as exc:
                log.info("tick paused by back-pressure", extra={"partition": ctx.partition, "error": str(exc)})
                break
            except BadInput as exc:
                log.error("tick could not act on a key", extra={"key": key, "error": str(exc)})
                continue
            except Exception:  # one bad key must not stop the periodic work of all the others
                log.exception("tick failed on a key; skipped until the next tick", extra={"key": key})
                continue
            writes += max(1, plan.writes)
            outs.extend(self._finish(key, state, plan, ctx))
        return outs


def _inactive_maker(timeout: timedelta, now: datetime, policy: Policy) -> Callable[[TicketState | None], Plan]:
    def make(st: TicketState | None) -> Plan:
        if st is None or domain.inactive_due(st, now, policy) is None:
            return Plan(state=st)
        return domain.close_inactive(st, timeout, now)

    return make


def _refresh_maker(now: datetime, policy: Policy) -> Callable[[TicketState | None], Plan]:
    def make(st: TicketState | None) -> Plan:
        if st is None or not domain.refresh_due(st, now, policy):
            return Plan(state=st)
        return domain.refresh_body(st, now)

    return make


def _flush_maker(now: datetime, policy: Policy) -> Callable[[TicketState | None], Plan]:
    def make(st: TicketState | None) -> Plan:
        if st is None or not domain.flush_due(st, now, policy):
            return Plan(state=st)
        return domain.flush_page(st, now)

    return make


def _ts(st: TicketState | None) -> datetime:
    return st["updated_at"] if st is not None else datetime(1970, 1, 1, tzinfo=UTC)
