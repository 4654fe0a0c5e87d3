"""The ticket lifecycle, pure: (state, event, now, policy) -> (new state, intended GitHub actions).

No Kafka, no HTTP, no GitHub. The service layer executes the actions (idempotently) and folds
their results (issue numbers, GitHub's timestamps) back into the state.

State keys in a partition (see docs/decisions/0501):
- ``<identity>``            one alert identity: its issue, or its storm group (record_type identity);
- ``group:<hash>#<page>``   one grouped issue of a storm (record_type page);
- ``storm:k:<hash>``, ``storm:p``  new-identity counters for storm detection (record_type storm).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from alertline.model import Alert, Decision, EnrichedAlert, Enrichment, GroupMember, TicketEvent, TicketState
from services.ticket import render
from services.ticket.text import Marker, Md

ACTIVE, RESOLVED, SUPPRESSED = "active", "resolved", "suppressed"
OPEN, CLOSED, GROUPED = "open", "closed", "grouped"
# close_reason values
R_RESOLVED, R_SUPPRESSED, R_INACTIVE, R_HUMAN, R_NOT_PLANNED = (
    "resolved",
    "suppressed",
    "inactive",
    "human",
    "not_planned",
)
STORM_PARTITION_KEY = "storm:p"
SNAPSHOT_MARGIN = timedelta(seconds=2)
STATUS_LABELS = (render.LABEL_RESOLVED, render.LABEL_SUPPRESSED)


@dataclass(frozen=True)
class Policy:
    """Windows and thresholds (docs/tickets.md explains each and its default)."""

    default_repository: str
    repository_override: str | None = None  # staging: every issue goes here, whatever the rules say
    recurrence_comment_window: timedelta = timedelta(hours=24)
    reopen_window: timedelta = timedelta(days=30)
    not_planned: str = "stay_closed"  # stay_closed | new_issue
    inactivity: Mapping[str, timedelta] = field(default_factory=lambda: {"guardduty": timedelta(days=14)})
    storm_enabled: bool = True
    storm_window: timedelta = timedelta(minutes=15)
    storm_key_threshold: int = 3
    storm_partition_threshold: int = 10
    page_size: int = 200
    # A group lists its alerts on at most this many issues; beyond, the last one counts them
    # (a 100,000-finding rollout is 5 issues and a number, not 800 issues of task lists).
    max_pages: int = 5
    page_budget: int = 60_000
    flush_quiet: timedelta = timedelta(minutes=2)
    flush_max_delay: timedelta = timedelta(minutes=10)
    max_fingerprints: int = 200
    # A recurrence that changes nothing but the count and "last seen" rewrites the body at most
    # once per this (the rest wait for the tick): at 100 alerts/s over open issues a write per
    # recurrence would spend GitHub's 80 writes/min on bookkeeping. 0 writes every one.
    body_refresh: timedelta = timedelta(minutes=10)


# ---------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class CreateIssue:
    repository: str
    marker: Marker
    title: str
    body: str
    labels: tuple[str, ...]
    assignees: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateIssue:
    """Bring an existing issue to this shape; fields left None are not touched.

    ``marker``/``status`` splice our first line and status section into the current body (a
    human's edits elsewhere survive); ``body`` replaces it whole (storm pages)."""

    repository: str
    number: int
    marker: Md | None = None
    status: Md | None = None
    body: str | None = None
    title: str | None = None
    state: str | None = None
    state_reason: str | None = None
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddComment:
    repository: str
    number: int
    key: str
    body: str


Action = CreateIssue | UpdateIssue | AddComment


@dataclass(frozen=True)
class MemberOut:
    """A storm member event for the group's partition."""

    key: str  # group:<hash>
    group_key: str
    group_title: str
    repository: str
    member: GroupMember
    joined: bool = False  # a new member (else a status change of one)


@dataclass
class Plan:
    state: TicketState | None = None  # the new state of the key concerned (None: unchanged)
    actions: list[Action] = field(default_factory=list)
    members: list[MemberOut] = field(default_factory=list)
    other_states: dict[str, TicketState | None] = field(default_factory=dict)  # e.g. storm counters
    note: str = ""  # why nothing happened, for logs

    @property
    def writes(self) -> int:
        return len(self.actions)


# ---------------------------------------------------------------------------- helpers
def _h(*parts: str, n: int = 16) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:n]


def status_of(alert: Alert) -> str:
    s = alert.get("status") or ACTIVE
    return s if s in (ACTIVE, RESOLVED, SUPPRESSED) else ACTIVE


