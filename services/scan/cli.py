"""``alertline scan ...``: run a scan by hand, or check the check files.

    alertline scan aws --account 111111111111 --region eu-west-1 --dry-run
    alertline scan inventory --format gcp-cai --name org-1234 export.json --dry-run
    alertline scan all --dry-run          # everything configured, as `alertline run scan`
    alertline scan checks

``--dry-run`` needs neither Kafka nor an archive bucket: it prints every failing finding as an
alert (JSON lines on stdout) and a summary on stderr. Without it, results are archived and
published exactly as the CronJob does (settings from ALERTLINE_* variables).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from alertline.errors import ConfigError

if TYPE_CHECKING:
    from services.scan.scanner import Report
    from services.scan.settings import ScanSettings


def register(cli: click.Group) -> None:
    cli.add_command(scan)


@click.group()
def scan() -> None:
    """Posture scans: our own alerts from cloud resource configurations."""
    from alertline import logs

    logs.configure("scan", os.environ.get("ALERTLINE_RUNTIME__LOG_LEVEL", "INFO"))


_dry = click.option("--dry-run", is_flag=True, help="Print alerts as JSON lines; no Kafka, no archive.")
_checks = click.option(
    "--checks",
    "checks_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="More checks (repeatable); a check with a shipped id replaces it. `scan checks`: only these.",
)


def _finish(report: Report) -> None:
    """Per-unit problems, then the summary, on stderr; exit 0 only when everything completed."""
    for u in report.units:
        for msg in u.errors + u.incomplete:
            click.echo(json.dumps({"unit": u.unit, "error": msg}), err=True)
        if u.failed:
            click.echo(json.dumps({"unit": u.unit, "failed": u.failed}), err=True)
        if u.bad_records:
            click.echo(json.dumps({"unit": u.unit, "bad_records": u.bad_records, "first": u.bad_samples}), err=True)
        if u.unchecked_kinds:
            click.echo(json.dumps({"unit": u.unit, "kinds_without_checks": u.unchecked_kinds}), err=True)
    click.echo(json.dumps(report.summary(), sort_keys=True), err=True)
    sys.exit(0 if report.ok else 1)


def _settings(update: dict[str, Any], checks_dirs: tuple[str, ...]) -> ScanSettings:
    from services.scan.settings import ScanSettings

    base = ScanSettings()
    data = base.model_dump() | update
    if checks_dirs:
        data["checks_dirs"] = [*base.checks_dirs, *checks_dirs]
    return ScanSettings.model_validate(data)


def _run(settings: ScanSettings, dry_run: bool, aws: bool, inventory: bool) -> None:
    from services.scan.app import run_scan

    try:
        report = run_scan(settings, dry_run=dry_run, aws=aws, inventory=inventory)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    _finish(report)


@scan.command("all")
@_dry
@_checks
def scan_all(dry_run: bool, checks_dirs: tuple[str, ...]) -> None:
    """Scan everything configured (ALERTLINE_AWS__*, ALERTLINE_INVENTORY): what `alertline run scan` does."""
    _run(_settings({}, checks_dirs), dry_run, aws=True, inventory=True)


@scan.command("aws")
@click.option("--account", "accounts", multiple=True, help="Account id to scan (repeatable; default: from settings).")
@click.option("--organizations", is_flag=True, default=None, help="Also scan every account AWS Organizations lists.")
@click.option("--region", "regions", multiple=True, help="Region to scan (repeatable; default: from settings).")
@click.option("--role-name", default=None, help="Role assumed in each account.")
@click.option("--endpoint-url", default=None, help="AWS endpoint override (moto, LocalStack).")
@_dry
@_checks
def scan_aws(
    accounts: tuple[str, ...],
    organizations: bool | None,
    regions: tuple[str, ...],
    role_name: str | None,
    endpoint_url: str | None,
    dry_run: bool,
    checks_dirs: tuple[str, ...],
) -> None:
    """Scan AWS accounts by assuming a role in each (settings from ALERTLINE_AWS__*, options win)."""
    from services.scan.settings import ScanSettings

    configured = ScanSettings().aws
    upd: dict[str, Any] = {"enabled": True}
    if accounts:
        upd["accounts"] = {a: configured.accounts.get(a, "") for a in accounts}
    if organizations is not None:
        upd["organizations"] = organizations
    if regions:
        upd["regions"] = list(regions)
    if role_name:
        upd["role_name"] = role_name
    if endpoint_url:
        upd["endpoint_url"] = endpoint_url
    aws = configured.model_dump() | upd
    if not (aws["accounts"] or aws["organizations"]):
        raise click.UsageError("give --account (or --organizations, or ALERTLINE_AWS__ACCOUNTS)")
    try:
        settings = _settings({"aws": aws}, checks_dirs)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    _run(settings, dry_run, aws=True, inventory=False)


@scan.command("inventory")
@click.option("--format", "fmt", type=click.Choice(["gcp-cai", "azure-arg"]), help="Export format of the SOURCES.")
@click.option("--name", default=None, help="Source name (the unit of resolution; default: the file name).")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint for s3:// sources.")
@click.argument("sources", nargs=-1)
@_dry
@_checks
def scan_inventory(
    fmt: str | None,
    name: str | None,
    endpoint_url: str | None,
    sources: tuple[str, ...],
    dry_run: bool,
    checks_dirs: tuple[str, ...],
) -> None:
    """Scan inventory exports: the SOURCES given (paths, file://, s3://bucket/key,
    s3://bucket/prefix/), or without SOURCES every source in ALERTLINE_INVENTORY."""
    upd: dict[str, Any] = {}
    if sources:
        if not fmt:
            raise click.UsageError("--format is required with SOURCES")
        if name and len(sources) > 1:
            raise click.UsageError("--name names one source; give one SOURCE with it")
        upd["inventory"] = {
            (name or _default_name(s)): {"format": fmt, "uri": s, "endpoint_url": endpoint_url} for s in sources
        }
    try:
        settings = _settings(upd, checks_dirs)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    if not settings.inventory:
        raise click.UsageError("give SOURCES (with --format), or configure ALERTLINE_INVENTORY")
    _run(settings, dry_run, aws=False, inventory=True)


def _default_name(source: str) -> str:
    stem = Path(source.rstrip("/")).name or "export"
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem)


@scan.command("checks")
@_checks
def scan_checks(checks_dirs: tuple[str, ...]) -> None:
    """Validate the check files and list them (one JSON object per check)."""
    from services.scan.checks import default_dir, load_checks

    try:
        checks = load_checks([Path(d) for d in checks_dirs] or [default_dir()])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for c in checks:
        click.echo(
            json.dumps(
                {
                    "id": c.id,
                    "provider": c.provider,
                    "resource_type": list(c.kinds),
                    "severity": c.severity,
                    "score": c.score,
                    "title": c.title,
                    "source": c.source,
                }
            )
        )
