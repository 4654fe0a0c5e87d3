"""Amazon GuardDuty findings as GuardDuty itself emits them (EventBridge ``GuardDuty Finding``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alertline.model import Alert, RawRef, Resource

from .asff import console_host
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
    number,
    opt_str,
    parse_time,
    req_str,
    resource,
    severity,
)

SOURCE = "aws.guardduty"


def severity_label(score: float) -> str:
    # GuardDuty's documented bands: Low 1.0-3.9, Medium 4.0-6.9, High 7.0-8.9, Critical 9.0-10.0.
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def _resource(r: dict[str, Any], region: str | None, ev: Evidence) -> list[Resource]:
    rtype = opt_str(r.get("resourceType"), 64) or "Unknown"
    inst = r.get("instanceDetails")
    if isinstance(inst, dict) and inst.get("instanceId"):
        for i, nic in enumerate(as_list(inst.get("networkInterfaces"))):
            field = f"resource.instanceDetails.networkInterfaces[{i}]"
            ev.own_ip(get(nic, "privateIpAddress"), field + ".privateIpAddress")
            ev.own_ip(get(nic, "publicIp"), field + ".publicIp")
            for j, p in enumerate(as_list(get(nic, "privateIpAddresses"))):
                ev.own_ip(get(p, "privateIpAddress"), f"{field}.privateIpAddresses[{j}].privateIpAddress")
            for j, a in enumerate(as_list(get(nic, "ipv6Addresses"))):
                ev.own_ip(a, f"{field}.ipv6Addresses[{j}]")
        tags = kv_list_map(inst.get("tags"), "key", "value")
        res = resource(
            "AwsEc2Instance",
            req_str(inst.get("instanceId"), "resource.instanceDetails.instanceId"),
            name=tags.get("Name"),
            region=region,
            tags=tags,
        )
        return [res] if res else []
    key = r.get("accessKeyDetails")
    if isinstance(key, dict):
        ev.user(key.get("userName"))
    if rtype == "AccessKey" and isinstance(key, dict):
        res = resource(
            "AwsIamAccessKey",
            opt_str(key.get("accessKeyId")) or opt_str(key.get("principalId")),
            name=opt_str(key.get("userName")),
            region=region,
        )
        return [res] if res else []
    k8s_user = get(r, "kubernetesDetails", "kubernetesUserDetails", "username")
    ev.user(k8s_user)
    ev.user(get(r, "rdsDbUserDetails", "user"))
    out: list[Resource] = []
    for b in as_list(r.get("s3BucketDetails")):
        res = resource(
            "AwsS3Bucket",
            opt_str(get(b, "arn")) or opt_str(get(b, "name")),
            name=opt_str(get(b, "name")),
            region=region,
            tags=kv_list_map(get(b, "tags"), "key", "value"),
        )
        if res:
            out.append(res)
    if out:
        return out
    for detail, arn_key, name_key, typ in (
        ("eksClusterDetails", "arn", "name", "AwsEksCluster"),
        ("ecsClusterDetails", "arn", "name", "AwsEcsCluster"),
        ("lambdaDetails", "functionArn", "functionName", "AwsLambdaFunction"),
        ("rdsDbInstanceDetails", "dbInstanceArn", "dbInstanceIdentifier", "AwsRdsDbInstance"),
    ):
        d = r.get(detail)
        if isinstance(d, dict):
            res = resource(typ, opt_str(d.get(arn_key)), name=opt_str(d.get(name_key)), region=region)
            if res:
                return [res]
    return []


def _action(action: dict[str, Any], ev: Evidence) -> None:
    for name, a in action.items():
        if not isinstance(a, dict):
            continue
        field = f"service.action.{name}"
        remote = a.get("remoteIpDetails")
        if isinstance(remote, dict):
            ev.actor_ip(remote.get("ipAddressV4"), field + ".remoteIpDetails.ipAddressV4")
            ev.actor_ip(remote.get("ipAddressV6"), field + ".remoteIpDetails.ipAddressV6")
        local = a.get("localIpDetails")
        if isinstance(local, dict):
            ev.own_ip(local.get("ipAddressV4"), field + ".localIpDetails.ipAddressV4")
            ev.own_ip(local.get("ipAddressV6"), field + ".localIpDetails.ipAddressV6")
        if name == "networkConnectionAction" and a.get("connectionDirection") == "INBOUND":
            ev.port(get(a, "localPortDetails", "port"))
        for i, d in enumerate(as_list(a.get("portProbeDetails"))):
            f = f"{field}.portProbeDetails[{i}]"
            ev.actor_ip(get(d, "remoteIpDetails", "ipAddressV4"), f + ".remoteIpDetails.ipAddressV4")
            ev.actor_ip(get(d, "remoteIpDetails", "ipAddressV6"), f + ".remoteIpDetails.ipAddressV6")
            ev.own_ip(get(d, "localIpDetails", "ipAddressV4"), f + ".localIpDetails.ipAddressV4")
            ev.port(get(d, "localPortDetails", "port"))
        for i, ip in enumerate(as_list(a.get("sourceIPs"))):
            ev.actor_ip(ip, f"{field}.sourceIPs[{i}]")
        ev.domain(a.get("domain"))
        ev.domain(get(a, "domainDetails", "domain"))


def normalize_finding(f: Any, *, raw: RawRef, received_at: datetime) -> Alert:
    if not isinstance(f, dict):
        raise FindingProblem(f"GuardDuty finding: expected an object, got a {type(f).__name__}")
    arn = req_str(f.get("arn"), "arn")
    account = req_str(f.get("accountId"), "accountId", 64)
    region = opt_str(f.get("region"), 64)
    score = number(f.get("severity"))
    if score is None:
        raise FindingProblem("severity: expected a number")
    service = as_dict(f.get("service"))
    ev = Evidence()
    resources = _resource(as_dict(f.get("resource")), region, ev)
    action = service.get("action")
    if isinstance(action, dict):
        _action(action, ev)
    archived = service.get("archived")
    status_raw = {"service.archived": "true" if archived is True else "false"}
    count = service.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        status_raw["service.count"] = str(count)
    finding_id = opt_str(f.get("id"), 256) or arn.rsplit("/", 1)[-1]
    partition = opt_str(f.get("partition"), 32) or "aws"
    console = (
        f"https://{console_host(partition)}/guardduty/home?region={region or 'us-east-1'}"
        f"#/findings?macros=current&fId={finding_id}"
    )
    ftype = opt_str(f.get("type"), 256)
    return build(
        SOURCE,  # source
        arn,  # source_id
        "aws",  # provider
        "guardduty",  # product
        account,  # account
        None,  # account_name
        None,  # organization
        region,  # region
        resources,  # resources
        clean_title(f.get("title")),  # title
        clean_description(f.get("description")),  # description
        ftype,  # finding_type
        severity(severity_label(score), score * 10, None, score),  # sev
        # Archiving (by hand or by a suppression rule) hides a finding; it is not a fix.
        "suppressed" if archived is True else "active",  # status
        status_raw,  # status_raw
        parse_time(service.get("eventFirstSeen")) or parse_time(f.get("createdAt")),  # first_seen
        f.get("updatedAt"),  # updated_raw
        received_at,  # received_at
        ev,  # evidence
        None,  # control_id
        console,  # console_url
        raw,  # raw
        attributes(
            (
                ("type", ftype),
                ("resourceType", get(f, "resource", "resourceType")),
                ("resourceRole", service.get("resourceRole")),
                ("actionType", get(service, "action", "actionType")),
                ("api", get(service, "action", "awsApiCallAction", "api")),
                ("serviceName", get(service, "action", "awsApiCallAction", "serviceName")),
                ("threatListName", get(service, "additionalInfo", "threatListName")),
            )
        ),  # attrs
    )