def repository_of(decision: Decision, policy: Policy) -> str:
    return policy.repository_override or decision.get("repository") or policy.default_repository


def group_key_of(alert: Alert, decision: Decision, policy: Policy) -> str:
    """The readable grouping key: the rule's own, or source + control / type / title."""
    gk = decision.get("group_key")
    if not gk:
        what = alert.get("control_id") or alert.get("finding_type") or alert["title"]
        gk = f"{alert['provider']}/{alert['product']}/{what}"
    return f"{repository_of(decision, policy)}|{gk}"


def group_hash(group_key: str) -> str:
    return _h(group_key, n=24)


def group_event_key(group_key: str) -> str:
    return f"group:{group_hash(group_key)}"


def page_key(ghash: str, page: int) -> str:
    return f"group:{ghash}#{page}"


def storm_key(ghash: str) -> str:
    return f"storm:k:{ghash}"


def enrichment_key(e: Enrichment) -> tuple[str, str]:
    """(what was investigated, what was found): a result is new when the pair is."""
    return _h(e["enricher"], e["subject"], n=10), (e.get("fingerprint") or _h(e.get("summary", ""), e["verdict"]))[:24]


def fp_entry(e: Enrichment) -> str:
    subject, fp = enrichment_key(e)
    return f"e:{subject}:{fp}"


def new_state(identity: str, repository: str, now: datetime, **over: Any) -> TicketState:
    st: dict[str, Any] = {
        "identity": identity, "repository": repository, "issue_number": None, "state": OPEN,
        "close_reason": None, "occurrences": 1, "last_revision": None, "alert_status": ACTIVE,
        "first_seen": now, "last_seen": now, "last_comment_at": None, "closed_at": None,
        "comment_fingerprints": [], "labels": [], "group_key": None, "product": "", "auto_close": True,
        "updated_at": now, "record_type": "identity", "generation": 0, "previous_issue": None,
        "gh_updated_at": None, "removed_labels": [], "title": None, "page": 0, "members": [],
        "dirty_since": None, "flushed_at": None, "overflow": 0, "overflow_resolved": 0,
    }  # fmt: skip
    st.update(over)
    return cast(TicketState, st)


def _set(st: TicketState, **kw: Any) -> None:
    cast(dict[str, Any], st).update(kw)


def _copy(st: TicketState) -> TicketState:
    return copy.deepcopy(st)


def facts(st: TicketState) -> render.IssueFacts:
    return render.IssueFacts(
        identity=st["identity"],
        generation=st["generation"],
        occurrences=st["occurrences"],
        first_seen=st["first_seen"],
        last_seen=st["last_seen"],
        alert_status=st["alert_status"],
        state=st["state"],
        previous_issue=st.get("previous_issue"),
        revision=st.get("last_revision"),
        fingerprints=tuple(f for f in st["comment_fingerprints"] if f.startswith("e:")),
    )


def _remember(st: TicketState, entries: Sequence[str], limit: int) -> None:
    fps = [
        f for f in st["comment_fingerprints"] if not any(f.rsplit(":", 1)[0] == e.rsplit(":", 1)[0] for e in entries)
    ]
    fps.extend(entries)
    st["comment_fingerprints"] = fps[-limit:]


def new_enrichments(st: TicketState | None, enrichments: Sequence[Enrichment]) -> list[tuple[Enrichment, bool]]:
    """Results not yet shown on the issue, each with whether it replaces an earlier one."""
    known = set(st["comment_fingerprints"]) if st else set()
    subjects = {f.rsplit(":", 1)[0] for f in known}
    out: list[tuple[Enrichment, bool]] = []
    seen: set[str] = set()
    for e in enrichments:
        entry = fp_entry(e)
        if entry in known or entry in seen:
            continue
        seen.add(entry)
        out.append((e, entry.rsplit(":", 1)[0] in subjects))
    return out


def _labels_to_add(st: TicketState, wanted: Sequence[str]) -> tuple[str, ...]:
    have = {x.lower() for x in st["labels"]} | {x.lower() for x in st["removed_labels"]}
    return tuple(x for x in wanted if x.lower() not in have)


def _comment(st: TicketState, purpose: str, parts: Sequence[str], fps: Sequence[str] = ()) -> AddComment:
    """One comment; its key (from identity, generation and what it says) makes it idempotent,
    and the enrichment fingerprints it shows ride in its marker for ``tickets rebuild``."""
    assert st["issue_number"] is not None
    key = _h(st["identity"], str(st["generation"]), purpose, n=20)
    return AddComment(st["repository"], st["issue_number"], key, render.comment_body(parts, key, fps))


