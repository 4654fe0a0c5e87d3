"""Microsoft Defender for Cloud security alerts: the flat PascalCase export shape (continuous
export / workflow automation) and the alerts REST API shape (``properties.*``)."""

from __future__ import annotations

import functools
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
    ips_in_text,
    opt_str,
    parse_time,
    req_str,
    resource,
    severity,
)

SOURCE = "azure.defender"

_SEVERITY = {"informational": "informational", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
_RESOLVED = frozenset({"resolved", "dismissed"})
_SUBSCRIPTION = re.compile(r"/subscriptions/([0-9A-Fa-f-]{36})", re.IGNORECASE)
_LOCATION = re.compile(r"/locations?/([A-Za-z0-9-]+)")
_PROVIDER_TYPE = re.compile(r"/providers/([^/]+/[^/]+)/[^/]+(?:/([^/]+)/[^/]+)?$")
# ExtendedProperties are free text keyed by English labels; these name the other party.
_ACTOR_KEY = re.compile(r"(source|attacker|client|caller|remote|origin|sender).*\bip\b|\bip address", re.IGNORECASE)
_OWN_KEY = re.compile(r"(destination|target|local|victim|host).*\bip\b", re.IGNORECASE)
_USER_KEY = re.compile(r"^(user ?name|account|account name|user|compromised user|principal name)$", re.IGNORECASE)
_PORT_KEY = re.compile(r"^(destination ?port|target ?port|port)$", re.IGNORECASE)


class _Shape:
    """Field names of one shape: flat export (PascalCase) or REST (camelCase)."""

    def __init__(self, rest: bool) -> None:
        self.rest = rest

    def key(self, name: str) -> str:
        return name[0].lower() + name[1:] if self.rest else name


_FLAT = _Shape(False)
_REST = _Shape(True)


def _resource_type(rid: str) -> str:
    m = _PROVIDER_TYPE.search(rid)
    if m is None:
        return "AzureResource"
    return m.group(1) + (f"/{m.group(2)}" if m.group(2) else "")


def _entities(entities: list[Any], ev: Evidence) -> None:
    for i, e in enumerate(entities):
        if not isinstance(e, dict):
            continue
        etype = e.get("Type") if "Type" in e else e.get("type")
        if not isinstance(etype, str):
            continue
        etype = etype.lower()
        if etype == "ip":
            ev.actor_ip(e.get("Address", e.get("address")), f"Entities[{i}].Address")
        elif etype == "dns":
            ev.domain(e.get("DomainName", e.get("domainName")))
        elif etype == "url":
            u = e.get("Url", e.get("url"))
            if isinstance(u, str) and "://" in u:
                ev.domain(u.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0])
        elif etype == "account":
            name = e.get("Name", e.get("name"))
            suffix = e.get("UPNSuffix", e.get("upnSuffix"))
            nt = e.get("NTDomain", e.get("ntDomain"))
            if isinstance(name, str) and isinstance(suffix, str):
                ev.user(f"{name}@{suffix}")
            elif isinstance(name, str) and isinstance(nt, str):
                ev.user(f"{nt}\\{name}")
            else:
                ev.user(name)


@functools.lru_cache(maxsize=1024)
def _key_kind(k: str) -> str:
    """What an ExtendedProperties label names; labels repeat, so the answer is cached."""
    if _ACTOR_KEY.search(k):
        return "actor"
    if _OWN_KEY.search(k):
        return "own"
    if _USER_KEY.match(k):
        return "user"
    if _PORT_KEY.match(k):
        return "port"
    return ""


def _extended(props: dict[str, Any], ev: Evidence) -> None:
    for k, v in props.items():
        if len(k) > 128:
            continue
        kind = _key_kind(k)
        if kind == "actor":
            for ip in ips_in_text(v):
                ev.actor_address(ip)
        elif kind == "own":
            for ip in ips_in_text(v):
                ev.own_address(ip)
        elif kind == "user":
            ev.user(v)
        elif kind == "port":
            ev.port(v)


