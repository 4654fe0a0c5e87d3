"""AWS Security Hub findings in the AWS Security Finding Format (ASFF).

Covers every product that reports through Security Hub (Security Hub controls, GuardDuty,
Inspector, IAM Access Analyzer, Config, Macie, partners): the product is read from
``ProductArn``.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

from alertline.model import Alert, RawRef, Resource

from .common import (
    FIELD_LIMIT,
    Evidence,
    FindingProblem,
    as_dict,
    as_list,
    attributes,
    build,
    clean_description,
    clean_title,
    get,
    label_for_score,
    number,
    opt_str,
    parse_time,
    port,
    quote,
    req_str,
    resource,
    severity,
    str_map,
)

SOURCE = "aws.securityhub"

# Security Hub's own names for AWS products whose ARN segment differs from our product slug.
_PRODUCT_ALIASES = {
    "securityhub": "securityhub",
    "guardduty": "guardduty",
    "inspector": "inspector",
    "access-analyzer": "access-analyzer",
    "config": "config",
    "macie": "macie",
    "health": "health",
    "firewall-manager": "firewall-manager",
    "ssm-patch-manager": "ssm-patch-manager",
    "cloudtrail": "cloudtrail-insights",
}
_LABELS = {"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

# EC2.19's high-risk ports: a wide open range is represented by the ones it contains.
HIGH_RISK_PORTS = (
    20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432, 5500,
    5601, 8080, 8088, 8888, 9200, 9300,
)  # fmt: skip


@functools.lru_cache(maxsize=512)
def product_of(product_arn: str, product_name: str | None) -> str:
    """Our product slug. Product ARNs are few, so the answer is cached."""
    # arn:aws:securityhub:us-east-1::product/aws/guardduty -> guardduty
    tail = product_arn.rsplit(":", 1)[-1]
    parts = tail.split("/")
    if len(parts) >= 3 and parts[0] in ("product", "productv2"):
        company, name = parts[1].lower(), parts[2].lower()
        if company == "aws":
            return _PRODUCT_ALIASES.get(name, name)
        return f"{company}/{name}"
    if product_name:
        return product_name.lower().replace(" ", "-")
    return "securityhub"


@functools.lru_cache(maxsize=512)
def _region_of_arn(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return (parts[3] or None) if len(parts) > 4 else None


@functools.lru_cache(maxsize=512)
def _partition_of_arn(arn: str) -> str:
    parts = arn.split(":", 2)
    return parts[1] if len(parts) > 2 and parts[1] else "aws"


def console_host(partition: str) -> str:
    if partition == "aws-cn":
        return "console.amazonaws.cn"
    if partition == "aws-us-gov":
        return "console.amazonaws-us-gov.com"
    return "console.aws.amazon.com"


_PLAIN_ID = re.compile(r"[A-Za-z0-9_.~:/-]+")


def console_url(finding_id: str, region: str | None, partition: str) -> str:
    # The console's own deep link: the search value is itself percent-encoded once more.
    if _PLAIN_ID.fullmatch(finding_id):  # ARN-like ids: two replaces instead of two quotes
        search = "Id%3D%255Coperator%255C%253AEQUALS%255C%253A" + finding_id.replace(":", "%253A").replace("/", "%252F")
    else:
        search = quote("Id=" + quote("\\operator\\:EQUALS\\:" + finding_id))
    r = region or "us-east-1"
    return f"https://{console_host(partition)}/securityhub/home?region={r}#/findings?search={search}"


def _control_id(f: dict[str, Any]) -> str | None:
    cid = opt_str(get(f, "Compliance", "SecurityControlId"), 64)
    if cid:
        return cid
    pf = as_dict(f.get("ProductFields"))
    for key in ("ControlId", "aws/securityhub/ControlId"):
        cid = opt_str(pf.get(key), 64)
        if cid:
            return cid
    gen = f.get("GeneratorId")
    if isinstance(gen, str) and gen.startswith("security-control/"):
        return opt_str(gen[len("security-control/") :], 64)
    return None


def _status(f: dict[str, Any]) -> tuple[str, dict[str, str]]:
    record_state = opt_str(f.get("RecordState"), 64)
    workflow = opt_str(get(f, "Workflow", "Status"), 64)
    compliance = opt_str(get(f, "Compliance", "Status"), 64)
    raw: dict[str, str] = {}
    if record_state:
        raw["RecordState"] = record_state
    if workflow:
        raw["Workflow.Status"] = workflow
    if compliance:
        raw["Compliance.Status"] = compliance
    legacy = opt_str(f.get("WorkflowState"), 64)
    if legacy:
        raw["WorkflowState"] = legacy
    if record_state == "ARCHIVED" or workflow in ("RESOLVED", "SUPPRESSED") or compliance == "PASSED":
        return "resolved", raw
    return "active", raw


def _severity(f: dict[str, Any]) -> Any:
    sev = as_dict(f.get("Severity"))
    label_raw = sev.get("Label")
    normalized = number(sev.get("Normalized"))
    product = number(sev.get("Product"))
    if isinstance(label_raw, str) and label_raw.upper() in _LABELS:
        label = label_raw.lower()
    elif normalized is not None:
        label = label_for_score(normalized)
    else:
        raise FindingProblem("Severity: neither Label nor Normalized is set")
    src_label = label_raw if isinstance(label_raw, str) else None
    return severity(label, normalized, opt_str(src_label, 64), product if product is not None else normalized)


def _world_in(ranges: Any, key: str, cidr: str) -> bool:
    # Ranges may carry a Description next to the CIDR: look at the CIDR key only.
    if isinstance(ranges, list):
        for r in ranges:
            if isinstance(r, dict) and r.get(key) == cidr:
                return True
    return False


def _open_ports(sg: dict[str, Any], ev: Evidence) -> None:
    """Ports a security group opens to the whole internet (0.0.0.0/0 or ::/0)."""
    for perm in as_list(sg.get("IpPermissions")):
        if not isinstance(perm, dict):
            continue
        if not _world_in(perm.get("IpRanges"), "CidrIp", "0.0.0.0/0") and not _world_in(
            perm.get("Ipv6Ranges"), "CidrIpv6", "::/0"
        ):
            continue
        if perm.get("IpProtocol") in ("-1", -1, "all"):
            lo, hi = 0, 65535
        else:
            lo_p, hi_p = port(perm.get("FromPort")), port(perm.get("ToPort"))
            if lo_p is None:
                continue
            lo, hi = lo_p, hi_p if hi_p is not None else lo_p
        if hi - lo < 32:
            for p in range(max(lo, 1), hi + 1):
                ev.valid_port(p)
        else:
            for p in HIGH_RISK_PORTS:
                if lo <= p <= hi:
                    ev.valid_port(p)


def _resources(f: dict[str, Any], region: str | None, ev: Evidence) -> list[Resource]:
    out: list[Resource] = []
    for i, r in enumerate(as_list(f.get("Resources"))):
        if not isinstance(r, dict):
            raise FindingProblem(f"Resources[{i}]: expected an object, got a {type(r).__name__}")
        rid = req_str(r.get("Id"), f"Resources[{i}].Id")
        rtype = opt_str(r.get("Type"), FIELD_LIMIT)
        details = as_dict(r.get("Details"))
        tags = str_map(r.get("Tags"))
        name = tags.get("Name")
        addresses: list[str] = []
        inst = details.get("AwsEc2Instance")
        if isinstance(inst, dict):
            for j, a in enumerate(as_list(inst.get("IpV4Addresses")) + as_list(inst.get("IpV6Addresses"))):
                ev.own_ip(a, f"Resources[{i}].Details.AwsEc2Instance.IpAddresses[{j}]")
        sg = details.get("AwsEc2SecurityGroup")
        if isinstance(sg, dict):
            name = name or opt_str(sg.get("GroupName"))
            _open_ports(sg, ev)
        key = details.get("AwsIamAccessKey")
        if isinstance(key, dict):
            ev.user(key.get("PrincipalName") or key.get("UserName"))
        user = details.get("AwsIamUser")
        if isinstance(user, dict):
            ev.user(user.get("UserName"))
        res = resource(
            rtype,
            rid,
            name=name,
            region=opt_str(r.get("Region"), 64) or region,
            tags=tags,
            addresses=addresses,
        )
        if res is not None:
            out.append(res)
    return out


def _action(f: dict[str, Any], ev: Evidence) -> None:
    action = f.get("Action")
    if not isinstance(action, dict):
        return
    api = action.get("AwsApiCallAction")
    if isinstance(api, dict):
        ev.actor_ip(get(api, "RemoteIpDetails", "IpAddressV4"), "Action.AwsApiCallAction.RemoteIpDetails.IpAddressV4")
        ev.domain(get(api, "DomainDetails", "Domain"))
    conn = action.get("NetworkConnectionAction")
    if isinstance(conn, dict):
        ev.actor_ip(
            get(conn, "RemoteIpDetails", "IpAddressV4"), "Action.NetworkConnectionAction.RemoteIpDetails.IpAddressV4"
        )
        if conn.get("ConnectionDirection") == "INBOUND":
            ev.port(get(conn, "LocalPortDetails", "Port"))
    probe = action.get("PortProbeAction")
    if isinstance(probe, dict):
        for i, d in enumerate(as_list(probe.get("PortProbeDetails"))):
            field = f"Action.PortProbeAction.PortProbeDetails[{i}]"
            ev.actor_ip(get(d, "RemoteIpDetails", "IpAddressV4"), field + ".RemoteIpDetails.IpAddressV4")
            ev.own_ip(get(d, "LocalIpDetails", "IpAddressV4"), field + ".LocalIpDetails.IpAddressV4")
            ev.port(get(d, "LocalPortDetails", "Port"))
    dns = action.get("DnsRequestAction")
    if isinstance(dns, dict):
        ev.domain(dns.get("Domain"))


def _network(f: dict[str, Any], ev: Evidence) -> None:
    net = f.get("Network")
    if not isinstance(net, dict):
        return
    if net.get("Direction") == "OUT":
        # The resource called out: the destination is the other party.
        ev.own_ip(net.get("SourceIpV4"), "Network.SourceIpV4")
        ev.own_ip(net.get("SourceIpV6"), "Network.SourceIpV6")
        ev.actor_ip(net.get("DestinationIpV4"), "Network.DestinationIpV4")
        ev.actor_ip(net.get("DestinationIpV6"), "Network.DestinationIpV6")
        ev.domain(net.get("DestinationDomain"))
    else:
        ev.actor_ip(net.get("SourceIpV4"), "Network.SourceIpV4")
        ev.actor_ip(net.get("SourceIpV6"), "Network.SourceIpV6")
        ev.own_ip(net.get("DestinationIpV4"), "Network.DestinationIpV4")
        ev.own_ip(net.get("DestinationIpV6"), "Network.DestinationIpV6")
        ev.domain(net.get("SourceDomain"))
        ev.port(net.get("DestinationPort"))


def normalize_finding(f: Any, *, raw: RawRef, received_at: datetime) -> Alert:
    if not isinstance(f, dict):
        raise FindingProblem(f"ASFF finding: expected an object, got a {type(f).__name__}")
    product_arn = req_str(f.get("ProductArn"), "ProductArn")
    finding_id = req_str(f.get("Id"), "Id")
    account = req_str(f.get("AwsAccountId"), "AwsAccountId", 64)
    # The finding's own region: with cross-region aggregation the envelope's region is the
    # aggregator's, not the finding's.
    region = opt_str(f.get("Region"), 64) or _region_of_arn(product_arn)
    ev = Evidence()
    resources = _resources(f, region, ev)
    if region is None and resources:
        region = resources[0]["region"]
    _action(f, ev)
    _network(f, ev)
    status, status_raw = _status(f)
    product_name = opt_str(f.get("ProductName"), 256)
    types = [t for t in as_list(f.get("Types")) if isinstance(t, str)]
    return build(
        SOURCE,  # source
        f"{product_arn}|{finding_id}",  # source_id
        "aws",  # provider
        product_of(product_arn, product_name),  # product
        account,  # account
        opt_str(f.get("AwsAccountName"), 256),  # account_name
        None,  # organization
        region,  # region
        resources,  # resources
        clean_title(f.get("Title")),  # title
        clean_description(f.get("Description")),  # description
        opt_str(types[0], 256) if types else None,  # finding_type
        _severity(f),  # sev
        status,  # status
        status_raw,  # status_raw
        parse_time(f.get("FirstObservedAt")) or parse_time(f.get("CreatedAt")),  # first_seen
        f.get("UpdatedAt"),  # updated_raw
        received_at,  # received_at
        ev,  # evidence
        _control_id(f),  # control_id
        console_url(finding_id, region, _partition_of_arn(product_arn)),  # console_url
        raw,  # raw
        attributes(
            (
                ("GeneratorId", f.get("GeneratorId")),
                ("ProductName", product_name),
                ("CompanyName", f.get("CompanyName")),
                ("Types", types),
                ("ResourceType", resources[0]["type"] if resources else None),
            )
        ),  # attrs
    )