# ---------------------------------------------------------------------------- storms
@dataclass(frozen=True)
class StormCheck:
    grouped: bool
    updates: dict[str, TicketState]


def storm_check(get: Any, ghash: str, repository: str, now: datetime, policy: Policy) -> StormCheck:
    """Count one new identity; decide whether it joins a storm group instead of its own issue.

    Counters are per partition: each partition sees about 1/N of a storm (docs/tickets.md)."""
    if not policy.storm_enabled:
        return StormCheck(False, {})

    def counter(key: str) -> TicketState:
        st = cast("TicketState | None", get(key))
        if st is None or now - st["first_seen"] >= policy.storm_window:
            return new_state(key, repository, now, record_type="storm", state="counting", occurrences=0)
        return _copy(st)

    k, p = counter(storm_key(ghash)), counter(STORM_PARTITION_KEY)
    grouped = k["occurrences"] >= policy.storm_key_threshold or p["occurrences"] >= policy.storm_partition_threshold
    k["occurrences"] += 1
    k["updated_at"] = now
    updates = {storm_key(ghash): k}
    if not grouped:
        p["occurrences"] += 1
        p["updated_at"] = now
        updates[STORM_PARTITION_KEY] = p
    return StormCheck(grouped, updates)


def expired_storm_counters(keys: Iterator[str], get: Any, now: datetime, policy: Policy) -> list[str]:
    out = []
    for k in keys:
        if k.startswith("storm:"):
            st = get(k)
            if st is not None and now - st["first_seen"] >= policy.storm_window:
                out.append(k)
    return out


def _member_out(alert: Alert, decision: Decision, enrichments: Sequence[Enrichment], gk: str, resolved: bool,
                now: datetime, policy: Policy, joined: bool = False) -> MemberOut:  # fmt: skip
    member: GroupMember = {
        "identity": alert["identity"],
        "line": str(render.member_line(alert, decision, enrichments)),
        "resolved": resolved,
        "shown_resolved": False,
        "updated_at": now,
    }
    title = decision.get("group_key") or alert["title"]
    return MemberOut(group_event_key(gk), gk, title, repository_of(decision, policy), member, joined)


# ---------------------------------------------------------------------------- alerts
def on_alert(
    prev: TicketState | None, ea: EnrichedAlert, now: datetime, policy: Policy, get: Any = lambda k: None
) -> Plan:
    """Plan what one enriched alert (kind alert or recheck) means for its issue.

    ``get`` reads other state keys of the partition (storm counters)."""
    alert, decision = ea["alert"], ea["decision"]
    enrichments = list(ea.get("enrichments") or [])
    if ea.get("kind", "alert") == "recheck":
        return _on_recheck(prev, alert, decision, enrichments, now, policy)
    if decision.get("action", "ticket") != "ticket":
        return Plan(note=f"decision is {decision.get('action')!r}, not ticket")
    status = status_of(alert)
    if prev is None:
        return _on_new(alert, decision, enrichments, status, now, policy, get)
    if prev["state"] == GROUPED:
        return _on_grouped(prev, alert, decision, enrichments, status, now, policy)
    if prev["state"] == RESOLVED:
        if status != ACTIVE:
            return Plan(note="still resolved, never ticketed")
        return _on_new(alert, decision, enrichments, status, now, policy, get)
    return _on_ticketed(prev, alert, decision, enrichments, status, now, policy)


def _on_new(alert: Alert, decision: Decision, enrichments: list[Enrichment], status: str, now: datetime,
            policy: Policy, get: Any) -> Plan:  # fmt: skip
    repo = repository_of(decision, policy)
    first = alert.get("first_seen") or alert["updated_at"]
    base = dict(
        occurrences=1,
        last_revision=alert["revision"],
        alert_status=status,
        first_seen=min(first, alert["updated_at"]),
        last_seen=alert["updated_at"],
        product=alert["product"],
        auto_close=True,
    )
    if status != ACTIVE:
        # Already resolved when first seen: nothing needs a human. Remembered so a later
        # "active" of the same identity is still recognised as new, and a replay is a no-op.
        st = new_state(alert["identity"], repo, now, state=RESOLVED, **base)
        return Plan(state=st, note="first seen resolved: no issue")
    gk = group_key_of(alert, decision, policy)
    storm = storm_check(get, group_hash(gk), repo, now, policy)
    if storm.grouped:
        st = new_state(alert["identity"], repo, now, state=GROUPED, group_key=gk, **base)
        out = _member_out(alert, decision, enrichments, gk, False, now, policy, joined=True)
        return Plan(state=st, members=[out], other_states=dict(storm.updates), note="storm: grouped")
    st = new_state(alert["identity"], repo, now, state=OPEN, group_key=None, flushed_at=now,
                   last_comment_at=now, **base)  # fmt: skip
    st["labels"] = render.issue_labels(alert, decision)
    _remember(st, [fp_entry(e) for e in enrichments], policy.max_fingerprints)
    return Plan(state=st, actions=[_create(st, alert, decision, enrichments)], other_states=dict(storm.updates))


