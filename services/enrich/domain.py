"""Enrich domain: which alerts get which investigation, what a result means, what changed.

Pure and typed: takes alerts and results, returns findings, enrichments and state. No Kafka,
no sockets, no clocks of its own.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alertline.clock import iso
from alertline.model import Alert, Decision, EnrichedAlert, Enrichment

VERDICT_RANK = {"info": 0, "closed": 0, "error": 0, "exposed": 2, "suspicious": 1, "malicious": 3}
CLOSED_STATUSES = ("resolved", "suppressed")


@dataclass(frozen=True)
class Finding:
    """One enricher's result for one subject, at one moment."""

    enricher: str
    subject: str
    summary: str
    verdict: str
    data: Mapping[str, Any]
    fingerprint: str
    observed_at: datetime
    artifacts: Mapping[str, str] = field(default_factory=dict)

    def to_enrichment(self, changed_from: str | None = None) -> Enrichment:
        return {
            "enricher": self.enricher,
            "subject": self.subject,
            "summary": self.summary,
            "verdict": self.verdict,
            "data_json": json.dumps(self.data, sort_keys=True, default=str),
            "fingerprint": self.fingerprint,
            "changed_from": changed_from,
            "artifacts": dict(self.artifacts),
            "observed_at": self.observed_at,
        }


def fingerprint(view: Any) -> str:
    """Stable hash of the parts of a result that count as a change."""
    return hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()[:32]


def error_finding(enricher: str, subject: str, message: str, now: datetime) -> Finding:
    return Finding(
        enricher, subject, f"{enricher} failed for {subject}: {message}"[:500], "error", {"error": message}, "", now
    )


def short_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%MZ")


# ---------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class Selection:
    """Which alerts say "a port is open to the internet", and which are about an intruder."""

    exposure_control_ids: tuple[str, ...] = ("EC2.13", "EC2.14", "EC2.18", "EC2.19", "EC2.53", "EC2.54")
    exposure_finding_types: tuple[str, ...] = (
        "Recon:EC2/PortProbeUnprotectedPort",
        "Recon:EC2/PortProbeEMRUnprotectedPort",
        "OPEN_FIREWALL",
        "OPEN_*_PORT",
        "PUBLIC_IP_ADDRESS",
        "network-exposure",  # our own scan checks (services/scan/checks, category)
    )
    intrusion_products: tuple[str, ...] = ("guardduty", "defender")
    intrusion_finding_types: tuple[str, ...] = (
        "UnauthorizedAccess:*",
        "Recon:*",
        "Backdoor:*",
        "CryptoCurrency:*",
        "Trojan:*",
        "Impact:*",
        "CredentialAccess:*",
        "Discovery:*",
        "Exfiltration:*",
        "PenTest:*",
        "Persistence:*",
        "PrivilegeEscalation:*",
        "Stealth:*",
        "DefenseEvasion:*",
        "Execution:*",
        "InitialAccess:*",
    )
    # Ports assumed when the alert names a control but no port (EC2.13: 22, EC2.14: 3389, ...).
    implied_ports: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: {
            "EC2.13": (22,),
            "EC2.14": (3389,),
            "OPEN_SSH_PORT": (22,),
            "OPEN_RDP_PORT": (3389,),
            "OPEN_TELNET_PORT": (23,),
            "OPEN_MYSQL_PORT": (3306,),
            "OPEN_POSTGRESQL_PORT": (5432,),
            "OPEN_REDIS_PORT": (6379,),
            "OPEN_MONGODB_PORT": (27017,),
            "OPEN_HTTP_PORT": (80,),
            "OPEN_ELASTICSEARCH_PORT": (9200,),
            "OPEN_FTP_PORT": (21,),
            "OPEN_SMTP_PORT": (25,),
        }
    )
    default_ports: tuple[int, ...] = (22, 80, 443, 3389)


def _matches(value: str | None, patterns: Iterable[str]) -> bool:
    return bool(value) and any(fnmatch.fnmatchcase(value or "", p) for p in patterns)


