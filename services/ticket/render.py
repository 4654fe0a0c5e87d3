"""Issue titles, labels, bodies and comments from templates (Jinja2). Pure: no I/O but the
templates shipped beside this file.

Every value a template prints goes through ``finalize``: text that is not already ``Md`` is
escaped as untrusted prose, so forgetting a filter can never let alert text through raw.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from alertline.clock import iso
from alertline.model import Alert, Decision, Enrichment
from services.ticket.text import (
    MAX_BODY,
    MAX_TITLE,
    STATUS_END,
    STATUS_START,
    Marker,
    Md,
    comment_marker,
    label,
    md_cell,
    md_code,
    md_link,
    md_text,
    member_marker,
    plain_title,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_RESOURCES = 10
MAX_INDICATORS = 20
MAX_ENRICHMENTS = 30
# Never escape more than this much of a description: the body cannot hold more anyway.
_DESCRIPTION_CAP = 2 * MAX_BODY
LABEL_RESOLVED = "alertline:resolved-at-source"
LABEL_SUPPRESSED = "alertline:suppressed-at-source"
LABEL_STORM = "alertline:storm"
LABEL_ALL = "alertline"


def _finalize(v: Any) -> str:
    if isinstance(v, Md):
        return v
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return str(v)
    return md_text(str(v), inline=True)


def _ts(v: datetime | None) -> Md:
    return Md("—" if v is None else v.strftime("%Y-%m-%d %H:%M UTC"))


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # noqa: S701 - Markdown, not HTML: ``_finalize`` escapes every value for Markdown
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        md_inline=lambda s: md_text(str(s or ""), inline=True),
        md_cell=lambda s: md_cell(str(s or "")),
        code=lambda s: md_code(str(s or "")),
        code_cell=lambda s: md_code(str(s or ""), cell=True),
        ts=_ts,
    )
    return env


def _render(name: str, **ctx: Any) -> str:
    return _env().get_template(name).render(**ctx)


# ---------------------------------------------------------------------------- titles, labels
def issue_title(alert: Alert) -> str:
    where = alert.get("account_name") or alert["account"]
    return plain_title(f"[{alert['severity']['label']}] {alert['title']} · {where}")


def issue_labels(alert: Alert, decision: Decision) -> list[str]:
    wanted = [
        LABEL_ALL,
        f"severity:{alert['severity']['label']}",
        f"priority:{decision['priority']}",
        f"source:{alert['provider']}/{alert['product']}",
        f"account:{alert['account']}",
        *decision.get("labels", []),
    ]
    return _dedupe(label(x) for x in wanted)


def page_labels(severity: str, product: str, provider: str) -> list[str]:
    return _dedupe(label(x) for x in (LABEL_ALL, LABEL_STORM, f"severity:{severity}", f"source:{provider}/{product}"))


def _dedupe(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for x in items:
        if x and x.lower() not in seen:
            seen.add(x.lower())
            out.append(x)
    return out


# ---------------------------------------------------------------------------- bodies
@dataclass(frozen=True)
class IssueFacts:
    """What the body shows besides the alert itself (from the ticket state)."""

    identity: str
    generation: int
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    alert_status: str
    state: str  # open | closed
    previous_issue: int | None = None
    revision: str | None = None
    fingerprints: tuple[str, ...] = ()


def issue_marker(f: IssueFacts) -> Md:
    """First line of an alert's issue: which identity, and what ``tickets rebuild`` needs."""
    fields = [
        ("occ", str(f.occurrences)),
        ("first", iso(f.first_seen)),
        ("last", iso(f.last_seen)),
        ("st", f.alert_status),
    ]
    if f.revision:
        fields.append(("rev", f.revision[:64]))
    if f.fingerprints:
        fields.append(("fps", ",".join(f.fingerprints[-MAX_ENRICHMENTS:])))
    return Marker(identity=f.identity, generation=f.generation, fields=tuple(fields)).render()


def status_line(f: IssueFacts) -> Md:
    word = {"active": "🔴 **Active**", "resolved": "✅ **Resolved**", "suppressed": "⚪ **Suppressed**"}
    return Md(
        _render(
            "status.md.j2",
            status_word=Md(word.get(f.alert_status, "🔴 **Active**")),
            occurrences=f.occurrences,
            last_seen=f.last_seen,
            alert_status=f.alert_status,
        ).strip()
    )