def _create(st: TicketState, alert: Alert, decision: Decision, enrichments: Sequence[Enrichment]) -> CreateIssue:
    f = facts(st)
    return CreateIssue(
        repository=st["repository"],
        marker=Marker(identity=st["identity"], generation=st["generation"]),
        title=render.issue_title(alert),
        body=render.issue_body(alert, decision, enrichments, f),
        labels=tuple(st["labels"]),
        assignees=tuple(decision.get("assignees") or ()),
    )


def _advance(st: TicketState, alert: Alert, status: str) -> bool:
    """Fold a newer version of the alert into the state; False if it is a replay or older."""
    if alert["revision"] == st["last_revision"]:
        return False
    if alert["updated_at"] < st["last_seen"]:
        return False
    st["occurrences"] += 1
    st["last_revision"] = alert["revision"]
    st["last_seen"] = alert["updated_at"]
    st["alert_status"] = status
    return True


def _on_grouped(prev: TicketState, alert: Alert, decision: Decision, enrichments: list[Enrichment], status: str,
                now: datetime, policy: Policy) -> Plan:  # fmt: skip
    st = _copy(prev)
    was = prev["alert_status"]
    if not _advance(st, alert, status):
        return Plan(note="replay or older revision")
    st["updated_at"] = now
    plan = Plan(state=st)
    if (was == ACTIVE) != (status == ACTIVE):
        gk = prev["group_key"] or group_key_of(alert, decision, policy)
        plan.members.append(_member_out(alert, decision, enrichments, gk, status != ACTIVE, now, policy))
    return plan


def _on_ticketed(prev: TicketState, alert: Alert, decision: Decision, enrichments: list[Enrichment], status: str,
                 now: datetime, policy: Policy) -> Plan:  # fmt: skip
    st = _copy(prev)
    was_status = prev["alert_status"]
    advanced = _advance(st, alert, status)
    fresh = new_enrichments(prev, enrichments)
    if not advanced and not fresh:
        return Plan(note="replay or older revision")
    st["updated_at"] = now
    plan = Plan(state=st)
    parts: list[str] = []
    purpose = [f"rev:{alert['revision']}"]
    num = st["issue_number"]
    if num is None:  # created state without a number cannot be committed; defensive
        return Plan(note="state has no issue number")
    auto_close = bool(decision.get("auto_close", True)) and st["auto_close"]
    update: dict[str, Any] = {}

    if advanced and st["state"] == OPEN:
        update.update(marker=render.issue_marker(facts(st)), status=render.status_line(facts(st)))
        if status == ACTIVE:
            if was_status != ACTIVE:
                remove = tuple(x for x in (render.LABEL_RESOLVED, render.LABEL_SUPPRESSED) if x in st["labels"])
                st["labels"] = [x for x in st["labels"] if x not in remove]
                update["remove_labels"] = remove
            last = st["last_comment_at"]
            if last is None or now - last >= policy.recurrence_comment_window:
                parts.append(render.recurrence_note(st["occurrences"], st["last_seen"]))
                purpose.append("recur")
        elif auto_close:
            resolved = status == RESOLVED
            at = st["last_seen"]
            parts.append(render.resolved_note(at) if resolved else render.suppressed_note(at))
            purpose.append(status)
            update.update(state=CLOSED, state_reason="completed" if resolved else "not_planned")
            _set(st, state=CLOSED, close_reason=R_RESOLVED if resolved else R_SUPPRESSED, closed_at=now)
        else:
            add = _labels_to_add(st, [render.LABEL_RESOLVED if status == RESOLVED else render.LABEL_SUPPRESSED])
            if add:
                update["add_labels"] = add
                st["labels"] = [*st["labels"], *add]
    elif advanced and st["state"] == CLOSED and status == ACTIVE:
        reason = st["close_reason"]
        closed_at = st["closed_at"] or now
        if reason == R_NOT_PLANNED and policy.not_planned == "stay_closed":
            plan.note = "closed as not planned: stays closed"
        elif reason == R_NOT_PLANNED or now - closed_at > policy.reopen_window:
            return _new_generation(st, alert, decision, enrichments, status, now, policy)
        else:
            parts.append(render.reopen_note(reason, st["last_seen"]))
            purpose.append("reopen")
            _set(st, state=OPEN, close_reason=None, closed_at=None)
            remove = tuple(x for x in (render.LABEL_RESOLVED, render.LABEL_SUPPRESSED) if x in st["labels"])
            st["labels"] = [x for x in st["labels"] if x not in remove]
            update.update(state=OPEN, marker=render.issue_marker(facts(st)), status=render.status_line(facts(st)),
                          remove_labels=remove)  # fmt: skip
    # Closed and still resolved/suppressed, or closed as not planned: counted, nothing written.

    fps: list[str] = []
    if fresh and st["state"] == OPEN:
        items = [render.enrichment_item(e, changed) for e, changed in fresh]
        parts.append(render.enrichment_note(items))
        fps = [fp_entry(e) for e, _ in fresh]
        purpose.append("enrich:" + ",".join(fps))
    if fresh:
        _remember(st, [fp_entry(e) for e, _ in fresh], policy.max_fingerprints)
    # The comment goes first and the state-changing PATCH last: if a write fails midway, the
    # retry sees the issue as it was (plus a comment it will recognise by its key), never a
    # close of ours that it could take for a human's.
    if update and not parts and update.keys() <= {"marker", "status"} and _refresh_recent(st, now, policy):
        # Only the count and "last seen" changed: the tick writes them later (refresh_due).
        update = {}
        if st["dirty_since"] is None:
            st["dirty_since"] = now
        plan.note = "seen again: body refresh deferred"
    elif "marker" in update:
        _set(st, dirty_since=None, flushed_at=now)
    if parts:
        plan.actions.append(_comment(st, "|".join(purpose), parts, fps))
        st["last_comment_at"] = now
    if update:
        plan.actions.append(UpdateIssue(st["repository"], num, **update))
    return plan