def is_exposure(alert: Alert, sel: Selection) -> bool:
    if _matches(alert["control_id"], sel.exposure_control_ids):
        return True
    return _matches(alert["finding_type"], sel.exposure_finding_types)


def is_intrusion(alert: Alert, sel: Selection) -> bool:
    ind = alert["indicators"]
    if not (ind["ips"] or ind["domains"] or ind["users"]):
        return False
    if alert["product"] in sel.intrusion_products:
        return True
    return _matches(alert["finding_type"], sel.intrusion_finding_types)


def exposure_ports(alert: Alert, sel: Selection, limit: int) -> list[int]:
    ports = [p for p in alert["indicators"]["ports"] if 0 < p < 65536]
    if not ports:
        for key in (alert["control_id"], alert["finding_type"]):
            if key and key in sel.implied_ports:
                ports = list(sel.implied_ports[key])
                break
    if not ports:
        ports = list(sel.default_ports)
    return list(dict.fromkeys(ports))[:limit]


def resource_addresses(alert: Alert) -> list[str]:
    out: list[str] = []
    for r in alert["resources"]:
        out.extend(a for a in r["addresses"] if a)
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------- exposure
def exposure_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """What counts as a change in a probe result. Timings, dates, screenshots and error texts
    do not; closed and filtered both count as "not reachable" (a flapping timeout is not news)."""
    tcp = (data.get("tcp") or {}).get("state")
    view: dict[str, Any] = {"refused": data.get("refused"), "reachable": tcp == "open"}
    if tcp != "open":
        return view
    view["banner"] = data.get("banner")
    tls = data.get("tls") or {}
    if tls and "error" not in tls:
        view["tls"] = {k: tls.get(k) for k in ("subject", "issuer", "sans", "not_after", "sha256")}
    h = data.get("http") or {}
    if h:
        view["http"] = {
            "status": h.get("status"),
            "title": h.get("title"),
            "server": h.get("server"),
            "final_url": h.get("final_url") if h.get("status") is not None else None,
            "redirects": [r.get("location") for r in h.get("redirects", [])],
            "redirect_refused": bool(h.get("redirect_refused")),
            "answered": h.get("status") is not None,
        }
    return view


def exposure_summary(data: Mapping[str, Any]) -> tuple[str, str]:
    """(one line for humans, verdict) for one probe result."""
    target = data.get("target", "?")
    if data.get("refused"):
        return f"{target} not probed: {data['refused']}", "info"
    tcp = data.get("tcp") or {}
    state = tcp.get("state")
    if state is None:
        return f"{target} not probed: {data.get('error', 'no result')}", "error"
    if state == "closed":
        return f"{target} closed (connection refused)", "closed"
    if state == "filtered":
        return f"{target} filtered (no answer before the timeout)", "closed"
    if state != "open":
        return f"{target} unreachable ({tcp.get('detail', state)})", "closed"
    parts = [f"{target} open"]
    ssh = data.get("ssh")
    if ssh:
        parts.append(f"SSH {ssh['banner']}")
    elif data.get("banner"):
        parts.append(f"banner {data['banner']!r}")
    h = data.get("http") or {}
    if h.get("status") is not None:
        scheme = str(h.get("final_url", "")).split(":", 1)[0].upper() or "HTTP"
        desc = f"{scheme} {h['status']}"
        if h.get("title"):
            desc += f" {h['title']!r}"
        if h.get("server"):
            desc += f" ({h['server']})"
        if h.get("redirects"):
            desc += f" after {len(h['redirects'])} redirect(s)"
        parts.append(desc)
        if h.get("redirect_refused"):
            parts.append(f"redirect not followed: {h['redirect_refused']}")
    tls = data.get("tls") or {}
    if tls and "error" not in tls:
        parts.append(f"TLS cert {tls['subject']} by {tls['issuer']}, expires {tls['not_after']}")
    return " — ".join(parts), "exposed"


