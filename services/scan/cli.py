"""``alertline scan ...``: run a scan by hand, or check the check files.

    alertline scan aws --account 111111111111 --region eu-west-1 --dry-run
    alertline scan inventory --format gcp-cai --name org-1234 export.json --dry-run
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

import click

from alertline.errors import ConfigError


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


def _finish(report_ok: bool, summary: dict[str, object]) -> None:
    click.echo(json.dumps(summary, sort_keys=True), err=True)
    sys.exit(0 if report_ok else 1)


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
    """Scan AWS accounts by assuming a role in each."""
    from services.scan.app import run_scan
    from services.scan.settings import ScanSettings

    base = ScanSettings()
    upd: dict[str, object] = {"enabled": True}
    if accounts:
        upd["accounts"] = {a: base.aws.accounts.get(a, "") for a in accounts}
    if organizations is not None:
        upd["organizations"] = organizations
    if regions:
        upd["regions"] = list(regions)
    if role_name:
        upd["role_name"] = role_name
    if endpoint_url:
        upd["endpoint_url"] = endpoint_url
    try:
        aws = type(base.aws).model_validate(base.aws.model_dump() | upd)
        settings = ScanSettings.model_validate(
            base.model_dump() | {"aws": aws.model_dump(), **({"checks_dirs": list(checks_dirs)} if checks_dirs else {})}
        )
        if not (settings.aws.accounts or settings.aws.organizations):
            raise click.UsageError("give --account (or --organizations, or ALERTLINE_AWS__ACCOUNTS)")
        report = run_scan(settings, dry_run=dry_run, inventory=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    _finish(report.ok, report.summary())


@scan.command("inventory")
@click.option("--format", "fmt", type=click.Choice(["gcp-cai", "azure-arg"]), required=True, help="Export format.")
@click.option("--name", default=None, help="Source name (the unit of resolution; default: the file name).")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint for s3:// sources.")
@click.argument("sources", nargs=-1, required=True)
@_dry
@_checks
def scan_inventory(
    fmt: str,
    name: str | None,
    endpoint_url: str | None,
    sources: tuple[str, ...],
    dry_run: bool,
    checks_dirs: tuple[str, ...],
) -> None:
    """Scan inventory exports (paths, file://, s3://bucket/key or s3://bucket/prefix/)."""
    from services.scan.app import run_scan
    from services.scan.settings import ScanSettings

    if name and len(sources) > 1:
        raise click.UsageError("--name names one source; give one SOURCE with it")
    base = ScanSettings()
    inv = {(name or _default_name(s)): {"format": fmt, "uri": s, "endpoint_url": endpoint_url} for s in sources}
    try:
        settings = ScanSettings.model_validate(
            base.model_dump()
            | {"inventory": inv, "aws": base.aws.model_dump() | {"enabled": False}}
            | ({"checks_dirs": list(checks_dirs)} if checks_dirs else {})
        )
        report = run_scan(settings, dry_run=dry_run, aws=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for u in report.units:
        for msg in u.errors + u.incomplete:
            click.echo(json.dumps({"unit": u.unit, "error": msg}), err=True)
        if u.bad_records:
            click.echo(json.dumps({"unit": u.unit, "bad_records": u.bad_records, "first": u.bad_samples}), err=True)
        if u.unchecked_kinds:
            click.echo(json.dumps({"unit": u.unit, "kinds_without_checks": u.unchecked_kinds}), err=True)
    _finish(report.ok, report.summary())


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
