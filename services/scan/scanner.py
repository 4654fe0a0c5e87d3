"""One scan pass: collect units (in parallel), then for each, in the calling thread: archive the
raw result, evaluate the checks, reconcile with the state, publish alerts + state + dead
letters in one Kafka transaction.

Failures are per unit and never silent: a unit whose collection failed resolves nothing, a
unit whose archive or publish failed publishes nothing (the next run repeats it, since the
state did not move); both make the run's outcome "failed" (non-zero exit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from alertline.clock import Clock, utcnow
from alertline.kafka.runtime import dlq_headers
from alertline.model import RawRef
from alertline.stage import Output
from services.scan.domain import (
    BadRecord,
    Check,
    Collected,
    CollectError,
    Prior,
    Unit,
    alert_to_json,
    archive_key,
    evaluate,
    prior_to_json,
    reconcile,
    unit_document,
)

log = logging.getLogger(__name__)
SERVICE = "scan"
MAX_SAMPLES = 20


class Sink(Protocol):
    def publish(self, outputs: Iterable[Output]) -> int: ...


class Archive(Protocol):
    def put(self, key: str, body: bytes, sha256_hex: str) -> str: ...


@dataclass(frozen=True)
class Topics:
    alerts: str
    state: str
    dlq: str


@dataclass
class UnitReport:
    unit: str
    provider: str
    complete: bool
    resources: int = 0
    findings: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    resolved: int = 0
    held: int = 0
    published: int = 0
    bad_records: int = 0
    errors: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    failed: str | None = None
    unchecked_kinds: dict[str, int] = field(default_factory=dict)
    raw_uris: list[str] = field(default_factory=list)
    bad_samples: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.failed:
            return "failed"
        return "complete" if self.complete else "incomplete"


@dataclass
class Report:
    units: list[UnitReport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and all(u.outcome == "complete" for u in self.units)

    def summary(self) -> dict[str, Any]:
        def total(attr: str) -> int:
            return sum(int(getattr(u, attr)) for u in self.units)

        return {
            "ok": self.ok,
            "units": len(self.units),
            "complete": sum(u.outcome == "complete" for u in self.units),
            "incomplete": [u.unit for u in self.units if u.outcome == "incomplete"],
            "failed": [u.unit for u in self.units if u.outcome == "failed"],
            "failures": self.failures,
            "resources": total("resources"),
            "findings": total("findings"),
            "new": total("new"),
            "changed": total("changed"),
            "resolved": total("resolved"),
            "held": total("held"),
            "published": total("published"),
            "bad_records": total("bad_records"),
            "seconds": round(self.seconds, 3),
        }


class ScanMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.units = Counter("alertline_scan_units", "Units scanned, by outcome.", ["provider", "outcome"], registry=r)
        self.collect_errors = Counter(
            "alertline_scan_collect_errors", "Collection steps that failed.", ["provider"], registry=r
        )
        self.bad_records = Counter(
            "alertline_scan_bad_records", "Inventory records that could not be read.", ["provider"], registry=r
        )
        self.alerts = Counter(
            "alertline_scan_alerts", "Alerts published, by status.", ["provider", "status"], registry=r
        )
        self.held = Counter(
            "alertline_scan_resolutions_held",
            "Findings absent from an incomplete scan, kept open (not resolved).",
            ["provider"],
            registry=r,
        )
        self.failing = Gauge("alertline_scan_failing_findings", "Findings failing after this run.", registry=r)
        self.duration = Gauge("alertline_scan_run_duration_seconds", "Duration of the last run.", registry=r)
        self.last_success = Gauge(
            "alertline_scan_last_success_timestamp_seconds",
            "When a run last completed every unit and published everything.",
            registry=r,
        )
        self.last_run = Gauge("alertline_scan_last_run_timestamp_seconds", "When a run last finished.", registry=r)


Job = tuple[Unit, Callable[[], Collected]]


class Scanner:
    def __init__(
        self,
        checks: list[Check],
        *,
        archive: Archive,
        sink: Sink,
        state: Mapping[str, Prior],
        topics: Topics,
        metrics: ScanMetrics,
        clock: Clock = utcnow,
        archive_prefix: str = "raw/",
        always_publish: bool = False,
    ) -> None:
        self.checks = checks
        self.archive = archive
        self.sink = sink
        self.topics = topics
        self.metrics = metrics
        self.clock = clock
        self.archive_prefix = archive_prefix
        self.always_publish = always_publish
        self.by_unit: dict[str, dict[str, Prior]] = {}
        for ident, p in state.items():
            self.by_unit.setdefault(p.unit, {})[ident] = p

    def failing(self) -> int:
        return sum(len(v) for v in self.by_unit.values())

    def run(self, jobs: list[Job], concurrency: int = 1, report: Report | None = None) -> Report:
        """Collect every job (``concurrency`` at a time) and handle each as it arrives."""
        report = report or Report()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="collect") as pool:
            pending: dict[Future[Collected], Unit] = {pool.submit(fn): unit for unit, fn in jobs}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    unit = pending.pop(fut)
                    try:
                        collected = fut.result()
                    except Exception as exc:  # a crashed collector fails its unit, reported; others go on
                        log.exception("collector crashed", extra={"unit": unit.key})
                        collected = Collected(unit)
                        collected.errors.append(
                            CollectError("collector", f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))
                        )
                    report.units.append(self.handle(collected))
        report.seconds += time.monotonic() - started
        return report

    def handle(self, collected: Collected) -> UnitReport:
        unit = collected.unit
        rep = UnitReport(
            unit.key,
            unit.provider,
            collected.complete,
            resources=len(collected.resources),
            bad_records=len(collected.bad),
            errors=[f"{e.where}: {e.error_class}: {e.message}" for e in collected.errors],
            incomplete=list(collected.incomplete),
            unchecked_kinds=dict(collected.unchecked_kinds),
            bad_samples=[f"{b.source}:{b.position}: {b.message}" for b in collected.bad[:MAX_SAMPLES]],
        )
        m = self.metrics
        m.collect_errors.labels(unit.provider).inc(len(collected.errors))
        m.bad_records.labels(unit.provider).inc(len(collected.bad))
        now = self.clock()
        try:
            raws = collected.raw_objects or [unit_document(collected)]
            shas = [hashlib.sha256(b).hexdigest() for b in raws]
            # Archive before publish: every alert points at bytes that exist.
            uris = [
                self.archive.put(archive_key(self.archive_prefix, SERVICE, now, sha), body, sha)
                for body, sha in zip(raws, shas, strict=True)
            ]
            rep.raw_uris = uris
            position = {id(d): i for i, d in enumerate(collected.resources)}

            def raw_for(doc: Mapping[str, Any]) -> RawRef:
                ref = doc.get("raw")
                oi, idx = (ref[0], ref[1]) if isinstance(ref, list) and len(ref) == 2 else (0, position.get(id(doc), 0))
                return {"uri": uris[oi], "sha256": shas[oi], "index": int(idx)}

            findings = evaluate(collected.resources, self.checks)
            prior = self.by_unit.get(unit.key, {})
            plan = reconcile(
                collected,
                findings,
                prior,
                self.checks,
                now=now,
                raw_for=raw_for,
                unit_raw={"uri": uris[0], "sha256": shas[0], "index": 0},
                always_publish=self.always_publish,
            )
            outputs: list[Output] = [
                Output(self.topics.alerts, a, key=a["identity"], schema="alert") for a in plan.publish
            ]
            outputs += [Output(self.topics.state, prior_to_json(p), key=i) for i, p in plan.keep.items()]
            outputs += [Output(self.topics.state, None, key=i) for i in plan.drop]
            outputs += [
                self._dead_letter(b, uris[b.raw_object] if b.raw_object < len(uris) else None, now)
                for b in collected.bad
            ]
            if outputs:
                self.sink.publish(outputs)
        except Exception as exc:  # noqa: BLE001 - one unit's archive/publish failure must not stop the others; reported
            rep.failed = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
            log.error("unit not published", extra={"unit": unit.key, "error": rep.failed})
            m.units.labels(unit.provider, "failed").inc()
            return rep
        # The transaction committed: now the state in memory may move.
        cur = self.by_unit.setdefault(unit.key, {})
        cur.update(plan.keep)
        for i in plan.drop:
            cur.pop(i, None)
        rep.findings = len(findings)
        rep.new, rep.changed, rep.unchanged = plan.new, plan.changed, plan.unchanged
        rep.resolved, rep.held, rep.published = plan.resolved, plan.held, len(plan.publish)
        for a in plan.publish:
            m.alerts.labels(unit.provider, a["status"]).inc()
        m.held.labels(unit.provider).inc(plan.held)
        m.units.labels(unit.provider, rep.outcome).inc()
        m.failing.set(self.failing())
        level = logging.INFO if rep.outcome == "complete" else logging.WARNING
        log.log(level, "unit scanned", extra={k: v for k, v in rep.__dict__.items() if not isinstance(v, (list, dict))})
        if rep.held:
            log.warning(
                "resolutions held: absent findings kept open (incomplete scan, disabled check or kind not covered)",
                extra={"unit": unit.key, "held": rep.held, "errors": "; ".join(rep.errors + rep.incomplete)[:2000]},
            )
        return rep

    def _dead_letter(self, b: BadRecord, raw_uri: str | None, now: datetime) -> Output:
        envelope: dict[str, Any] = {
            "service": SERVICE,
            "source": b.source,
            "partition": None,
            "offset": b.position,
            "key": None,
            "value": b.value,
            "headers": {},
            "error_class": b.error_class,
            "error_message": b.message[:1000],
            "raw_uri": raw_uri,
            "failed_at": now,
        }
        return Output(
            self.topics.dlq,
            envelope,
            key=None,
            schema="dead_letter",
            headers=dlq_headers(SERVICE, b.source, None, b.position, b.error_class, b.message),
        )

    def finish(self, report: Report) -> None:
        m = self.metrics
        m.duration.set(report.seconds)
        m.last_run.set(self.clock().timestamp())
        m.failing.set(self.failing())
        if report.ok:
            m.last_success.set(self.clock().timestamp())


class PrintSink:
    """Dry runs: alerts as JSON lines, nothing else written."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def publish(self, outputs: Iterable[Output]) -> int:
        n = 0
        for o in outputs:
            if o.schema == "alert" and isinstance(o.value, Mapping):
                self.out.write(json.dumps(alert_to_json(o.value), sort_keys=True, default=str) + "\n")
                n += 1
        self.out.flush()
        return n
