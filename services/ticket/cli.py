"""``alertline tickets ...``: preview issues without Kafka or GitHub; rebuild the state topic."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from alertline.clock import utcnow
from alertline.errors import AlertlineError, Transient
from alertline.model import Alert, Decision, Enrichment
from services.ticket import domain, render

T = TypeVar("T")
PRIORITY_BY_SEVERITY = {"critical": "P1", "high": "P2", "medium": "P3"}


def default_decision(alert: Alert, now: datetime | None = None) -> Decision:
    """What the ticket would get with no rules: ticket it, priority from severity."""
    return {
        "action": "ticket",
        "priority": PRIORITY_BY_SEVERITY.get(alert["severity"]["label"], "P4"),
        "reason": None,
        "repository": None,
        "assignees": [],
        "labels": [],
        "auto_close": True,
        "group_key": None,
        "matched": [],
        "ruleset": "",
        "evaluated_at": now or utcnow(),
    }


def preview_alert(
    alert: Alert, decision: Decision | None = None, enrichments: Iterable[Enrichment] = ()
) -> dict[str, Any]:
    """The title, labels and body the issue for ``alert`` would be created with."""
    d = decision or default_decision(alert)
    first = alert.get("first_seen") or alert["updated_at"]
    st = domain.new_state(
        alert["identity"], d.get("repository") or "", utcnow(), occurrences=1, last_revision=alert["revision"],
        alert_status=domain.status_of(alert), first_seen=min(first, alert["updated_at"]),
        last_seen=alert["updated_at"],
    )  # fmt: skip
    es = list(enrichments)
    st["comment_fingerprints"] = [domain.fp_entry(e) for e in es]
    return {
        "title": render.issue_title(alert),
        "labels": render.issue_labels(alert, d),
        "body": render.issue_body(alert, d, es, domain.facts(st)),
    }


def preview_file(path: str, body: bytes, received_at: datetime | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Normalize one raw delivery (any shape ``alertline normalize`` accepts) and preview each
    alert in it; also the lines to report for findings that could not be normalized."""
    from services.ingest.normalize import RawLocation, normalize

    uri = "stdin://-" if path == "-" else f"file://{Path(path).resolve()}"
    raw = RawLocation(uri, hashlib.sha256(body).hexdigest())
    result = normalize(body, raw=raw, received_at=received_at or utcnow())
    errors = [f"{path}: finding {e.index}: {e.message}" for e in result.errors]
    return [preview_alert(a) for a in result.alerts], errors


def _retrying(what: str, fn: Callable[[], T], echo: Callable[[str], None], deadline_s: float = 6 * 3600) -> T:
    """Run ``fn``, sleeping through GitHub's back-pressure (this is a batch job, not the service)."""
    t0 = time.monotonic()
    while True:
        try:
            return fn()
        except Transient as exc:
            wait = exc.retry_after or 5.0
            if time.monotonic() - t0 + wait > deadline_s:
                raise
            echo(f"{what}: {exc}; waiting {wait:.0f}s")
            time.sleep(wait)


def run_rebuild(repos: list[str] | None, dry_run: bool, echo: Callable[[str], None]) -> dict[str, int]:
    # Imported here: `alertline --help` should not pay for Kafka and GitHub clients.
    from confluent_kafka import Consumer
    from prometheus_client import CollectorRegistry

    from alertline.kafka.publisher import Publisher
    from alertline.stage import Output
    from alertline.topics import topic
    from services.ticket.adapters.github import GitHubMetrics, GitHubTracker
    from services.ticket.app import codec_of, github_client, limiter_of, login_of
    from services.ticket.partitioning import partition_for
    from services.ticket.ports import ListedIssue
    from services.ticket.rebuild import partition_key, rebuild_states
    from services.ticket.settings import TicketSettings

    settings = TicketSettings()
    gs = settings.github
    repositories = list(repos or gs.all_repositories())
    if not repositories:
        raise click.ClickException("no repository: pass --repo or set ALERTLINE_GITHUB__REPOSITORY")
    gh = github_client(gs)
    login = _retrying("login", functools.partial(login_of, gs, gh), echo)
    tracker = GitHubTracker(gh, login, limiter_of(gs), GitHubMetrics(CollectorRegistry()))
    state_topic = topic(settings.kafka.topic_prefix, "tickets.state")
    c = Consumer(settings.kafka.client_config() | {"group.id": "alertline-tickets-rebuild"})
    try:
        md = c.list_topics(state_topic, timeout=15).topics.get(state_topic)
    finally:
        c.close()
    if md is None or md.error is not None or not md.partitions:
        raise click.ClickException(f"state topic {state_topic} is missing; run `alertline topics create`")
    partitions = len(md.partitions)

    def listing(repo: str) -> list[ListedIssue]:
        return list(tracker.list_ours(repo, since=None))

    items: list[ListedIssue] = []
    for repo in repositories:
        listed = _retrying(f"listing {repo}", functools.partial(listing, repo), echo)
        echo(f"{repo}: {len(listed)} issues of ours")
        items.extend(listed)
    read = [0]

    def comments_of(item: ListedIssue) -> list[tuple[str, tuple[str, ...], datetime]]:
        read[0] += 1
        if read[0] % 100 == 0:
            echo(f"read the comments of {read[0]} open issues")
        fetch = functools.partial(tracker.our_comments, item.repository, item.observation.number)
        return _retrying("comments", fetch, echo)

    states = rebuild_states(items, comments_of, utcnow())
    stats = {
        "issues": len(items),
        "identities": sum(1 for st in states.values() if st["record_type"] == "identity" and st["issue_number"]),
        "grouped": sum(1 for st in states.values() if st["state"] == domain.GROUPED),
        "pages": sum(1 for st in states.values() if st["record_type"] == "page"),
        "partitions": partitions,
    }
    if dry_run:
        return stats
    pub = Publisher(
        settings.kafka, codec_of(settings), transactional_id=f"alertline-tickets-rebuild-{settings.runtime.instance_id}"
    )
    outs = [
        Output(
            state_topic, dict(st), key=k, schema="ticket_state", partition=partition_for(partition_key(k), partitions)
        )
        for k, st in states.items()
    ]
    written = 0
    for i in range(0, len(outs), 500):
        written += _retrying("publishing", functools.partial(pub.publish, outs[i : i + 500]), echo)
        echo(f"wrote {written}/{len(outs)} states")
    pub.close()
    stats["written"] = written
    return stats