def exposure_finding(data: Mapping[str, Any], now: datetime, artifacts: Mapping[str, str] | None = None) -> Finding:
    summary, verdict = exposure_summary(data)
    return Finding(
        "exposure",
        str(data.get("target")),
        summary,
        verdict,
        data,
        fingerprint(exposure_view(data)),
        now,
        dict(artifacts or {}),
    )


def describe_change(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """One line saying what changed between two probe results of the same target."""
    target = new.get("target", "?")
    if old is None:
        return f"new target {exposure_summary(new)[0]}"
    ov, nv = exposure_view(old), exposure_view(new)
    port = new.get("port")
    if ov["reachable"] and not nv["reachable"]:
        state = (new.get("tcp") or {}).get("state") or "not probed"
        return f"port {port} now {state} on {target} (was open)"
    if not ov["reachable"] and nv["reachable"]:
        return f"port {port} now open on {target}: {exposure_summary(new)[0]}"
    changes: list[str] = []
    oh, nh = ov.get("http") or {}, nv.get("http") or {}
    for key, label in (
        ("status", "HTTP status"),
        ("title", "HTTP title"),
        ("server", "server header"),
        ("final_url", "final URL"),
    ):
        if oh.get(key) != nh.get(key):
            changes.append(f"{label} changed: {oh.get(key)!r} → {nh.get(key)!r}")
    if oh.get("redirects") != nh.get("redirects"):
        changes.append("redirects changed")
    if ov.get("banner") != nv.get("banner"):
        changes.append(f"banner changed: {ov.get('banner')!r} → {nv.get('banner')!r}")
    if ov.get("tls") != nv.get("tls"):
        changes.append(f"TLS certificate changed (now {(nv.get('tls') or {}).get('subject')})")
    if ov.get("refused") != nv.get("refused"):
        changes.append(f"guard verdict changed: {nv.get('refused') or 'allowed'}")
    return f"{target}: " + ("; ".join(changes) or "result changed")


# ---------------------------------------------------------------------------- reputation
def reputation_summary(
    ip: str, listed: Sequence[Mapping[str, Any]], unavailable: Sequence[str], now: datetime
) -> tuple[str, str]:
    when = short_time(now)
    if listed:
        words = []
        for hit in listed:
            what = "a Tor exit" if hit["kind"] == "tor" else f"on block list {hit['feed']}"
            words.append(f"{what} (list of {short_time(hit['fetched_at'])})")
        verdict = max((str(h["verdict"]) for h in listed), key=lambda v: VERDICT_RANK.get(v, 0))
        return f"{ip} was {' and '.join(words)} at {when}", verdict
    line = f"{ip} was on no configured list at {when}"
    if unavailable:
        line += f" (not checked, list unavailable: {', '.join(unavailable)})"
    return line, "info"


# ---------------------------------------------------------------------------- actor
_ACTOR_ATTR = re.compile(
    r"(remote|actor|caller|useragent|user_agent|organization|asn|country|city|isp|principal)", re.I
)


def actor_context(alert: Alert, findings: Sequence[Finding], now: datetime) -> Finding:
    """What the alert's IPs, domains and principals are known for: reputation results plus
    what the alert itself says about the actor."""
    ind = alert["indicators"]
    by_ip: dict[str, list[Finding]] = {}
    for f in findings:
        if f.enricher != "exposure" and f.subject in ind["ips"]:
            by_ip.setdefault(f.subject, []).append(f)
    ips = []
    verdict = "info"
    for ip in ind["ips"]:
        known = [f for f in by_ip.get(ip, []) if f.verdict != "error"]
        for f in known:
            if VERDICT_RANK.get(f.verdict, 0) > VERDICT_RANK.get(verdict, 0):
                verdict = f.verdict
        ips.append({"ip": ip, "known_for": [f"{f.enricher}: {f.summary}" for f in known]})
    said = {k: v for k, v in sorted(alert["attributes"].items()) if _ACTOR_ATTR.search(k)}
    data = {
        "finding_type": alert["finding_type"],
        "product": alert["product"],
        "ips": ips,
        "domains": list(ind["domains"]),
        "principals": list(ind["users"]),
        "alert_says": said,
    }
    bits = []
    for entry in ips:
        notes = [k.split(": ", 1)[1] for k in entry["known_for"] if " no configured list" not in k]
        bits.append(f"{entry['ip']}" + (f" ({'; '.join(notes)})" if notes else " (nothing known)"))
    if ind["users"]:
        bits.append("principal " + ", ".join(ind["users"]))
    if ind["domains"]:
        bits.append("domain " + ", ".join(ind["domains"]))
    summary = f"Actor in {alert['finding_type'] or alert['title']}: " + "; ".join(bits)
    subject = ",".join(ind["ips"] + ind["users"] + ind["domains"])[:200] or alert["identity"]
    view = {
        "ips": [{"ip": e["ip"], "known": sorted(e["known_for"])} for e in ips],
        "users": ind["users"],
        "domains": ind["domains"],
    }
    return Finding("actor", subject, summary[:1000], verdict, data, fingerprint(view), now)


# ---------------------------------------------------------------------------- output + re-check state
def enriched(
    kind: str, alert: Alert, decision: Decision, enrichments: list[Enrichment], now: datetime
) -> EnrichedAlert:
    return {"kind": kind, "alert": alert, "decision": decision, "enrichments": enrichments, "enriched_at": now}


def combined_fingerprint(results: Iterable[Mapping[str, Any]]) -> str:
    return fingerprint(sorted((r["subject"], r["fingerprint"]) for r in results))


def new_state(
    alert: Alert,
    decision: Decision,
    targets: list[dict[str, Any]],
    findings: Sequence[Finding],
    now: datetime,
    interval: timedelta,
) -> dict[str, Any]:
    """Re-check state after a fresh alert: what to probe again, the result to compare with, when."""
    results = [f.to_enrichment() for f in findings if f.enricher == "exposure" and f.verdict != "error"]
    return {
        "identity": alert["identity"],
        "alert": alert,
        "decision": decision,
        "targets": targets,
        "results": results,
        "fingerprint": combined_fingerprint(results),
        "last_checked_at": now,
        "next_check_at": now + interval,
        "checks": 0,
        "last_alert_at": now,
    }


@dataclass(frozen=True)
class RecheckOutcome:
    state: dict[str, Any]
    changes: list[Enrichment]


def recheck(
    state: Mapping[str, Any], findings: Sequence[Finding], now: datetime, interval: timedelta
) -> RecheckOutcome:
    """Compare a re-check with the stored result: changed subjects become enrichments with
    ``changed_from``; errors keep the stored result (an outage is not a change)."""
    old = {r["subject"]: r for r in state["results"]}
    merged = dict(old)
    changes: list[Enrichment] = []
    for f in findings:
        if f.enricher != "exposure" or f.verdict == "error":
            continue
        prev = old.get(f.subject)
        if prev is not None and prev["fingerprint"] == f.fingerprint:
            merged[f.subject] = prev
            continue
        prev_data = json.loads(prev["data_json"]) if prev is not None else None
        e = f.to_enrichment(changed_from=prev["fingerprint"] if prev is not None else None)
        e["summary"] = describe_change(prev_data, f.data)[:1000]
        changes.append(e)
        merged[f.subject] = f.to_enrichment()
    results = sorted(merged.values(), key=lambda r: r["subject"])
    out = dict(state)
    out.update(
        results=results,
        fingerprint=combined_fingerprint(results),
        last_checked_at=now,
        next_check_at=now + interval,
        checks=int(state.get("checks", 0)) + 1,
    )
    return RecheckOutcome(out, changes)


def due(state: Mapping[str, Any], now: datetime) -> bool:
    return bool(state["next_check_at"] <= now)


def expired(state: Mapping[str, Any], now: datetime, max_age: timedelta) -> bool:
    """Re-checks stop when no alert revision was seen for ``max_age`` (we only know what we saw)."""
    return bool(state["last_alert_at"] + max_age <= now)


def iso_or_none(dt: datetime | None) -> str | None:
    return iso(dt) if dt else None
