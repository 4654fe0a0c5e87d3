"""The enrichers: IP reputation (feeds), AbuseIPDB, GeoIP/ASN (MaxMind file) and the exposure probe."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from alertline.clock import Clock, iso, utcnow
from alertline.model import Alert
from services.enrich.abuseipdb import AbuseIpDb, ApiError
from services.enrich.artifacts import ArtifactError, ArtifactStore
from services.enrich.domain import (
    CLOSED_STATUSES,
    Finding,
    Selection,
    exposure_finding,
    exposure_ports,
    fingerprint,
    is_exposure,
    reputation_summary,
    resource_addresses,
)
from services.enrich.ec2 import Ec2Resolver, GroupRef, ResolveError, group_ref
from services.enrich.engine import Limits, RateLimited, Task
from services.enrich.feeds import Feeds
from services.enrich.guard import classify
from services.enrich.iplists import parse_ip
from services.enrich.probe import Prober, Target

log = logging.getLogger(__name__)


def _public_ips(alert: Alert) -> list[str]:
    out = []
    for raw in alert["indicators"]["ips"]:
        try:
            ip = parse_ip(raw)
        except ValueError:
            continue
        if classify(ip) is None:
            out.append(str(ip))
    return list(dict.fromkeys(out))


class IpReputation:
    """Is the actor address on the Tor exit list or a block list (as of the lists' download)?"""

    name = "ip_reputation"

    def __init__(self, feeds: Feeds, limits: Limits | None = None, clock: Clock = utcnow) -> None:
        self.feeds = feeds
        self.limits = limits or Limits(timeout_s=1.0, concurrency=2, cache_ttl_s=60.0)
        self.clock = clock

    def plan(self, alert: Alert) -> list[Task]:
        if alert["status"] in CLOSED_STATUSES or not self.feeds.specs:
            return []
        return [Task(self.name, ip) for ip in _public_ips(alert)]

    def run(self, task: Task, deadline: float) -> Finding:
        now = self.clock()
        ip = parse_ip(task.subject)
        listed: list[dict[str, Any]] = []
        unavailable: list[str] = []
        checked: list[str] = []
        for name, st in sorted(self.feeds.status().items()):
            if st.snapshot is None:
                unavailable.append(name)
                continue
            checked.append(name)
            if ip in st.snapshot.ips:
                listed.append(
                    {
                        "feed": name,
                        "kind": st.spec.kind,
                        "verdict": st.spec.verdict,
                        "fetched_at": st.snapshot.fetched_at,
                        "entries": st.snapshot.entries,
                    }
                )
        summary, verdict = reputation_summary(task.subject, listed, unavailable, now)
        data = {
            "ip": task.subject,
            "tor_exit": any(h["kind"] == "tor" for h in listed),
            "listed": [{**h, "fetched_at": iso(h["fetched_at"])} for h in listed],
            "checked": checked,
            "unavailable": unavailable,
        }
        fp = fingerprint({"ip": task.subject, "listed": sorted(h["feed"] for h in listed)})
        return Finding(self.name, task.subject, summary, verdict, data, fp, now)


class AbuseIpDbEnricher:
    name = "abuseipdb"

    def __init__(self, client: AbuseIpDb, limits: Limits | None = None, clock: Clock = utcnow) -> None:
        self.client = client
        # The free plan allows 1000 checks a day; a day-long cache keeps repeat callers cheap.
        self.limits = limits or Limits(timeout_s=10.0, concurrency=4, rate_per_s=0.5, burst=5, cache_ttl_s=86400.0)
        self.clock = clock

    def plan(self, alert: Alert) -> list[Task]:
        if alert["status"] in CLOSED_STATUSES:
            return []
        return [Task(self.name, ip) for ip in _public_ips(alert)]

    def run(self, task: Task, deadline: float) -> Finding:
        try:
            d = self.client.check(task.subject, timeout_s=max(0.5, deadline - time.monotonic()))
        except ApiError as exc:
            if exc.retry_after is not None:
                raise RateLimited(str(exc), exc.retry_after) from exc
            raise
        now = self.clock()
        score = int(d.get("abuseConfidenceScore") or 0)
        verdict = "malicious" if score >= 75 else "suspicious" if score >= 25 else "info"
        data = {
            "ip": task.subject,
            "score": score,
            "total_reports": d.get("totalReports"),
            "country": d.get("countryCode"),
            "usage_type": d.get("usageType"),
            "isp": d.get("isp"),
            "domain": d.get("domain"),
            "is_tor": d.get("isTor"),
            "last_reported_at": d.get("lastReportedAt"),
        }
        summary = f"{task.subject}: AbuseIPDB confidence {score}/100, {d.get('totalReports', 0)} reports"
        if d.get("isp"):
            summary += f", {d['isp']}"
        if d.get("countryCode"):
            summary += f" ({d['countryCode']})"
        return Finding(self.name, task.subject, summary, verdict, data, fingerprint({"score": score}), now)


class GeoReader(Protocol):
    def get(self, ip: str) -> Any: ...


class GeoIp:
    """Country and ASN from a MaxMind database file (GeoLite2/GeoIP2 City, Country or ASN)."""

    name = "geoip"

    def __init__(self, reader: GeoReader, limits: Limits | None = None, clock: Clock = utcnow) -> None:
        self.reader = reader
        self.limits = limits or Limits(timeout_s=1.0, concurrency=2, cache_ttl_s=3600.0)
        self.clock = clock

    def plan(self, alert: Alert) -> list[Task]:
        if alert["status"] in CLOSED_STATUSES:
            return []
        return [Task(self.name, ip) for ip in _public_ips(alert)]

    def run(self, task: Task, deadline: float) -> Finding:
        rec = self.reader.get(task.subject) or {}
        country = ((rec.get("country") or {}).get("iso_code")) if isinstance(rec, dict) else None
        asn = rec.get("autonomous_system_number") if isinstance(rec, dict) else None
        org = rec.get("autonomous_system_organization") if isinstance(rec, dict) else None
        data = {"ip": task.subject, "country": country, "asn": asn, "as_org": org}
        parts = [p for p in (country, f"AS{asn}" if asn else None, org) if p]
        summary = f"{task.subject}: " + (", ".join(str(p) for p in parts) if parts else "not in the GeoIP database")
        return Finding(self.name, task.subject, summary, "info", data, fingerprint(data), self.clock())


class Exposure:
    """Probe what an "open to the internet" alert says is open."""

    name = "exposure"

    def __init__(
        self,
        prober: Prober,
        selection: Selection,
        resolver: Ec2Resolver | None = None,
        artifacts: ArtifactStore | None = None,
        limits: Limits | None = None,
        max_targets: int = 8,
        max_ports: int = 8,
        clock: Clock = utcnow,
    ) -> None:
        self.prober = prober
        self.selection = selection
        self.resolver = resolver
        self.artifacts = artifacts
        self.limits = limits or Limits(timeout_s=60.0, concurrency=64, rate_per_s=50.0, burst=50, cache_ttl_s=60.0)
        self.max_targets = max_targets
        self.max_ports = max_ports
        self.clock = clock

    def targets(self, alert: Alert) -> tuple[list[Target], list[Finding]]:
        """The hosts and ports to probe (bounded), and findings for what could not be resolved."""
        ports = exposure_ports(alert, self.selection, self.max_ports)
        hosts: dict[str, tuple[tuple[str, str], ...]] = {}
        notes: list[Finding] = []
        for r in alert["resources"]:
            ref = group_ref(r["type"], r["id"], r["region"] or alert["region"], alert["account"])
            if ref is None:
                continue
            if self.resolver is None:
                notes.append(self._note(ref.group_id, "security group not resolved: no EC2 access configured"))
                continue
            try:
                res = self.resolver.resolve(ref)
            except ResolveError as exc:
                notes.append(self._note(ref.group_id, str(exc), "error"))
                continue
            for h in res.hosts:
                hosts.setdefault(h.address, h.context)
            if not res.hosts:
                notes.append(
                    self._note(
                        ref.group_id,
                        f"{ref.group_id} is used by {res.interfaces} network interface(s), none with a "
                        "public address: nothing reachable from the internet to probe",
                    )
                )
        for a in resource_addresses(alert):
            hosts.setdefault(a, ())
        if len(hosts) > self.max_targets:
            notes.append(self._note(alert["identity"], f"{len(hosts)} targets, probing the first {self.max_targets}"))
        chosen = list(hosts.items())[: self.max_targets]
        return [Target(h, p, context=ctx) for h, ctx in chosen for p in ports], notes

    def _note(self, subject: str, text: str, verdict: str = "info") -> Finding:
        return Finding(self.name, subject, text, verdict, {"note": text}, fingerprint(text), self.clock())

    def plan(self, alert: Alert) -> list[Task | Finding]:
        if alert["status"] in CLOSED_STATUSES or not is_exposure(alert, self.selection):
            return []
        targets, notes = self.targets(alert)
        if not targets and not notes:
            notes.append(self._note(alert["identity"], "exposure alert without an address or security group to probe"))
        return [*notes, *(self.task(t, alert["identity"]) for t in targets)]

    def task(self, target: Target, identity: str) -> Task:
        return Task(self.name, target.label, (target, identity))

    def run(self, task: Task, deadline: float) -> Finding:
        target: Target = task.payload[0]  # type: ignore[index]  # payload is (Target, identity) by construction
        identity: str = task.payload[1]  # type: ignore[index]
        res = self.prober.probe(target)
        artifacts: dict[str, str] = {}
        if res.screenshot is not None and self.artifacts is not None:
            try:
                artifacts["screenshot"] = self.artifacts.put_png(res.screenshot, identity)
            except (ArtifactError, OSError) as exc:
                res.data["screenshot"] = {**(res.data.get("screenshot") or {}), "store_error": str(exc)[:300]}
        return exposure_finding(res.data, self.clock(), artifacts)


def exposure_tasks(enricher: Exposure, targets: Sequence[dict[str, Any]], identity: str) -> list[Task]:
    """Tasks for stored re-check targets (``{"host", "port", "context"}`` records)."""
    return [
        enricher.task(Target(t["host"], int(t["port"]), context=tuple(sorted(t["context"].items()))), identity)
        for t in targets
    ]


def stored_targets(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    out = []
    for t in tasks:
        if t.enricher == Exposure.name:
            target = t.payload[0]  # type: ignore[index]  # (Target, identity)
            out.append({"host": target.host, "port": target.port, "context": dict(target.context)})
    return out


__all__ = ["AbuseIpDbEnricher", "Exposure", "GeoIp", "GroupRef", "IpReputation", "exposure_tasks", "stored_targets"]
