"""The scan domain: resource documents + checks -> findings; findings + what was failing before
-> the alerts to publish (new, changed, resolved) and the state to keep. Pure: no boto3, no
Kafka, no files.

Words used throughout:
- a *resource document* is one collected resource as a plain dict (see ``ResourceDoc``);
- a *unit* is what one collection covers and can vouch for: one AWS account in one region
  (or its global services), or one inventory export. Resolution happens per unit;
- a *finding* is one check failing on one resource; its identity is check + resource, so the
  same dangerous setting keeps one alert (and one ticket) across scans.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from alertline.clock import iso
from alertline.identity import identity_of
from alertline.model import Alert, RawRef, Resource

SOURCE = "alertline.scan"
PRODUCT = "scan"
LABEL_SCORE = {"informational": 0, "low": 20, "medium": 50, "high": 75, "critical": 95}
SEVERITY_BANDS = {"informational": (0, 0), "low": (1, 39), "medium": (40, 69), "high": (70, 89), "critical": (90, 100)}
MAX_MATCHED = 20
MAX_ATTRIBUTE = 2000
STATE_VERSION = 1


class ResourceDoc(TypedDict, total=False):
    """One collected resource. ``kind`` is what checks bind to (usually the type; an
    inventory's IAM-policy view of a bucket has its own kind); ``key`` is the stable id used
    for identity (defaults to ``id``); ``config`` is the source's own data, verbatim; ``facts``
    are normalized views the collector derived (network rules, ages, public grants)."""

    provider: str
    kind: str
    type: str
    id: str
    key: str
    name: str | None
    account: str
    account_name: str | None
    organization: str | None
    region: str | None
    tags: dict[str, str]
    addresses: list[str]
    console_url: str | None
    config: dict[str, Any]
    facts: dict[str, Any]
    raw: list[int]  # [archived object index, position within it]


def resource_key(doc: Mapping[str, Any]) -> str:
    return str(doc.get("key") or doc["id"])


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    score: int
    provider: str
    kinds: tuple[str, ...]
    description: str
    remediation: str
    category: str | None
    match: Callable[[Mapping[str, Any]], bool]
    each: Callable[[Any], Any] | None = None
    each_path: str | None = None
    ports: tuple[int, ...] = ()
    evidence: tuple[tuple[str, Callable[[Any], Any]], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    references: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Finding:
    check: Check
    resource: Mapping[str, Any]
    ports: tuple[int, ...]
    matched: tuple[Mapping[str, Any], ...]
    evidence: Mapping[str, str]

    @property
    def source_id(self) -> str:
        return f"{self.check.id}:{resource_key(self.resource)}"

    @property
    def identity(self) -> str:
        return identity_of(SOURCE, self.source_id)


@dataclass(frozen=True)
class Unit:
    """What one collection vouches for. ``key`` is stable across scans."""

    key: str
    provider: str
    account: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class CollectError:
    where: str
    error_class: str
    message: str


@dataclass(frozen=True)
class BadRecord:
    """One input record (an inventory line or row) that could not be read."""

    source: str
    position: int
    value: bytes
    error_class: str
    message: str
    raw_object: int = 0


@dataclass
class Collected:
    """One unit's collection. ``covered`` names the kinds whose collection ran, so a check on
    a kind this unit never looked at cannot resolve anything here. ``raw_objects`` are the
    deliveries to archive (an export's files); when empty, the unit document is archived."""

    unit: Unit
    resources: list[ResourceDoc] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)
    errors: list[CollectError] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    raw_objects: list[bytes] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    unchecked_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Only a complete collection may say "absent, so resolved"."""
        return not self.errors and not self.bad and not self.incomplete


# ---------------------------------------------------------------------------- evaluation
def evaluate(resources: Iterable[Mapping[str, Any]], checks: Sequence[Check]) -> list[Finding]:
    """Every (check, resource) pair where the check fails."""
    by_kind: dict[tuple[str, str], list[Check]] = {}
    for c in checks:
        for k in c.kinds:
            by_kind.setdefault((c.provider, k), []).append(c)
    out: list[Finding] = []
    for doc in resources:
        for check in by_kind.get((str(doc.get("provider")), str(doc.get("kind"))), ()):
            f = check_resource(check, doc)
            if f is not None:
                out.append(f)
    return out


def check_resource(check: Check, doc: Mapping[str, Any]) -> Finding | None:
    if check.each is None:
        if not check.match(doc):
            return None
        return Finding(check, doc, (), (), _evidence(check, doc))
    elements = check.each(doc)
    if isinstance(elements, dict):
        elements = [elements]
    if not isinstance(elements, list):
        return None
    matched: list[Mapping[str, Any]] = []
    ports: set[int] = set()
    for el in elements:
        if not isinstance(el, dict) or not check.match(el):
            continue
        if check.ports:
            exposed = exposed_ports(el, check.ports)
            if not exposed:
                continue
            ports.update(exposed)
        matched.append(el)
    if not matched:
        return None
    return Finding(check, doc, tuple(sorted(ports)), tuple(matched), _evidence(check, doc))


def exposed_ports(element: Mapping[str, Any], wanted: Iterable[int]) -> list[int]:
    """The wanted ports inside the element's ``from_port``..``to_port`` range."""
    lo, hi = element.get("from_port"), element.get("to_port")
    if not isinstance(lo, int) or not isinstance(hi, int) or lo < 0 or hi < lo:
        return []
    return [p for p in wanted if lo <= p <= hi]


def _evidence(check: Check, doc: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, get in check.evidence:
        v = get(doc)
        if v is not None:
            out[name] = _text(v)
    return out


def _text(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)
    return s if len(s) <= MAX_ATTRIBUTE else s[: MAX_ATTRIBUTE - 1] + "…"


# ---------------------------------------------------------------------------- alerts
def severity_of(label: str, score: int | None) -> tuple[str, int]:
    if label not in SEVERITY_BANDS:
        raise ValueError(f"severity is one of {', '.join(SEVERITY_BANDS)}, got {label!r}")
    lo, hi = SEVERITY_BANDS[label]
    s = LABEL_SCORE[label] if score is None else score
    if not lo <= s <= hi:
        raise ValueError(f"score {s} is outside the {label} band {lo}-{hi}")
    return label, s


def revision(identity: str, status: str, *parts: Any) -> str:
    """Fingerprint of the finding's content: identical scans give identical revisions."""
    h = hashlib.sha256(identity.encode())
    for p in (status, *parts):
        h.update(b"\x00")
        h.update(json.dumps(p, sort_keys=True, separators=(",", ":"), default=str).encode())
    return h.hexdigest()[:32]


def _resource(doc: Mapping[str, Any]) -> Resource:
    return {
        "type": str(doc.get("type") or doc.get("kind") or "Unknown"),
        "id": str(doc["id"]),
        "name": doc.get("name"),
        "region": doc.get("region"),
        "tags": {str(k): str(v) for k, v in (doc.get("tags") or {}).items()},
        "addresses": [str(a) for a in doc.get("addresses") or []],
    }


def _describe(check: Check, finding: Finding | None) -> str:
    parts = [check.description.strip()] if check.description.strip() else []
    if finding is not None and finding.matched:
        lines = [f"- {summarize_element(m)}" for m in finding.matched[:MAX_MATCHED]]
        parts.append("What matched:\n" + "\n".join(lines))
    parts.append("Remediation: " + check.remediation.strip())
    if check.references:
        parts.append("References: " + " ".join(check.references))
    return "\n\n".join(parts)


def summarize_element(el: Mapping[str, Any]) -> str:
    """``allow tcp port 22 from 0.0.0.0/0 (rule ssh)`` for network rules, ``<role> granted to
    <members>`` for IAM bindings, compact JSON otherwise."""
    if "from_port" in el and "sources" in el:
        lo, hi = el.get("from_port"), el.get("to_port")
        ports = "all ports" if (lo, hi) == (0, 65535) else (f"port {lo}" if lo == hi else f"ports {lo}-{hi}")
        srcs = el.get("sources") or []
        name = f" (rule {el['name']})" if el.get("name") else ""
        return f"{el.get('action', 'allow')} {el.get('protocol', '?')} {ports} from {', '.join(map(str, srcs))}{name}"
    if "role" in el and isinstance(el.get("members"), list):
        return f"{el['role']} granted to {', '.join(map(str, el['members']))}"
    return _text(dict(el))


def active_alert(finding: Finding, *, now: datetime, first_seen: datetime | None, raw: RawRef, unit: Unit) -> Alert:
    check, doc = finding.check, finding.resource
    identity = finding.identity
    label, score = check.severity, check.score
    matched = [summarize_element(m) for m in finding.matched[:MAX_MATCHED]]
    attributes = {
        "scan.check_id": check.id,
        "scan.check_title": check.title,
        "scan.unit": unit.key,
        "scan.resource_kind": str(doc.get("kind")),
        "scan.resource_key": resource_key(doc),
    }
    if check.category:
        attributes["scan.category"] = check.category
    if matched:
        attributes["scan.matched"] = _text("; ".join(matched))
    if finding.ports:
        attributes["scan.ports"] = ",".join(map(str, finding.ports))
    for k, v in finding.evidence.items():
        attributes[f"evidence.{k}"] = v
    rev = revision(identity, "active", check.id, label, score, finding.ports, matched, sorted(finding.evidence.items()))
    name = doc.get("name") or doc["id"]
    return {
        "identity": identity,
        "source_id": finding.source_id,
        "revision": rev,
        "provider": str(doc["provider"]),
        "product": PRODUCT,
        "account": str(doc.get("account") or unit.account or ""),
        "account_name": doc.get("account_name"),
        "organization": doc.get("organization"),
        "region": doc.get("region"),
        "resources": [_resource(doc)],
        "title": f"{check.title}: {name}",
        "description": _describe(check, finding),
        "finding_type": check.category,
        "severity": {"label": label, "score": score, "source_label": label, "source_score": float(score)},
        "status": "active",
        "status_raw": {"compliance": "FAILED"},
        "first_seen": first_seen or now,
        "updated_at": now,
        "updated_at_raw": iso(now),
        "received_at": now,
        "clock_skew": False,
        "indicators": {"ips": [], "domains": [], "users": [], "ports": list(finding.ports)},
        "control_id": check.id,
        "console_url": doc.get("console_url"),
        "raw": raw,
        "attributes": attributes,
        "labels": dict(check.labels),
    }


def resolved_alert(previous: Alert, *, now: datetime, raw: RawRef, reason: str) -> Alert:
    """The last active alert, marked resolved by a complete scan that no longer finds it."""
    a: Alert = {
        **previous,
        "status": "resolved",
        "status_raw": {"compliance": "PASSED" if reason == "passing" else "NOT_FOUND"},
        "updated_at": now,
        "updated_at_raw": iso(now),
        "received_at": now,
        "raw": raw,
        "attributes": dict(previous["attributes"]) | {"scan.resolution": reason},
        "revision": revision(previous["identity"], "resolved", previous["revision"], reason),
    }
    return a


# ---------------------------------------------------------------------------- reconcile
@dataclass(frozen=True)
class Prior:
    """A finding that was failing at the last scan of its unit (kept in the state topic)."""

    identity: str
    unit: str
    check_id: str
    kind: str
    resource_key: str
    revision: str
    first_seen: datetime
    alert: Alert


@dataclass
class Plan:
    """What one unit's scan publishes, in one transaction, and how the state changes."""

    unit: Unit
    publish: list[Alert] = field(default_factory=list)
    keep: dict[str, Prior] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    resolved: int = 0
    held: int = 0  # failing before, absent now, but not resolved: the scan was incomplete


def reconcile(
    collected: Collected,
    findings: Sequence[Finding],
    prior: Mapping[str, Prior],
    checks: Sequence[Check],
    *,
    now: datetime,
    raw_for: Callable[[Mapping[str, Any]], RawRef],
    unit_raw: RawRef,
    always_publish: bool = False,
) -> Plan:
    """Decide what to publish for one unit.

    ``prior`` holds this unit's failing findings from the state. A finding is published when it
    is new or its revision changed (or always, with ``always_publish``). A prior finding that
    is absent now is resolved only if the collection was complete AND its check is still
    loaded AND its resource kind was covered by this collection; otherwise it is held.
    """
    unit = collected.unit
    plan = Plan(unit)
    seen: set[str] = set()
    for f in findings:
        ident = f.identity
        if ident in seen:
            continue
        seen.add(ident)
        before = prior.get(ident)
        alert = active_alert(
            f, now=now, first_seen=before.first_seen if before else None, raw=raw_for(f.resource), unit=unit
        )
        if before is None:
            plan.new += 1
        elif before.revision != alert["revision"]:
            plan.changed += 1
        else:
            plan.unchanged += 1
            if not always_publish:
                continue
        plan.publish.append(alert)
        plan.keep[ident] = Prior(
            ident, unit.key, f.check.id, str(f.resource.get("kind")), resource_key(f.resource),
            alert["revision"], alert["first_seen"] or now, alert,
        )  # fmt: skip
    loaded = {c.id for c in checks}
    present = {resource_key(d) for d in collected.resources}
    for ident, p in sorted(prior.items()):
        if ident in seen:
            continue
        if collected.complete and p.check_id in loaded and p.kind in collected.covered:
            reason = "passing" if p.resource_key in present else "absent"
            plan.publish.append(resolved_alert(p.alert, now=now, raw=unit_raw, reason=reason))
            plan.drop.append(ident)
            plan.resolved += 1
        else:
            plan.held += 1
    return plan


# ---------------------------------------------------------------------------- archive
def unit_document(collected: Collected) -> bytes:
    """The raw scan result of a unit that has no source files of its own (an API collection):
    deterministic JSON, so an unchanged scan archives to the same content-addressed key."""
    u = collected.unit
    body = {
        "source": "scan",
        "unit": u.key,
        "provider": u.provider,
        "account": u.account,
        "region": u.region,
        "complete": collected.complete,
        "covered": sorted(collected.covered),
        "errors": [e.__dict__ for e in collected.errors],
        "resources": [{k: v for k, v in d.items() if k != "raw"} for d in collected.resources],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def archive_key(prefix: str, source: str, day: datetime, sha256_hex: str) -> str:
    """``<prefix><source>/YYYY/MM/DD/<sha256>.json``: the layout ingest uses for deliveries."""
    return f"{prefix}{source}/{day.astimezone(UTC):%Y/%m/%d}/{sha256_hex}.json"


# ---------------------------------------------------------------------------- JSON forms
_TIMES = ("first_seen", "updated_at", "received_at")


def alert_to_json(a: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k in _TIMES:
        v = out.get(k)
        if isinstance(v, datetime):
            out[k] = iso(v)
    return out


def alert_from_json(d: Mapping[str, Any]) -> Alert:
    out = dict(d)
    for k in _TIMES:
        v = out.get(k)
        if isinstance(v, str):
            out[k] = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return out  # type: ignore[return-value]  # the shape was written by prior_to_json


def prior_to_json(p: Prior) -> bytes:
    return json.dumps(
        {
            "v": STATE_VERSION,
            "unit": p.unit,
            "check_id": p.check_id,
            "kind": p.kind,
            "resource_key": p.resource_key,
            "revision": p.revision,
            "first_seen": iso(p.first_seen),
            "alert": alert_to_json(p.alert),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def prior_from_json(identity: str, data: bytes) -> Prior:
    d = json.loads(data)
    if not isinstance(d, dict) or d.get("v") != STATE_VERSION:
        raise ValueError(f"unknown scan state version {d.get('v') if isinstance(d, dict) else d!r}")
    return Prior(
        identity=identity,
        unit=d["unit"],
        check_id=d["check_id"],
        kind=d["kind"],
        resource_key=d["resource_key"],
        revision=d["revision"],
        first_seen=datetime.fromisoformat(d["first_seen"].replace("Z", "+00:00")),
        alert=alert_from_json(d["alert"]),
    )