def normalize_alert(doc: Any, *, raw: RawRef, received_at: datetime) -> Alert:
    if not isinstance(doc, dict):
        raise FindingProblem(f"Defender alert: expected an object, got a {type(doc).__name__}")
    props = doc.get("properties")
    if isinstance(props, dict):
        a, s, outer_id = props, _REST, doc.get("id")
    else:
        a, s, outer_id = doc, _FLAT, None
    k = s.key
    alert_id = req_str(a.get(k("SystemAlertId")) or (doc.get("name") if s.rest else None), k("SystemAlertId"))
    # Resource: AzureResourceId (flat), else the AzureResource resource identifier.
    rid = opt_str(a.get("AzureResourceId")) if not s.rest else None
    tenant = opt_str(a.get("AzureResourceTenantId")) if not s.rest else None
    for ri in as_list(a.get(k("ResourceIdentifiers"))):
        rtype = get(ri, "Type") if isinstance(ri, dict) and "Type" in ri else get(ri, "type")
        if rtype == "AzureResource":
            rid = rid or opt_str(get(ri, "AzureResourceId") or get(ri, "azureResourceId"))
            tenant = tenant or opt_str(get(ri, "AzureResourceTenantId") or get(ri, "azureResourceTenantId"))
    rid = rid or opt_str(a.get("ResourceId"))
    tenant = tenant or opt_str(a.get("TenantId"))
    sub = None
    for text in (rid, outer_id if isinstance(outer_id, str) else None, opt_str(a.get("AzureResourceSubscriptionId"))):
        if text:
            m = _SUBSCRIPTION.search(text) if "/" in text else None
            sub = m.group(1) if m else (text if len(text) == 36 else None)
            if sub:
                break
    if sub is None:
        raise FindingProblem("no subscription id in AzureResourceId, ResourceIdentifiers or the alert id")
    uri = opt_str(a.get(k("AlertUri")), 2048)
    region = None
    for text in (outer_id if isinstance(outer_id, str) else None, uri):
        if text:
            m = _LOCATION.search(text)
            if m:
                region = m.group(1).lower()
                break
    ev = Evidence()
    _entities(as_list(a.get(k("Entities"))), ev)
    ext = as_dict(a.get(k("ExtendedProperties")))
    _extended(ext, ev)
    sev_raw = opt_str(a.get(k("Severity")), 64)
    label = _SEVERITY.get((sev_raw or "").lower(), "medium")
    status_key = k("Status")
    st = opt_str(a.get(status_key), 64)
    status = "resolved" if st and st.lower() in _RESOLVED else "active"
    compromised = opt_str(a.get(k("CompromisedEntity")), 256)
    resources = []
    if rid:
        r = resource(_resource_type(rid), rid, name=compromised or rid.rsplit("/", 1)[-1], region=region)
        if r is not None:
            resources.append(r)
    if s.rest:
        updated = a.get("processingEndTimeUtc") or a.get("timeGeneratedUtc") or a.get("endTimeUtc")
    else:
        updated = a.get("ProcessingEndTime") or a.get("TimeGenerated") or a.get("EndTimeUtc")
    alert_type = opt_str(a.get(k("AlertType")), 256)
    techniques = [t for t in as_list(a.get(k("Techniques"))) if isinstance(t, str)]
    return build(
        SOURCE,  # source
        # Defender's ids embed a GUID whose case varies between export paths.
        alert_id.lower(),  # source_id
        "azure",  # provider
        "defender",  # product
        sub.lower(),  # account
        None,  # account_name
        tenant.lower() if tenant else None,  # organization
        region,  # region
        resources,  # resources
        clean_title(a.get(k("AlertDisplayName")) or a.get("AlertName") or a.get("DisplayName")),  # title
        clean_description(a.get(k("Description"))),  # description
        alert_type,  # finding_type
        severity(label, None, sev_raw, None),  # sev
        status,  # status
        {status_key: st} if st else {},  # status_raw
        parse_time(a.get(k("StartTimeUtc"))),  # first_seen
        updated,  # updated_raw
        received_at,  # received_at
        ev,  # evidence
        None,  # control_id
        uri,  # console_url
        raw,  # raw
        attributes(
            (
                ("AlertType", alert_type),
                ("ProductName", a.get(k("ProductName"))),
                ("ProductComponentName", a.get(k("ProductComponentName"))),
                ("Intent", a.get(k("Intent"))),
                ("CompromisedEntity", compromised),
                ("Techniques", techniques),
                ("ResourceType", resources[0]["type"] if resources else None),
                ("IsIncident", a.get(k("IsIncident"))),
            )
        ),  # attrs
    )
