"""Google Security Command Center ``NotificationMessage`` payloads, v1 and v2 field names."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from alertline.model import Alert, RawRef

from .common import (
    Evidence,
    FindingProblem,
    as_dict,
    as_list,
    attributes,
    build,
    clean_description,
    clean_title,
    get,
    opt_str,
    parse_time,
    quote,
    req_str,
    resource,
    severity,
)

SOURCE = "gcp.scc"

_SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_PROJECT = re.compile(r"/projects/([^/]+)")
_ZONE = re.compile(r"/zones/([a-z]+-[a-z]+\d+)-[a-z]\b")
_ZONE_NAME = re.compile(r"([a-z]+-[a-z]+\d+)-[a-z]")
_REGION = re.compile(r"/(?:regions|locations)/([a-z]+-[a-z]+\d+|global)\b")
_LOCATION_GLOBAL = "/locations/global/"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~/-]+")


def canonical_name(name: str) -> str:
    """v2 names carry ``/locations/global``; v1 names of the same finding do not. Both must
    give the same identity, so the global location is removed (other locations, from data
    residency, exist only in v2 and are kept)."""
    return name.replace(_LOCATION_GLOBAL, "/", 1) if _LOCATION_GLOBAL in name else name


def _region(res: dict[str, Any], resource_name: str | None) -> str | None:
    # Zonal resources report their region, so v1 (parsed from the name) and v2 (location) agree.
    loc = opt_str(res.get("location"), 64)
    if loc:
        m = _ZONE_NAME.fullmatch(loc)
        return m.group(1) if m else loc
    if resource_name:
        m = _ZONE.search(resource_name)
        if m:
            return m.group(1)
        m = _REGION.search(resource_name)
        if m:
            return m.group(1)
        if "/global/" in resource_name:
            return "global"
    return None


def _project(res: dict[str, Any], f: dict[str, Any], resource_name: str | None) -> str | None:
    meta = as_dict(res.get("gcpMetadata"))  # v2
    for v in (res.get("projectDisplayName"), meta.get("projectDisplayName")):
        s = opt_str(v, 256)
        if s:
            return s
    s = opt_str(get(f, "sourceProperties", "ProjectId"), 256)
    if s:
        return s
    for v in (res.get("project"), meta.get("project"), resource_name):
        if isinstance(v, str):
            m = _PROJECT.search(v)
            if m:
                return opt_str(m.group(1), 256)
    return None


def _organization(name: str, res: dict[str, Any]) -> str | None:
    org = opt_str(res.get("organization"), 256) or opt_str(get(res, "gcpMetadata", "organization"), 256)
    if org:
        return org.rsplit("/", 1)[-1]
    if name.startswith("organizations/"):
        return name.split("/", 2)[1]
    return None


def _allowed_ports(props: dict[str, Any], ev: Evidence) -> None:
    """Security Health Analytics firewall findings: ``Allowed`` is a JSON string (or list) of
    ``{"ipProtocol": "tcp", "ports": ["22", "8000-8080"]}``."""
    allowed = props.get("Allowed")
    if isinstance(allowed, str) and len(allowed) < 65536:
        try:
            allowed = json.loads(allowed)
        except (ValueError, RecursionError):
            return
    for rule in as_list(allowed):
        ports = get(rule, "ports") or get(rule, "port")
        for p in as_list(ports):
            if isinstance(p, str) and "-" in p:
                lo, _, hi = p.partition("-")
                if lo.isascii() and lo.isdecimal() and hi.isascii() and hi.isdecimal() and 0 <= int(hi) - int(lo) < 32:
                    for x in range(int(lo), int(hi) + 1):
                        ev.port(x)
                continue
            ev.port(p)


def _status(f: dict[str, Any]) -> tuple[str, dict[str, str]]:
    state = opt_str(f.get("state"), 64)
    mute = opt_str(f.get("mute"), 64)
    raw: dict[str, str] = {}
    if state:
        raw["state"] = state
    if mute:
        raw["mute"] = mute
    static = opt_str(get(f, "muteInfo", "staticMute", "state"), 64)  # v2
    if static:
        raw["muteInfo.staticMute.state"] = static
    if state == "INACTIVE":
        return "resolved", raw
    if mute == "MUTED" or static == "MUTED":
        # Muted hides a finding that still holds: suppressed, never resolved.
        return "suppressed", raw
    return "active", raw


def normalize_message(msg: Any, *, raw: RawRef, received_at: datetime) -> Alert:
    if not isinstance(msg, dict):
        raise FindingProblem(f"NotificationMessage: expected an object, got a {type(msg).__name__}")
    f = msg.get("finding")
    if not isinstance(f, dict):
        raise FindingProblem("finding: expected an object")
    name = canonical_name(req_str(f.get("name"), "finding.name"))
    res = as_dict(msg.get("resource"))
    resource_name = opt_str(f.get("resourceName")) or opt_str(res.get("name"))
    region = _region(res, resource_name)
    project = _project(res, f, resource_name)
    org = _organization(name, res)
    account = project or (f"organizations/{org}" if org else None)
    if account is None:
        raise FindingProblem("no project or organization in finding.name, resource or finding.resourceName")
    ev = Evidence()
    access = as_dict(f.get("access"))
    ev.actor_ip(access.get("callerIp"), "finding.access.callerIp")
    ev.user(access.get("principalEmail"))
    for i, c in enumerate(as_list(f.get("connections"))):
        ev.actor_ip(get(c, "sourceIp"), f"finding.connections[{i}].sourceIp")
        ev.actor_ip(get(c, "destinationIp"), f"finding.connections[{i}].destinationIp")
    indicator = as_dict(f.get("indicator"))
    for i, ip in enumerate(as_list(indicator.get("ipAddresses"))):
        ev.actor_ip(ip, f"finding.indicator.ipAddresses[{i}]")
    for d in as_list(indicator.get("domains")):
        ev.domain(d)
    props = as_dict(f.get("sourceProperties"))
    _allowed_ports(props, ev)
    category = opt_str(f.get("category"), 256)
    finding_class = opt_str(f.get("findingClass"), 64)
    display = opt_str(res.get("displayName"), 256) or opt_str(res.get("resourceDisplayName"), 256)
    title = clean_title(f"{category} on {display}" if category and display else category or "")
    sev_raw = opt_str(f.get("severity"), 64)
    label = _SEVERITY.get(sev_raw or "", "medium")
    status, status_raw = _status(f)
    rtype = opt_str(res.get("type"), 256)
    resources = []
    r = resource(rtype, resource_name, name=display, region=region)
    if r is not None:
        resources.append(r)
    description = f.get("description")
    if not isinstance(description, str) or not description:
        description = props.get("Explanation") or props.get("ExplanationText") or ""
    qname = name.replace("/", "%2F") if _PLAIN_NAME.fullmatch(name) else quote(name)
    console = f"https://console.cloud.google.com/security/command-center/findingsv2;name={qname}"
    console += f"?organizationId={org}" if org else (f"?project={project}" if project else "")
    return build(
        SOURCE,  # source
        name,  # source_id
        "gcp",  # provider
        "scc",  # product
        account,  # account
        None,  # account_name
        org,  # organization
        region,  # region
        resources,  # resources
        title,  # title
        clean_description(description),  # description
        category,  # finding_type
        severity(label, None, sev_raw, None),  # sev
        status,  # status
        status_raw,  # status_raw
        parse_time(f.get("createTime")),  # first_seen
        f.get("eventTime") or f.get("createTime"),  # updated_raw
        received_at,  # received_at
        ev,  # evidence
        # Posture (misconfiguration) findings: the category is the check that failed.
        category if finding_class == "MISCONFIGURATION" else None,  # control_id
        console,  # console_url
        raw,  # raw
        attributes(
            (
                ("category", category),
                ("findingClass", finding_class),
                ("ScannerName", props.get("ScannerName")),
                ("parent", f.get("parent")),
                ("resourceType", rtype),
                ("externalUri", f.get("externalUri")),
                ("api", "v2" if "/locations/" in (f.get("name") or "") or "gcpMetadata" in res else "v1"),
            )
        ),  # attrs
    )
