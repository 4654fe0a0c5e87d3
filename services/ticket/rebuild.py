"""``alertline tickets rebuild``: the state topic, reconstructed from the issues themselves.

Each of our issues carries its identity (or storm page) and what the state needs in the marker
on its first line; comments carry the enrichment fingerprints they showed. The ticket service
must be stopped while this runs (it would overwrite what we write).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

from alertline.model import GroupMember, TicketState
from services.ticket import domain, render
from services.ticket.ports import ListedIssue
from services.ticket.text import MEMBER_RE

# Labels we set on our own issues (anything else on them is a human's).
OUR_LABEL_PREFIXES = ("severity:", "priority:", "source:", "account:")
OUR_LABELS = {render.LABEL_ALL, render.LABEL_STORM, render.LABEL_RESOLVED, render.LABEL_SUPPRESSED}
UNKNOWN = datetime(1970, 1, 1, tzinfo=UTC)
CommentsOf = Callable[[ListedIssue], list[tuple[str, tuple[str, ...], datetime]]]


def _dt(s: str | None, default: datetime) -> datetime:
    if not s:
        return default
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return default


def _ours(labels: Iterable[str]) -> list[str]:
    return [x for x in labels if x in OUR_LABELS or x.startswith(OUR_LABEL_PREFIXES)]


def identity_state(
    item: ListedIssue, comments: list[tuple[str, tuple[str, ...], datetime]], now: datetime
) -> TicketState:
    m, o = item.marker, item.observation
    assert m.identity is not None
    closed = o.state == "closed"
    fps = [f for f in (m.field("fps") or "").split(",") if f]
    for _key, cfps, _at in comments:
        fps.extend(cfps)
    reason = None
    if closed:
        reason = domain.R_NOT_PLANNED if o.state_reason == "not_planned" else domain.R_RESOLVED
    st = domain.new_state(
        m.identity, item.repository, now,
        issue_number=o.number, state="closed" if closed else "open", close_reason=reason,
        occurrences=int(m.field("occ") or 1), last_revision=m.field("rev"),
        alert_status=m.field("st") or domain.ACTIVE,
        first_seen=_dt(m.field("first"), item.created_at), last_seen=_dt(m.field("last"), item.created_at),
        last_comment_at=max((at for _, _, at in comments), default=None),
        closed_at=(o.closed_at or o.updated_at) if closed else None,
        comment_fingerprints=list(dict.fromkeys(fps))[-200:], labels=_ours(o.labels),
        generation=m.generation, gh_updated_at=o.updated_at,
    )  # fmt: skip
    return st


def page_state(item: ListedIssue, now: datetime) -> TicketState:
    m, o = item.marker, item.observation
    assert m.group is not None
    members: list[GroupMember] = []
    for line in (o.body or "").split("\n"):
        hit = MEMBER_RE.match(line.rstrip("\r"))
        if hit:
            ticked = hit.group(1) != " "
            members.append({"identity": urllib.parse.unquote(hit.group(3)), "line": hit.group(2),
                            "resolved": ticked, "shown_resolved": ticked, "updated_at": o.updated_at})  # fmt: skip
    closed = o.state == "closed"
    title = (o.title or "").split(": ", 1)[-1].removesuffix(f" (part {m.page})")
    reason = (domain.R_NOT_PLANNED if o.state_reason == "not_planned" else domain.R_RESOLVED) if closed else None
    return domain.new_state(
        domain.page_key(m.group, m.page), item.repository, now, record_type="page", page=m.page,
        issue_number=o.number, state="closed" if closed else "open",
        close_reason=reason, group_key=m.field("key"),
        closed_at=(o.closed_at or o.updated_at) if closed else None, members=members, occurrences=len(members),
        title=title, labels=_ours(o.labels), gh_updated_at=o.updated_at, first_seen=item.created_at,
        last_seen=o.updated_at, overflow=int(m.field("over") or 0), overflow_resolved=int(m.field("over_res") or 0),
    )  # fmt: skip


def rebuild_states(items: Iterable[ListedIssue], comments_of: CommentsOf, now: datetime) -> dict[str, TicketState]:
    """State key -> state for every issue of ours; the newest generation wins per identity."""
    out: dict[str, TicketState] = {}
    members: dict[str, TicketState] = {}
    for item in items:
        if item.marker.group is not None:
            st = page_state(item, now)
            out[st["identity"]] = st
            for m in st["members"]:
                # The member's own state (in its identity's partition) only says "grouped".
                members[m["identity"]] = domain.new_state(
                    m["identity"], item.repository, now, state=domain.GROUPED, group_key=st["group_key"],
                    alert_status=domain.RESOLVED if m["resolved"] else domain.ACTIVE, first_seen=UNKNOWN,
                    last_seen=UNKNOWN,  # the page does not say when its alert last changed: any version is newer
                )  # fmt: skip
            continue
        if item.marker.identity is None:
            continue
        have = out.get(item.marker.identity)
        if have is not None and have["generation"] > item.marker.generation:
            continue
        cs = comments_of(item) if item.observation.state == "open" else []
        st = identity_state(item, cs, now)
        if have is not None and have["generation"] < st["generation"]:
            st["previous_issue"] = have["issue_number"]
        out[item.marker.identity] = st
    for identity, st in members.items():
        out.setdefault(identity, st)  # an issue of its own wins over a page line
    return out


def partition_key(state_key: str) -> str:
    """The input key whose partition holds this state key (pages live with their group)."""
    return state_key.split("#", 1)[0] if state_key.startswith("group:") else state_key


def as_dict(st: TicketState) -> dict[str, Any]:
    return cast(dict[str, Any], st)