def enrichment_item(e: Enrichment, changed: bool = False) -> Md:
    return Md(_render("enrichment.md.j2", e=e, changed=changed).rstrip())


def _indicators(alert: Alert) -> list[tuple[str, list[str]]]:
    ind = alert["indicators"]
    out: list[tuple[str, list[str]]] = []
    for name, values in (
        ("IPs", ind.get("ips", [])),
        ("Domains", ind.get("domains", [])),
        ("Users", ind.get("users", [])),
        ("Ports", [str(p) for p in ind.get("ports", [])]),
    ):
        if values:
            vs = list(values[:MAX_INDICATORS])
            if len(values) > MAX_INDICATORS:
                vs.append(f"… {len(values) - MAX_INDICATORS} more")
            out.append((name, vs))
    return out


def truncation_pointer(alert: Alert) -> Md:
    return Md(f"\n\n> ✂️ Truncated to fit GitHub's limit. The full alert is archived at {md_code(alert['raw']['uri'])}.")


def issue_body(
    alert: Alert,
    decision: Decision,
    enrichments: Sequence[Enrichment],
    facts: IssueFacts,
    repository: str = "",
) -> str:
    """The issue body, at most ``MAX_BODY`` characters however large the alert is."""
    desc_src = alert.get("description") or ""
    cut_desc = len(desc_src) > _DESCRIPTION_CAP
    desc_src = desc_src[:_DESCRIPTION_CAP]
    items = [enrichment_item(e) for e in enrichments[:MAX_ENRICHMENTS]]
    extra_enrich = len(enrichments) - len(items)
    if extra_enrich > 0:
        items.append(Md(f"- … and {extra_enrich} more results (see the raw alert)"))

    def build(desc: str, truncated: bool, enrich: list[Md]) -> str:
        d = md_text(desc) if desc.strip() else Md("_No description._")
        if truncated:
            d = Md(d + truncation_pointer(alert))
        resources = alert["resources"][:MAX_RESOURCES]
        prev = facts.previous_issue
        return _render(
            "issue_body.md.j2",
            a=alert,
            d=decision,
            marker=issue_marker(facts),
            status_start=Md(STATUS_START),
            status_end=Md(STATUS_END),
            status=status_line(facts),
            resources=resources,
            more_resources=max(0, len(alert["resources"]) - len(resources)),
            first_seen=facts.first_seen,
            console=md_link(alert.get("console_url"), "Open the finding in its console"),
            description=d,
            indicators=_indicators(alert),
            enrichments=enrich,
            previous_issue=prev,
            previous_issue_ref=Md(f"#{prev}") if prev else Md(""),
        )

    body = build(desc_src, cut_desc, items)
    if len(body) <= MAX_BODY:
        return body
    # Too long: keep everything else, give the description what is left. Escaping makes the
    # rendered length nonlinear in the source, so search for the longest prefix that fits.
    while True:
        fixed = len(build("", True, items)) - len("_No description._")
        if fixed + 200 <= MAX_BODY or not items:
            break
        items = items[: len(items) // 2]  # enrichment results are also in the archive and comments
    budget = MAX_BODY - fixed - 16
    lo, hi = 0, len(desc_src)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(md_text(desc_src[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return hard_cut(build(desc_src[:lo], True, items), alert)


def hard_cut(body: str, alert: Alert) -> str:
    if len(body) <= MAX_BODY:
        return body
    pointer = truncation_pointer(alert)
    cut = body[: MAX_BODY - len(pointer) - 8]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut + pointer


# ---------------------------------------------------------------------------- comments
def comment_body(parts: Sequence[str], key: str, fps: Sequence[str] = ()) -> str:
    marker = comment_marker(key, tuple(fps))
    body = _render("comment.md.j2", parts=[Md(p) for p in parts], marker=marker)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - len(marker) - 40] + "\n\n> ✂️ Truncated.\n\n" + marker
    return body


def recurrence_note(occurrences: int, last_seen: datetime) -> Md:
    return Md(f"🔁 Seen again: **{occurrences}** occurrences so far, the latest at {_ts(last_seen)}.")


def reopen_note(reason: str | None, last_seen: datetime) -> Md:
    why = {"resolved": "after it was resolved", "inactive": "after it went quiet", "human": "after it was closed"}
    return Md(
        f"🔴 Reopened: the source reports this alert active again {why.get(reason or '', '')} ({_ts(last_seen)})."
    )


def resolved_note(at: datetime) -> Md:
    return Md(f"✅ The source reports this alert resolved ({_ts(at)}). Closing.")


def suppressed_note(at: datetime) -> Md:
    return Md(f"⚪ The source reports this alert suppressed ({_ts(at)}). Closing as not planned.")


def inactive_note(days: float, last_seen: datetime) -> Md:
    return Md(
        f"💤 No new activity for {days:g} days (last seen {_ts(last_seen)}), and this source never reports a "
        "finding as resolved. Closing; it reopens if the alert comes back."
    )


def enrichment_note(items: Sequence[Md]) -> Md:
    return Md("🔎 New investigation results:\n\n" + "\n".join(items))


# ---------------------------------------------------------------------------- storms
def member_line(alert: Alert, decision: Decision, enrichments: Sequence[Enrichment] = ()) -> Md:
    """One task-list line of a storm page: short, escaped, one line."""
    res = alert["resources"][0]["id"] if alert["resources"] else ""
    verdicts = sorted({e["verdict"] for e in enrichments if e.get("verdict") not in (None, "", "info")})
    parts = [
        f"**{md_text(alert['severity']['label'], inline=True)}**",
        md_code(alert["account"], limit=40),
    ]
    if alert.get("region"):
        parts.append(md_code(alert["region"] or "", limit=30))
    if res:
        parts.append(md_code(res, limit=80))
    parts.append("— " + md_text(_short(alert["title"], 90), inline=True))
    if verdicts:
        parts.append("· " + ", ".join(f"**{md_text(v, inline=True)}**" for v in verdicts))
    url = alert.get("console_url") or ""
    link = md_link(url, "console") if len(url) <= 300 else Md("")
    if link.startswith("["):
        parts.append("· " + link)
    return Md(" ".join(parts))


def _short(s: str, n: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


@dataclass(frozen=True)
class PageMember:
    identity: str
    line: str
    resolved: bool


def page_title(title: str, total: int, page: int) -> str:
    part = f" (part {page})" if page > 1 else ""
    return plain_title(f"[storm] {total} alerts: {title}{part}")


def page_marker_fields(group_key: str, overflow: int, overflow_resolved: int) -> tuple[tuple[str, str], ...]:
    """A page's marker: its group key, and its overflow counts (so ``tickets rebuild`` keeps them)."""
    fields: tuple[tuple[str, str], ...] = (("key", group_key),)
    if overflow:
        fields += (("over", str(overflow)), ("over_res", str(overflow_resolved)))
    return fields


def page_body(
    group_hash: str,
    page: int,
    group_key: str,
    title: str,
    members: Sequence[PageMember],
    previous: int | None = None,
    overflow: int = 0,
    overflow_resolved: int = 0,
) -> str:
    """``group_key`` is the full key (``repository|key``); the body shows the part after the ``|``.

    The group title and key shown are bounded so that a huge one (a rule's group key is free
    text) can never push member lines and their markers past GitHub's body limit."""
    resolved = sum(1 for m in members if m.resolved)
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1] + "…"
    body = _render(
        "page_body.md.j2",
        marker=Marker(
            group=group_hash, page=page, fields=page_marker_fields(group_key, overflow, overflow_resolved)
        ).render(),
        total=len(members) + overflow,
        title=title,
        group_key=group_key.split("|", 1)[-1][:MAX_TITLE],
        open=len(members) - resolved + overflow - overflow_resolved,
        resolved=resolved + overflow_resolved,
        overflow=overflow,
        overflow_resolved=overflow_resolved,
        page=page,
        previous=Md(f"#{previous}") if previous else None,
        members=[
            {"line": Md(m.line), "box": Md("x" if m.resolved else " "), "marker": member_marker(m.identity)}
            for m in members
        ],
    )
    # Pages are sized by the caller (``Policy.page_budget``) so this only guards the GitHub limit.
    return body if len(body) <= MAX_BODY else body[: MAX_BODY - 2].rsplit("\n", 1)[0]


def member_size(identity: str, line: str) -> int:
    return len(line) + len(member_marker(identity)) + 8