def group_members(group_key: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every alert grouped under ``group_key`` (the full ``repository|key`` or the part shown in
    the issue), from the ticket state topic: the list behind a group's overflow count."""
    from alertline.kafka.table import TableReader
    from alertline.topics import topic
    from services.ticket.app import codec_of
    from services.ticket.settings import TicketSettings

    settings = TicketSettings()
    codec = codec_of(settings)
    name = topic(settings.kafka.topic_prefix, "tickets.state")
    reader = TableReader(settings.kafka, name, decode=lambda b: codec.decode("ticket_state", b, name)).start()
    try:
        if not reader.wait_ready(timeout_s):
            raise AlertlineError(f"{name} not readable within {timeout_s:.0f}s")
        rows = dict(reader.rows)
    finally:
        reader.stop()
    out = []
    for st in rows.values():
        gk = st.get("group_key") or ""
        if (
            st.get("record_type") == "identity"
            and st["state"] == domain.GROUPED
            and group_key in (gk, gk.split("|", 1)[-1])
        ):
            out.append({
                "identity": st["identity"], "status": st["alert_status"], "repository": st["repository"],
                "first_seen": st["first_seen"].isoformat(), "last_seen": st["last_seen"].isoformat(),
            })  # fmt: skip
    return sorted(out, key=lambda r: r["identity"])


def register(cli: click.Group) -> None:
    @cli.group("tickets")
    def tickets() -> None:
        """The ticket service's tools: preview issues, rebuild the state from GitHub."""

    @tickets.command("preview")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
    @click.option(
        "--received-at",
        type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"]),
        default=None,
        help="Receipt time to normalize against (ISO-8601 UTC); default: now.",
    )
    def preview(paths: tuple[str, ...], received_at: datetime | None) -> None:
        """Print the title, labels and body each alert in raw delivery files would get, as JSON
        lines {title, labels, body}. Needs neither Kafka nor GitHub. Uses no rules: priority
        comes from severity, and no rule labels or routing apply. A file or finding that
        cannot be read gets a line on stderr and the exit code is 1."""
        if received_at is not None and received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        failed = False
        out = click.get_text_stream("stdout")
        for path in paths:
            try:
                body = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
            except OSError as exc:
                click.echo(f"{path}: cannot read: {exc.strerror or exc}", err=True)
                failed = True
                continue
            try:
                previews, errors = preview_file(path, body, received_at)
            except AlertlineError as exc:
                click.echo(f"{path}: {exc}", err=True)
                failed = True
                continue
            for p in previews:
                out.write(json.dumps(p, ensure_ascii=False) + "\n")
            for e in errors:
                click.echo(e, err=True)
                failed = True
        out.flush()
        if failed:
            sys.exit(1)

    @tickets.command("members")
    @click.argument("group_key")
    def members(group_key: str) -> None:
        """List every alert of a storm group (one JSON line each), including those a large group
        only counts. GROUP_KEY as shown in the grouped issue."""
        try:
            rows = group_members(group_key)
        except AlertlineError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        for r in rows:
            click.echo(json.dumps(r))
        click.echo(f"{len(rows)} alerts in group {group_key!r}", err=True)

    @tickets.command("rebuild")
    @click.option("--repo", "repos", multiple=True, help="owner/name (default: the configured repositories).")
    @click.option("--dry-run", is_flag=True, help="Read GitHub and count; write nothing.")
    def rebuild(repos: tuple[str, ...], dry_run: bool) -> None:
        """Reconstruct the ticket state topic from the issues (their hidden markers). Stop the
        ticket service first; settings come from the same ALERTLINE_* variables."""
        stats = run_rebuild(list(repos) or None, dry_run, lambda s: click.echo(s, err=True))
        click.echo(json.dumps(stats))