def _refresh_recent(st: TicketState, now: datetime, policy: Policy) -> bool:
    last = st["flushed_at"]
    return policy.body_refresh > timedelta(0) and last is not None and now - last < policy.body_refresh


def refresh_due(st: TicketState, now: datetime, policy: Policy) -> bool:
    """An open issue whose body lags behind its state (deferred recurrences) and whose last
    body write is at least ``policy.body_refresh`` old."""
    if st.get("record_type", "identity") != "identity" or st["dirty_since"] is None:
        return False
    if st["state"] != OPEN or st["issue_number"] is None:
        return False
    return not _refresh_recent(st, now, policy)


def refresh_body(prev: TicketState, now: datetime) -> Plan:
    """Write the deferred count and "last seen" into the issue body."""
    st = _copy(prev)
    num = st["issue_number"]
    assert num is not None
    _set(st, dirty_since=None, flushed_at=now, updated_at=now)
    f = facts(st)
    update = UpdateIssue(st["repository"], num, marker=render.issue_marker(f), status=render.status_line(f))
    return Plan(state=st, actions=[update])


def _new_generation(prev: TicketState, alert: Alert, decision: Decision, enrichments: list[Enrichment],
                    status: str, now: datetime, policy: Policy) -> Plan:  # fmt: skip
    st = new_state(
        prev["identity"], prev["repository"], now, state=OPEN, generation=prev["generation"] + 1,
        previous_issue=prev["issue_number"], occurrences=1, last_revision=alert["revision"], alert_status=status,
        first_seen=alert["updated_at"], last_seen=alert["updated_at"], product=alert["product"],
        removed_labels=list(prev["removed_labels"]), flushed_at=now, last_comment_at=now,
    )  # fmt: skip
    st["labels"] = [x for x in render.issue_labels(alert, decision) if x.lower() not in
                    {r.lower() for r in st["removed_labels"]}]  # fmt: skip
    _remember(st, [fp_entry(e) for e in enrichments], policy.max_fingerprints)
    return Plan(state=st, actions=[_create(st, alert, decision, enrichments)], note="new generation")


