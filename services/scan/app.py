"""Composition root of the scanner: ``alertline run scan`` runs one scan pass and exits —
0 when every unit was collected completely and published, 1 otherwise (a Kubernetes CronJob
shows the failure), 2 when the configuration or the checks are invalid."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

import boto3
from pydantic import ValidationError

from alertline import logs
from alertline.archive import S3Archive
from alertline.avro import make_codec
from alertline.clock import Clock, utcnow
from alertline.errors import AlertlineError, ConfigError
from alertline.kafka.admin import create_topics
from alertline.kafka.publisher import Publisher
from alertline.topics import topic
from services.scan.checks import default_dir, load_checks
from services.scan.collectors import azure, gcp
from services.scan.collectors.aws import AwsCollector, ClientHook, CollectFailed
from services.scan.domain import Check, Collected, CollectError, Prior, Unit
from services.scan.scanner import Archive, Job, PrintSink, Report, ScanMetrics, Scanner, Sink, Topics
from services.scan.settings import InventorySource, ScanSettings
from services.scan.sources import NoArchive, SourceError, read_objects
from services.scan.state import KafkaState

log = logging.getLogger(__name__)

SCAN_TOPICS = ("alerts", "scan.state", "scan.dlq")


def checks_for(settings: ScanSettings) -> list[Check]:
    """The shipped checks (unless excluded), overridden by id by the configured directories,
    minus the disabled ones."""
    dirs = [Path(d) for d in settings.checks_dirs]
    if settings.scan.checks_dir:
        dirs.append(Path(settings.scan.checks_dir))
    checks: dict[str, Check] = {}
    if settings.include_shipped_checks:
        checks.update((c.id, c) for c in load_checks([default_dir()]))
    if dirs:
        checks.update((c.id, c) for c in load_checks(dirs))
    unknown = sorted(set(settings.disabled_checks) - set(checks))
    if unknown:
        raise ConfigError(f"disabled_checks names unknown check ids: {', '.join(unknown)}")
    out = [c for cid, c in sorted(checks.items()) if cid not in settings.disabled_checks]
    if not out:
        raise ConfigError("no checks to run")
    return out


def inventory_job(
    name: str, src: InventorySource, checks: list[Check], session: boto3.Session | None
) -> tuple[Unit, Callable[[], Collected]]:
    provider = "gcp" if src.format == "gcp-cai" else "azure"
    unit = Unit(f"{src.format}:{name}", provider)
    known = {k for c in checks if c.provider == provider for k in c.kinds}

    def collect() -> Collected:
        try:
            s3 = None
            if src.uri.startswith("s3://"):
                s3 = (session or boto3.Session()).client("s3", endpoint_url=src.endpoint_url, region_name=src.region)
            objects = read_objects(src.uri, s3, src.max_bytes)
        except (SourceError, ConfigError) as exc:
            log.error("inventory export unreadable", extra={"unit": unit.key, "error": str(exc)})
            c = Collected(unit)
            c.errors.append(CollectError(src.uri, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc)))
            return c
        parse = gcp.parse_export if src.format == "gcp-cai" else azure.parse_export
        c = parse(unit, objects, known, src.covers)
        for b in c.bad[:20]:
            log.error(
                "bad inventory record",
                extra={"unit": unit.key, "source": b.source, "position": b.position, "error": b.message},
            )
        if len(c.bad) > 20:
            log.error("more bad inventory records", extra={"unit": unit.key, "count": len(c.bad) - 20})
        if c.unchecked_kinds:
            log.info(
                "inventory kinds without checks (ignored)",
                extra={"unit": unit.key, "kinds": json.dumps(c.unchecked_kinds, sort_keys=True)[:2000]},
            )
        return c

    return unit, collect


def build_jobs(
    settings: ScanSettings,
    checks: list[Check],
    report: Report,
    *,
    clock: Clock,
    session: boto3.Session | None = None,
    client_hook: ClientHook | None = None,
    aws: bool = True,
    inventory: bool = True,
) -> list[Job]:
    jobs: list[Job] = []
    if aws and settings.aws.enabled:
        collector = AwsCollector(settings.aws, session or boto3.Session(), clock, client_hook)
        try:
            accounts = collector.accounts()
        except CollectFailed as exc:
            report.failures.append(str(exc))
            log.error("cannot list accounts", extra={"error": str(exc)})
        else:
            jobs += [(u, partial(collector.collect, u)) for u in collector.units(accounts)]
    if inventory:
        jobs += [inventory_job(name, src, checks, session) for name, src in sorted(settings.inventory.items())]
    return jobs


def run_scan(
    settings: ScanSettings,
    *,
    dry_run: bool = False,
    clock: Clock = utcnow,
    out: IO[str] | None = None,
    session: boto3.Session | None = None,
    client_hook: ClientHook | None = None,
    aws: bool = True,
    inventory: bool = True,
    metrics: ScanMetrics | None = None,
) -> Report:
    """One pass over everything configured. Never raises for a unit's failure: it is in the
    report (and the log and metrics)."""
    checks = checks_for(settings)
    metrics = metrics or ScanMetrics()
    report = Report()
    prefix = settings.kafka.topic_prefix
    topics = Topics(topic(prefix, "alerts"), topic(prefix, "scan.state"), topic(prefix, "scan.dlq"))
    sink: Sink
    archive: Archive
    publisher: Publisher | None = None
    state: dict[str, Prior] = {}
    if dry_run:
        sink, archive = PrintSink(out), NoArchive()
    else:
        if not settings.archive.bucket:
            raise ConfigError("ALERTLINE_ARCHIVE__BUCKET is required (raw scan results are archived before publishing)")
        s3 = (session or boto3.Session()).client(
            "s3", endpoint_url=settings.archive.endpoint_url, region_name=settings.archive.region
        )
        archive = S3Archive(s3, settings.archive.bucket)
        try:
            create_topics(settings.kafka, SCAN_TOPICS)
            state = KafkaState(settings.kafka, topics.state, settings.state_read_timeout_s).load()
        except AlertlineError as exc:
            # Without the state nothing can be reconciled: publish nothing, resolve nothing.
            report.failures.append(f"scan state: {exc}")
            log.error("cannot read the scan state; nothing scanned", extra={"error": str(exc)})
            return report
        codec = make_codec(
            settings.kafka.schema_registry_url,
            settings.kafka.schema_registry_auth.get_secret_value() if settings.kafka.schema_registry_auth else None,
        )
        publisher = Publisher(
            settings.kafka, codec, settings.transactional_id or transactional_id(settings, aws, inventory)
        )
        sink = publisher
    scanner = Scanner(
        checks,
        archive=archive,
        sink=sink,
        state=state,
        topics=topics,
        metrics=metrics,
        clock=clock,
        archive_prefix=settings.archive.prefix,
        always_publish=settings.always_publish,
    )
    try:
        jobs = build_jobs(
            settings,
            checks,
            report,
            clock=clock,
            session=session,
            client_hook=client_hook,
            aws=aws,
            inventory=inventory,
        )
        if not jobs and not report.failures:
            log.warning("nothing to scan: enable aws or configure inventory sources")
        scanner.run(jobs, settings.aws.concurrency, report)
    finally:
        if publisher is not None:
            publisher.close()
    scanner.finish(report)
    log.log(logging.INFO if report.ok else logging.ERROR, "scan finished", extra=_flat(report.summary()))
    return report


def transactional_id(settings: ScanSettings, aws: bool, inventory: bool) -> str:
    """One id per scope (what a run scans): an overlapping run of the same scope is fenced,
    while runs of different scopes (an hourly AWS job, a daily inventory job) are not."""
    parts = (["aws"] if aws and settings.aws.enabled else []) + (sorted(settings.inventory) if inventory else [])
    scope = "+".join(parts) or "none"
    if len(scope) > 64:
        scope = hashlib.sha256(scope.encode()).hexdigest()[:16]
    return f"{settings.kafka.topic_prefix}scan.{scope}"


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v)) for k, v in d.items()}


def push_metrics(url: str, metrics: ScanMetrics) -> None:
    from prometheus_client import push_to_gateway

    try:
        push_to_gateway(url, job="alertline-scan", registry=metrics.registry, timeout=10)
    except OSError as exc:
        log.error("metrics push failed", extra={"url": url, "error": str(exc)})


def main() -> None:
    try:
        settings = ScanSettings()
    except ValidationError as exc:
        logs.configure("scan")
        log.error("invalid settings", extra={"error": str(exc)})
        sys.exit(2)
    logs.configure("scan", settings.runtime.log_level)
    metrics = ScanMetrics()
    try:
        report = run_scan(settings, metrics=metrics)
    except ConfigError as exc:
        log.error("invalid configuration", extra={"error": str(exc)})
        sys.exit(2)
    if settings.pushgateway_url:
        push_metrics(settings.pushgateway_url, metrics)
    sys.exit(0 if report.ok else 1)
