"""AWS Security Hub ``Findings Imported V2`` events: findings in OCSF (1.x finding classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alertline.model import Alert, RawRef, Resource

from .asff import product_of
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
    kv_list_map,
    opt_str,
    parse_time,
    req_str,
    resource,
    scalar_str,
    severity,
)

SOURCE = "aws.securityhub.ocsf"

# OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical, 6 Fatal.
_SEVERITY_ID = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical", 6: "critical"}
_SEVERITY_NAME = {"informational": "informational", "low": "low", "medium": "medium", "high": "high",
                  "critical": "critical", "fatal": "critical"}  # fmt: skip
# OCSF status_id: 1 New, 2 In Progress, 3 Suppressed, 4 Resolved, 5 Archived, 6 Deleted.
_RESOLVED_STATUS = {4, 5, 6}
_SUPPRESSED_STATUS = 3
_CLOSE_ACTIVITY = 3
_PASS_COMPLIANCE = 1


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _severity(f: dict[str, Any]) -> Any:
    sid = _int(f.get("severity_id"))
    name = opt_str(f.get("severity"), 64)
    if sid is None and name is None:
        raise FindingProblem("severity_id: missing")
    label = _SEVERITY_ID.get(sid or 0) or _SEVERITY_NAME.get((name or "").lower(), "medium")
    return severity(label, None, name, float(sid) if sid is not None and abs(sid) < 1 << 31 else None)


def _status(f: dict[str, Any]) -> tuple[str, dict[str, str]]:
    status_id = _int(f.get("status_id"))
    activity_id = _int(f.get("activity_id"))
    comp = as_dict(f.get("compliance"))
    comp_id = _int(comp.get("status_id"))
    raw: dict[str, str] = {}
    for key, v in (
        ("status", f.get("status")),
        ("status_id", status_id),
        ("activity_name", f.get("activity_name")),
        ("compliance.status", comp.get("status")),
    ):
        s = scalar_str(v, 64)
        if s is not None:
            raw[key] = s
    if (
        status_id in _RESOLVED_STATUS
        or activity_id == _CLOSE_ACTIVITY
        or comp_id == _PASS_COMPLIANCE
        or (comp_id is None and comp.get("status") == "Pass")
    ):
        return "resolved", raw
    if status_id == _SUPPRESSED_STATUS:
        return "suppressed", raw
    return "active", raw


def _resources(f: dict[str, Any], region: str | None) -> list[Resource]:
    out: list[Resource] = []
    for r in as_list(f.get("resources")):
        res = resource(
            opt_str(get(r, "type")),
            opt_str(get(r, "uid")),
            name=opt_str(get(r, "name")),
            region=opt_str(get(r, "region"), 64) or region,
            tags=kv_list_map(get(r, "tags"), "name", "value"),
        )
        if res is not None:
            out.append(res)
    return out


# OCSF observable type_id: 1 Hostname, 2 IP Address, 4 User Name.
def _evidence(f: dict[str, Any], ev: Evidence) -> None:
    for i, e in enumerate(as_list(f.get("evidences"))):
        if not isinstance(e, dict):
            continue
        ev.actor_ip(get(e, "src_endpoint", "ip"), f"evidences[{i}].src_endpoint.ip")
        ev.own_ip(get(e, "dst_endpoint", "ip"), f"evidences[{i}].dst_endpoint.ip")
        ev.port(get(e, "dst_endpoint", "port"))
        ev.domain(get(e, "query", "hostname"))
        ev.domain(get(e, "src_endpoint", "domain"))
        ev.user(get(e, "actor", "user", "name"))
    for i, o in enumerate(as_list(f.get("observables"))):
        if not isinstance(o, dict):
            continue
        oname = o.get("name")
        where: str = oname if isinstance(oname, str) else ""
        tid = o.get("type_id")
        if tid == 2:
            field = f"observables[{i}].value"
            if "dst_endpoint" in where or where.startswith("resources"):
                ev.own_ip(o.get("value"), field)
            else:
                ev.actor_ip(o.get("value"), field)
        elif tid == 1 and not where.startswith("resources"):
            ev.domain(o.get("value"))
        elif tid == 4:
            ev.user(o.get("value"))


def normalize_finding(f: Any, *, raw: RawRef, received_at: datetime) -> Alert:
    if not isinstance(f, dict):
        raise FindingProblem(f"OCSF finding: expected an object, got a {type(f).__name__}")
    info = f.get("finding_info")
    if not isinstance(info, dict):
        raise FindingProblem("finding_info: expected an object")
    uid = req_str(info.get("uid"), "finding_info.uid")
    product_uid = req_str(get(f, "metadata", "product", "uid"), "metadata.product.uid")
    account = req_str(get(f, "cloud", "account", "uid"), "cloud.account.uid", 64)
    region = opt_str(get(f, "cloud", "region"), 64)
    product_name = opt_str(get(f, "metadata", "product", "name"), 256)
    ev = Evidence()
    resources = _resources(f, region)
    _evidence(f, ev)
    status, status_raw = _status(f)
    types = [t for t in as_list(info.get("types")) if isinstance(t, str)]
    updated = info.get("modified_time_dt") or info.get("modified_time") or f.get("time_dt") or f.get("time")
    first = (
        parse_time(info.get("first_seen_time_dt"))
        or parse_time(info.get("created_time_dt"))
        or parse_time(info.get("first_seen_time"))
        or parse_time(info.get("created_time"))
    )
    return build(
        SOURCE,  # source
        f"{product_uid}|{account}|{uid}",  # source_id
        "aws",  # provider
        product_of(product_uid, product_name),  # product
        account,  # account
        opt_str(get(f, "cloud", "account", "name"), 256),  # account_name
        opt_str(get(f, "cloud", "org", "uid"), 256),  # organization
        region,  # region
        resources,  # resources
        clean_title(info.get("title")),  # title
        clean_description(info.get("desc")),  # description
        opt_str(types[0], 256) if types else opt_str(f.get("class_name"), 256),  # finding_type
        _severity(f),  # sev
        status,  # status
        status_raw,  # status_raw
        first,  # first_seen
        updated,  # updated_raw
        received_at,  # received_at
        ev,  # evidence
        opt_str(get(f, "compliance", "control"), 64),  # control_id
        opt_str(info.get("src_url"), 2048),  # console_url
        raw,  # raw
        attributes(
            (
                ("class_name", f.get("class_name")),
                ("ProductName", product_name),
                ("vendor_name", get(f, "metadata", "product", "vendor_name")),
                ("types", types),
                ("analytic", get(info, "analytic", "name")),
                ("ResourceType", resources[0]["type"] if resources else None),
            )
        ),  # attrs
    )