def _on_recheck(prev: TicketState | None, alert: Alert, decision: Decision, enrichments: list[Enrichment],
                now: datetime, policy: Policy) -> Plan:  # fmt: skip
    if prev is None or prev["state"] == RESOLVED:
        return Plan(note="re-check for an identity without an issue")
    fresh = new_enrichments(prev, enrichments)
    if not fresh:
        return Plan(note="re-check unchanged")
    st = _copy(prev)
    st["updated_at"] = now
    _remember(st, [fp_entry(e) for e, _ in fresh], policy.max_fingerprints)
    plan = Plan(state=st)
    if prev["state"] == CLOSED:
        plan.note = "re-check on a closed issue: remembered, not commented"
        return plan
    if prev["state"] == GROUPED:
        gk = prev["group_key"] or group_key_of(alert, decision, policy)
        plan.members.append(_member_out(alert, decision, enrichments, gk, prev["alert_status"] != ACTIVE, now, policy))
        return plan
    if st["issue_number"] is None:
        return Plan(note="no issue number")
    items = [render.enrichment_item(e, changed) for e, changed in fresh]
    fps = [fp_entry(e) for e, _ in fresh]
    plan.actions.append(_comment(st, "recheck:" + ",".join(fps), [render.enrichment_note(items)], fps))
    st["last_comment_at"] = now
    return plan


# ---------------------------------------------------------------------------- humans
@dataclass(frozen=True)
class Observation:
    """An issue as GitHub showed it (webhook payload, reconcile listing, or our own GET)."""

    number: int
    state: str
    state_reason: str | None
    labels: tuple[str, ...]
    updated_at: datetime
    body: str | None = None
    title: str | None = None
    closed_at: datetime | None = None
    closed_by_us: bool = False  # closed by our own login: not a human's decision


def _stale(prev: TicketState, obs: Observation, tie_ok: bool) -> bool:
    """Observations older than our own last write cannot show a human change we missed.

    GitHub's timestamps have one-second resolution: a snapshot taken in the same second as our
    write may predate it (a reconcile listing: ``tie_ok=False``), but a webhook action or a read
    made after our write is news (``tie_ok=True``)."""
    last = prev.get("gh_updated_at")
    if last is None:
        return False
    return obs.updated_at < last or (obs.updated_at == last and not tie_ok)


def observe(prev: TicketState, obs: Observation, tie_ok: bool = True) -> TicketState | None:
    """Fold what a human did on GitHub into the state; None when there is nothing new."""
    if prev.get("issue_number") != obs.number or _stale(prev, obs, tie_ok):
        return None
    st = _copy(prev)
    st["gh_updated_at"] = obs.updated_at
    if obs.state == CLOSED and prev["state"] == OPEN and not obs.closed_by_us:
        _set(st, state=CLOSED, closed_at=obs.updated_at,
                  close_reason=R_NOT_PLANNED if obs.state_reason == "not_planned" else R_HUMAN)  # fmt: skip
    elif obs.state == OPEN and prev["state"] == CLOSED:
        if prev["close_reason"] in (R_RESOLVED, R_INACTIVE, R_SUPPRESSED):
            st["auto_close"] = False  # a human reopened what we closed: leave closing to them
        _set(st, state=OPEN, close_reason=None, closed_at=None)
    have = {x.lower() for x in obs.labels}
    # Our status labels come and go with the alert; only a removed label of ours is a human's say.
    gone = [x for x in prev["labels"] if x.lower() not in have and x not in STATUS_LABELS]
    if gone:
        st["labels"] = [x for x in prev["labels"] if x.lower() in have]
        st["removed_labels"] = [*prev["removed_labels"], *gone][-100:]
    return st if _changed(prev, st) else None


def _changed(a: TicketState, b: TicketState) -> bool:
    fields = ("state", "close_reason", "auto_close", "labels", "removed_labels", "members")
    return any(a.get(f) != b.get(f) for f in fields)


def on_human(prev: TicketState | None, ev: TicketEvent, now: datetime) -> Plan:
    if prev is None or prev.get("record_type", "identity") not in ("identity", "page"):
        return Plan(note="no issue for this key")
    if ev.get("generation", 0) != prev["generation"] and prev["record_type"] == "identity":
        return Plan(note="event for an earlier generation")
    obs = Observation(
        number=ev["issue_number"] or -1,
        state=ev.get("issue_state") or prev["state"],
        state_reason=ev.get("state_reason"),
        labels=tuple(ev.get("labels") or ()),
        updated_at=ev["observed_at"],
    )
    # A snapshot (sync) in the same second as our write may predate it, unless it was read
    # clearly after we last handled this key.
    seen = ev.get("seen_at")
    tie_ok = ev["action"] != "sync" or (seen is not None and seen > prev["updated_at"] + SNAPSHOT_MARGIN)
    if prev["record_type"] == "page":
        st = observe_page(prev, obs, now, tie_ok)
    else:
        st = observe(prev, obs, tie_ok)
    if st is None:
        return Plan(note="stale or unchanged observation")
    st["updated_at"] = now
    return Plan(state=st)


