"""``alertline replay ...``"""

from __future__ import annotations

import click

from alertline.errors import AlertlineError
from alertline.settings import BaseServiceSettings
from alertline.timeparse import parse_time
from alertline.topics import SERVICE_INPUTS


@click.group()
def replay() -> None:
    """Reprocess: move a consumer group back in time, or re-publish from the S3 archive."""


@replay.command("offsets")
@click.option("--service", required=True, type=click.Choice(sorted(SERVICE_INPUTS)), help="Whose group to move.")
@click.option("--to-time", "to_time", required=True, help="ISO-8601 (2026-11-23T10:00Z) or relative (now-2h).")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
def offsets(service: str, to_time: str, dry_run: bool) -> None:
    """Move SERVICE's consumer group on its input topic to the first record at or after TO_TIME.

    Refuses while the group has live members (stop the service first)."""
    from alertline.kafka.replay import plan_and_move

    try:
        when = parse_time(to_time)
        g, t, moves = plan_and_move(BaseServiceSettings().kafka, service, when, dry_run)
    except AlertlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"group {g} on {t} -> {when.isoformat()}{' (dry run: nothing changed)' if dry_run else ''}")
    click.echo(f"{'partition':>9} {'committed':>10} {'target':>10} {'end':>10} {'lag before':>11} {'lag after':>10}")
    for m in moves:
        before = "-" if m.lag_before is None else str(m.lag_before)
        committed = "-" if m.committed is None else str(m.committed)
        click.echo(f"{m.partition:>9} {committed:>10} {m.target:>10} {m.end:>10} {before:>11} {m.lag_after:>10}")
    total = sum(m.lag_after for m in moves)
    click.echo(f"{total} record(s) {'would be' if dry_run else 'will be'} reprocessed")
