"""``alertline demo``: the whole pipeline on this machine, end to end.

Real Kafka, moto's S3/SQS server, the four services as separate processes, and sample alerts
from every cloud through their real transports: AWS (Security Hub, GuardDuty) via SQS, Google
SCC via the Pub/Sub fake, Microsoft Defender via the Event Hubs path. One finding is resolved
later, one caller is on the (local) Tor exit list, one exposed web page is probed and
photographed. It ends with a table of the issues and the address of a page that shows them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from devtools import samples
from devtools.stack import Stack, new_prefix

STEPS = 7


def _say(step: int, text: str) -> None:
    click.echo(f"[{step}/{STEPS}] {text}", err=True)


def feed_initial(stack: Stack) -> int:
    """Send the first deliveries; returns how many issues they should make."""
    stack.send_sqs(samples.securityhub_open_ports())
    stack.send_sqs(samples.guardduty_port_probe(stack.web_port))
    stack.send_sqs(samples.guardduty_tor_call())
    stack.publish_pubsub(samples.scc_open_firewall("ACTIVE"))
    stack.send_eventhub(samples.defender_brute_force())
    return 5


def comment_bodies(issue: Any) -> list[str]:
    return [c.body for c in issue.comments]


def table(issues: list[Any]) -> str:
    rows = [("#", "state", "comments", "title", "labels")]
    for i in sorted(issues, key=lambda i: i.number):
        state = i.state + (f" ({i.state_reason})" if i.state == "closed" and i.state_reason else "")
        rows.append((str(i.number), state, str(len(i.comments)), i.title[:70], ", ".join(sorted(i.labels))[:90]))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_demo(workdir: Path, hold: bool, timeout: float = 240, progress: Callable[[int, str], None] = _say) -> int:
    stack = Stack(
        workdir,
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP"),
        prefix=new_prefix(),
        github_token=os.environ.get("ALERTLINE_GITHUB__TOKEN"),
        github_repository=os.environ.get("ALERTLINE_GITHUB__REPOSITORY"),
    )
    try:
        progress(1, "infrastructure: Kafka, moto (S3/SQS/EC2), GitHub fake, Pub/Sub fake, Event Hub, feeds")
        stack.start_infrastructure(lambda s: click.echo(f"      {s}", err=True))
        progress(2, "services: ingest, evaluate, enrich, ticket (separate processes)")
        stack.start_services(lambda s: click.echo(f"      {s}", err=True))
        progress(3, "feeding samples: Security Hub + GuardDuty via SQS, SCC via Pub/Sub, Defender via Event Hubs")
        expected = feed_initial(stack)
        started = time.monotonic()
        last = -1

        def issues_made() -> bool:
            nonlocal last
            n = len(stack.issues())
            if n != last:
                click.echo(f"      {n}/{expected} issues after {time.monotonic() - started:.0f}s", err=True)
                last = n
            return n >= expected

        stack.wait_for(issues_made, timeout, "the first issues")
        progress(4, "waiting for investigation results (Tor caller, exposed page + screenshot)")

        def investigated() -> bool:
            bodies = " ".join(b for i in stack.issues() for b in [*comment_bodies(i), i.body or ""])
            return "Tor" in bodies and "Acme admin console" in bodies

        try:
            stack.wait_for(investigated, 120, "enrichment comments")
        except TimeoutError as exc:
            click.echo(f"      warning: {exc}", err=True)
        progress(5, "the SCC finding becomes INACTIVE at the source -> its issue should close")
        stack.publish_pubsub(samples.scc_open_firewall("INACTIVE", minutes_later=30))

        def closed() -> bool:
            return any(i.state == "closed" for i in stack.issues())

        stack.wait_for(closed, 120, "the resolved finding's issue to close")
        progress(6, f"done in {time.monotonic() - started:.0f}s")
        click.echo(table(stack.issues()))
        if stack.github_token and stack.github_repository:
            click.echo(f"\nIssues with their comments: https://github.com/{stack.github_repository}/issues")
        else:
            click.echo(f"\nIssues with their comments: {stack.github_url}/ui")
        click.echo(f"Logs: {workdir / 'logs'}")
        progress(7, "press Ctrl-C to stop" if hold else "stopping")
        if hold:
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        codes = stack.stop()
        bad = {k: v for k, v in codes.items() if v not in (0, None)}
        if bad:
            click.echo(f"warning: services exited with {bad}", err=True)


@click.command("demo")
@click.option("--hold/--no-hold", default=None, help="Keep the page up until Ctrl-C (default: when interactive).")
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="Where logs and state go.")
def demo(hold: bool | None, workdir: Path | None) -> None:
    """Run the whole pipeline locally with sample alerts from every cloud; show the issues."""
    if hold is None:
        hold = sys.stdin.isatty() and sys.stdout.isatty()
    wd = workdir or Path(tempfile.mkdtemp(prefix="alertline-demo-"))
    raise SystemExit(run_demo(wd, hold))