# ---------------------------------------------------------------------------- inactivity
def inactive_due(st: TicketState, now: datetime, policy: Policy) -> timedelta | None:
    timeout = policy.inactivity.get(st.get("product") or "")
    if timeout is None or st.get("record_type", "identity") != "identity" or st["state"] != OPEN:
        return None
    if st["issue_number"] is None or st["alert_status"] != ACTIVE:
        return None
    return timeout if now - st["last_seen"] >= timeout else None


def close_inactive(prev: TicketState, timeout: timedelta, now: datetime) -> Plan:
    st = _copy(prev)
    assert st["issue_number"] is not None
    days = timeout.total_seconds() / 86400
    comment = _comment(st, f"inactive:{st['last_revision']}", [render.inactive_note(days, st["last_seen"])])
    _set(st, state=CLOSED, close_reason=R_INACTIVE, closed_at=now, updated_at=now, last_comment_at=now)
    upd = UpdateIssue(st["repository"], st["issue_number"], state=CLOSED, state_reason="completed")
    return Plan(state=st, actions=[comment, upd])


# ---------------------------------------------------------------------------- storm pages
def pages_of(get: Any, ghash: str) -> list[TicketState]:
    out = []
    n = 1
    while (p := get(page_key(ghash, n))) is not None:
        out.append(p)
        n += 1
    return out


def _page_size(members: Sequence[GroupMember]) -> int:
    return sum(render.member_size(m["identity"], m["line"]) for m in members)


def on_member(get: Any, ev: TicketEvent, now: datetime, policy: Policy,
              where: Callable[[str, str], int | None] | None = None) -> Plan:  # fmt: skip
    """A storm member joined or changed: update its page (GitHub is written later, by the tick).

    ``where(ghash, identity)`` is the caller's index of members (page number, or None for "not
    a member"): a hint, checked against that page; without it, or when the hint is wrong (a
    batch was aborted after the index learned of it), every page is searched — a group of
    100,000 would otherwise cost a search of all its members per event."""
    m = ev.get("member")
    if m is None or not ev.get("group_key"):
        return Plan(note="member event without a member")
    gk = ev["group_key"] or ""
    ghash = group_hash(gk)
    pages = pages_of(get, ghash)
    hint = where(ghash, m["identity"]) if where is not None else -1
    if hint is None:
        candidates: list[TicketState] = []
    elif 1 <= hint <= len(pages) and any(x["identity"] == m["identity"] for x in pages[hint - 1]["members"]):
        candidates = [pages[hint - 1]]
    else:
        candidates = pages
    for p in candidates:
        for i, existing in enumerate(p["members"]):
            if existing["identity"] == m["identity"]:
                st = _copy(p)
                st["members"][i] = {**existing, "line": m["line"], "resolved": m["resolved"], "updated_at": now}
                _touch(st, now)
                return Plan(state=st, note=page_key(ghash, st["page"]))
    last = pages[-1] if pages else None
    full = last is not None and (
        len(last["members"]) >= policy.page_size
        or _page_size(last["members"]) + render.member_size(m["identity"], m["line"]) > policy.page_budget
        or last["state"] == CLOSED
        or last["overflow"] > 0
    )
    if last is not None and full and len(pages) >= policy.max_pages:
        # Counted on the last page, not listed. A join adds one; a status change of a member
        # that is not listed can only be one of these.
        st = _copy(last)
        if ev["action"] == "join":
            st["overflow"] += 1
            st["overflow_resolved"] += 1 if m["resolved"] else 0
        else:
            st["overflow_resolved"] += 1 if m["resolved"] else -1
        st["overflow"] = max(st["overflow"], 0)
        st["overflow_resolved"] = min(max(st["overflow_resolved"], 0), st["overflow"])
        _touch(st, now)
        return Plan(state=st, note=page_key(ghash, st["page"]) + " (overflow)")
    if last is None or full:
        n = len(pages) + 1
        st = new_state(page_key(ghash, n), ev["repository"], now, record_type="page", page=n, group_key=gk,
                       title=ev.get("group_title") or gk, occurrences=0,
                       previous_issue=last["issue_number"] if last else None)  # fmt: skip
        st["labels"] = list(_page_labels(m["line"]))
    else:
        st = _copy(last)
    st["members"].append({**m, "shown_resolved": False, "updated_at": now})
    st["occurrences"] = len(st["members"])
    _touch(st, now)
    return Plan(state=st, note=page_key(ghash, st["page"]))


def _page_labels(line: str) -> tuple[str, ...]:
    sev = line.split("**")[1] if line.startswith("**") and line.count("**") >= 2 else ""
    return tuple(x for x in (render.LABEL_ALL, render.LABEL_STORM, f"severity:{sev}" if sev else "") if x)


def _touch(st: TicketState, now: datetime) -> None:
    st["updated_at"] = now
    st["last_seen"] = now
    if st["dirty_since"] is None:
        st["dirty_since"] = now


def flush_due(st: TicketState, now: datetime, policy: Policy) -> bool:
    if st.get("record_type") != "page" or st["dirty_since"] is None:
        return False
    if st["state"] == CLOSED and st["close_reason"] in (R_HUMAN, R_NOT_PLANNED):
        return False  # a human closed it: no more writes to it
    return now - st["last_seen"] >= policy.flush_quiet or now - st["dirty_since"] >= policy.flush_max_delay


def observe_page(prev: TicketState, obs: Observation, now: datetime, tie_ok: bool = True) -> TicketState | None:
    """Fold a human's ticks and close/reopen of a storm page into its state."""
    if prev.get("issue_number") != obs.number or _stale(prev, obs, tie_ok):
        return None
    st = _copy(prev)
    st["gh_updated_at"] = obs.updated_at
    if obs.body is not None:
        from services.ticket.text import parse_members

        ticks = parse_members(obs.body)
        for m in st["members"]:
            shown = ticks.get(m["identity"])
            if shown is not None and shown != m["shown_resolved"]:
                m["resolved"] = shown  # a human ticked or unticked it
                m["shown_resolved"] = shown
                if st["dirty_since"] is None:
                    st["dirty_since"] = now
    if obs.state == CLOSED and prev["state"] == OPEN and not obs.closed_by_us:
        _set(st, state=CLOSED, closed_at=obs.updated_at,
                  close_reason=R_NOT_PLANNED if obs.state_reason == "not_planned" else R_HUMAN)  # fmt: skip
    elif obs.state == OPEN and prev["state"] == CLOSED:
        _set(st, state=OPEN, close_reason=None, closed_at=None)
    return st if _changed(prev, st) else None


def page_members(st: TicketState) -> list[render.PageMember]:
    return [render.PageMember(m["identity"], m["line"], m["resolved"]) for m in st["members"]]


def flush_page(prev: TicketState, now: datetime) -> Plan:
    """Write a dirty storm page to GitHub: create it, or rewrite its task list; close it when
    every member is resolved, reopen it when one comes back."""
    st = _copy(prev)
    ghash = st["identity"].split(":", 1)[1].split("#", 1)[0]
    members = page_members(st)
    total = len(members)
    title = render.page_title(st["title"] or st["group_key"] or "", total + st["overflow"], st["page"])
    body = render.page_body(ghash, st["page"], st["group_key"] or "", st["title"] or "", members,
                            st.get("previous_issue"), st["overflow"], st["overflow_resolved"])  # fmt: skip
    all_done = bool(members) and all(m.resolved for m in members) and st["overflow_resolved"] >= st["overflow"]
    for m in st["members"]:
        m["shown_resolved"] = m["resolved"]
    _set(st, dirty_since=None, flushed_at=now, updated_at=now)
    if st["issue_number"] is None:
        marker = Marker(group=ghash, page=st["page"], fields=(("key", st["group_key"] or ""),))
        action: Action = CreateIssue(st["repository"], marker, title, body, tuple(st["labels"]))
        if all_done:  # created and immediately done: the next flush closes it
            st["dirty_since"] = now
        return Plan(state=st, actions=[action])
    upd: dict[str, Any] = {"body": body, "title": title}
    if all_done and st["state"] == OPEN:
        upd.update(state=CLOSED, state_reason="completed")
        _set(st, state=CLOSED, close_reason=R_RESOLVED, closed_at=now)
    elif not all_done and st["state"] == CLOSED and st["close_reason"] == R_RESOLVED:
        upd.update(state=OPEN)
        _set(st, state=OPEN, close_reason=None, closed_at=None)
    return Plan(state=st, actions=[UpdateIssue(st["repository"], st["issue_number"], **upd)])


def with_issue(st: TicketState, number: int, gh_updated_at: datetime | None) -> TicketState:
    out = _copy(st)
    out["issue_number"] = number
    if gh_updated_at is not None and (out["gh_updated_at"] is None or gh_updated_at > out["gh_updated_at"]):
        out["gh_updated_at"] = gh_updated_at
    return out
