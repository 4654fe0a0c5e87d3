"""AWS through boto3: assume a role in each account, collect what the checks need, one unit
per (account, region) plus one per account for global services (IAM, S3, account settings).

A collection step that fails records a ``CollectError`` and the unit is incomplete: its
findings are still published, but nothing in it resolves. Nothing here raises past a unit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from alertline.clock import Clock, utcnow
from services.scan.collectors.common import ALL_PORTS, NO_PORTS, jsonable, protocol, rule, str_tags
from services.scan.domain import Collected, CollectError, ResourceDoc, Unit
from services.scan.settings import AwsScanSettings

log = logging.getLogger(__name__)

GLOBAL = "global"
SG = "AwsEc2SecurityGroup"
EBS_DEFAULT = "AwsEc2EbsEncryptionByDefault"
BUCKET = "AwsS3Bucket"
ACCESS_KEY = "AwsIamAccessKey"
ACCOUNT = "AwsAccount"
PUBLIC_GROUPS = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers",
}
_ACCOUNT_HOST = re.compile(r"^(https?://)\d{12}\.")

ClientHook = Callable[[Any], None]


class CollectFailed(Exception):
    """One collection step failed; carries where, for the unit's error list."""

    def __init__(self, where: str, cause: BaseException) -> None:
        super().__init__(f"{where}: {type(cause).__name__}: {cause}")
        self.where = where
        self.cause = cause


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: datetime


def unit_key(account: str, region: str) -> str:
    return f"aws:{account}:{region}"


class AwsCollector:
    """``units()`` lists what to scan; ``collect(unit)`` scans one (thread-safe)."""

    def __init__(
        self,
        settings: AwsScanSettings,
        base: boto3.Session,
        clock: Clock,
        client_hook: ClientHook | None = None,
    ) -> None:
        self.s = settings
        self.base = base
        self.clock = clock
        self.client_hook = client_hook
        self.account_names: dict[str, str | None] = {}
        self._creds: dict[str, Credentials] = {}
        self._lock = threading.Lock()
        self._config = Config(
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            user_agent_extra="alertline-scan",
        )

    # -------------------------------------------------------------- what to scan
    def accounts(self) -> dict[str, str | None]:
        """Configured accounts, plus AWS Organizations' ACTIVE accounts when enabled. Raises
        ``CollectFailed`` when Organizations cannot be listed (the run reports it)."""
        found: dict[str, str | None] = dict(self.s.accounts)
        if self.s.organizations:
            org = self._client(self.base, "organizations", self.s.regions[0])
            try:
                for page in org.get_paginator("list_accounts").paginate():
                    for a in page.get("Accounts", []):
                        state = a.get("State") or a.get("Status")
                        if state == "ACTIVE":
                            found.setdefault(a["Id"], a.get("Name"))
            except (ClientError, BotoCoreError) as exc:
                raise CollectFailed("organizations.ListAccounts", exc) from exc
        for x in self.s.exclude_accounts:
            found.pop(x, None)
        self.account_names = found
        return found

    def units(self, accounts: dict[str, str | None]) -> list[Unit]:
        out: list[Unit] = []
        for acct in sorted(accounts):
            out.append(Unit(unit_key(acct, GLOBAL), "aws", acct, None))
            out.extend(Unit(unit_key(acct, r), "aws", acct, r) for r in self.s.regions)
        return out

    # -------------------------------------------------------------- clients
    def _client(self, session: boto3.Session, service: str, region: str) -> Any:
        c = session.client(service, region_name=region, endpoint_url=self.s.endpoint_url, config=self._config)
        if self.s.endpoint_url and service == "s3control":
            # S3 Control's endpoint rules put the account id in the host name; a local endpoint
            # (moto, LocalStack) has no per-account virtual hosts.
            c.meta.events.register("before-send.s3-control", _strip_account_host)
        if self.client_hook is not None:
            self.client_hook(c)
        return c

    def credentials(self, account: str) -> Credentials:
        with self._lock:
            cached = self._creds.get(account)
            # Real time, not the injectable clock: STS expiry is the real world's.
            if cached and (cached.expires_at - utcnow()).total_seconds() > 300:
                return cached
        arn = f"arn:{self.s.partition}:iam::{account}:role{self.s.role_path}{self.s.role_name}"
        sts = self._client(self.base, "sts", self.s.regions[0])
        kw: dict[str, Any] = {
            "RoleArn": arn,
            "RoleSessionName": "alertline-scan",
            "DurationSeconds": self.s.session_duration_s,
        }
        if self.s.external_id is not None:
            kw["ExternalId"] = self.s.external_id.get_secret_value()
        try:
            c = sts.assume_role(**kw)["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed(f"sts.AssumeRole {arn}", exc) from exc
        exp = c.get("Expiration")
        creds = Credentials(
            c["AccessKeyId"],
            c["SecretAccessKey"],
            c["SessionToken"],
            exp if isinstance(exp, datetime) else utcnow(),
        )
        with self._lock:
            self._creds[account] = creds
        return creds

    def session(self, account: str) -> boto3.Session:
        c = self.credentials(account)
        return boto3.Session(
            aws_access_key_id=c.access_key_id,
            aws_secret_access_key=c.secret_access_key,
            aws_session_token=c.session_token,
        )

    # -------------------------------------------------------------- collection
    def collect(self, unit: Unit) -> Collected:
        assert unit.account is not None
        out = Collected(unit)
        started = time.monotonic()
        try:
            session = self.session(unit.account)
        except CollectFailed as exc:
            out.errors.append(_error(exc))
            log.error("cannot assume role", extra={"unit": unit.key, "error": str(exc)})
            return out
        steps: list[tuple[str, Callable[[boto3.Session, Unit], Iterator[ResourceDoc]]]]
        if unit.region is None:
            steps = [(ACCOUNT, self._account), (ACCESS_KEY, self._access_keys), (BUCKET, self._buckets)]
        else:
            steps = [(SG, self._security_groups), (EBS_DEFAULT, self._ebs_default)]
        for kind, step in steps:
            out.covered.add(kind)
            try:
                for doc in step(session, unit):
                    out.resources.append(doc)
            except CollectFailed as exc:
                out.errors.append(_error(exc))
            except (ClientError, BotoCoreError) as exc:
                out.errors.append(_error(CollectFailed(kind, exc)))
            except Exception as exc:  # a bug in one step must not hide the rest of the scan; reported
                log.exception("collection step crashed", extra={"unit": unit.key, "kind": kind})
                out.errors.append(_error(CollectFailed(kind, exc)))
        out.resources.sort(key=lambda d: (d["kind"], d.get("key") or d["id"]))
        for e in out.errors:
            log.error("collection error", extra={"unit": unit.key, "where": e.where, "error": e.message})
        log.info(
            "unit collected",
            extra={
                "unit": unit.key,
                "resources": len(out.resources),
                "errors": len(out.errors),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return out

    def _base_doc(self, unit: Unit, kind: str, rid: str, name: str | None, region: str | None) -> ResourceDoc:
        assert unit.account is not None
        return {
            "provider": "aws",
            "kind": kind,
            "type": kind,
            "id": rid,
            "key": rid,
            "name": name,
            "account": unit.account,
            "account_name": self.account_names.get(unit.account) or None,
            "organization": self.s.organization,
            "region": region,
            "tags": {},
            "addresses": [],
            "console_url": None,
            "config": {},
            "facts": {},
        }

    # regional ---------------------------------------------------------------
    def _security_groups(self, session: boto3.Session, unit: Unit) -> Iterator[ResourceDoc]:
        assert unit.region is not None and unit.account is not None
        ec2 = self._client(session, "ec2", unit.region)
        groups: list[dict[str, Any]] = []
        try:
            for page in ec2.get_paginator("describe_security_groups").paginate():
                groups.extend(page.get("SecurityGroups", []))
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed("ec2.DescribeSecurityGroups", exc) from exc
        # The addresses behind each group let the exposure probe start from the alert alone.
        public: dict[str, set[str]] = {}
        try:
            for page in ec2.get_paginator("describe_network_interfaces").paginate():
                for eni in page.get("NetworkInterfaces", []):
                    addrs = set()
                    ip = (eni.get("Association") or {}).get("PublicIp")
                    if ip:
                        addrs.add(ip)
                    addrs.update(a["Ipv6Address"] for a in eni.get("Ipv6Addresses", []) if a.get("Ipv6Address"))
                    for g in eni.get("Groups", []):
                        public.setdefault(g["GroupId"], set()).update(addrs)
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed("ec2.DescribeNetworkInterfaces", exc) from exc
        for g in groups:
            gid = g["GroupId"]
            owner = g.get("OwnerId") or unit.account
            arn = f"arn:{self.s.partition}:ec2:{unit.region}:{owner}:security-group/{gid}"
            doc = self._base_doc(unit, SG, arn, g.get("GroupName"), unit.region)
            doc["tags"] = str_tags(g.get("Tags"))
            doc["addresses"] = sorted(public.get(gid, ()))
            doc["console_url"] = (
                f"https://{unit.region}.console.aws.amazon.com/ec2/home?region={unit.region}#SecurityGroup:groupId={gid}"
            )
            doc["config"] = jsonable(g)
            doc["facts"] = {
                "group_id": gid,
                "vpc_id": g.get("VpcId"),
                "rules": [
                    *sg_rules(g.get("IpPermissions", []), "ingress"),
                    *sg_rules(g.get("IpPermissionsEgress", []), "egress"),
                ],
            }
            yield doc

    def _ebs_default(self, session: boto3.Session, unit: Unit) -> Iterator[ResourceDoc]:
        assert unit.region is not None and unit.account is not None
        ec2 = self._client(session, "ec2", unit.region)
        try:
            r = ec2.get_ebs_encryption_by_default()
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed("ec2.GetEbsEncryptionByDefault", exc) from exc
        rid = f"AWS::::Account:{unit.account}"
        doc = self._base_doc(unit, EBS_DEFAULT, rid, f"{unit.account} {unit.region}", unit.region)
        doc["type"] = ACCOUNT
        doc["key"] = f"{rid}:{unit.region}:ebs-encryption-by-default"
        doc["console_url"] = (
            f"https://{unit.region}.console.aws.amazon.com/ec2/home?region={unit.region}#Settings:tab=ebsEncryption"
        )
        doc["config"] = {"EbsEncryptionByDefault": bool(r.get("EbsEncryptionByDefault"))}
        yield doc

    # global -----------------------------------------------------------------
    def _account(self, session: boto3.Session, unit: Unit) -> Iterator[ResourceDoc]:
        iam = self._client(session, "iam", self.s.regions[0])
        try:
            summary = iam.get_account_summary().get("SummaryMap", {})
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed("iam.GetAccountSummary", exc) from exc
        assert unit.account is not None
        doc = self._base_doc(
            unit, ACCOUNT, f"AWS::::Account:{unit.account}", self.account_names.get(unit.account) or None, None
        )
        doc["config"] = jsonable(summary)
        yield doc

    def _access_keys(self, session: boto3.Session, unit: Unit) -> Iterator[ResourceDoc]:
        iam = self._client(session, "iam", self.s.regions[0])
        now = self.clock()
        try:
            users = [u for page in iam.get_paginator("list_users").paginate() for u in page.get("Users", [])]
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed("iam.ListUsers", exc) from exc
        for u in users:
            try:
                keys = [
                    k
                    for page in iam.get_paginator("list_access_keys").paginate(UserName=u["UserName"])
                    for k in page.get("AccessKeyMetadata", [])
                ]
            except ClientError as exc:
                if _code(exc) == "NoSuchEntity":  # deleted since ListUsers
                    continue
                raise CollectFailed(f"iam.ListAccessKeys {u['UserName']}", exc) from exc
            except BotoCoreError as exc:
                raise CollectFailed(f"iam.ListAccessKeys {u['UserName']}", exc) from exc
            for k in keys:
                created = k.get("CreateDate")
                age = (now - _aware(created)).days if isinstance(created, datetime) else None
                doc = self._base_doc(
                    unit,
                    ACCESS_KEY,
                    f"AWS::IAM::AccessKey:{k['AccessKeyId']}",
                    f"{u['UserName']}/{k['AccessKeyId']}",
                    None,
                )
                doc["console_url"] = (
                    f"https://console.aws.amazon.com/iam/home#/users/details/{u['UserName']}?section=security_credentials"
                )
                doc["config"] = jsonable(k)
                doc["facts"] = {"age_days": age, "user_arn": u.get("Arn")}
                yield doc

    def _buckets(self, session: boto3.Session, unit: Unit) -> Iterator[ResourceDoc]:
        assert unit.account is not None
        region0 = self.s.regions[0]
        s3control = self._client(session, "s3control", region0)
        try:
            account_bpa = s3control.get_public_access_block(AccountId=unit.account)["PublicAccessBlockConfiguration"]
        except ClientError as exc:
            if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise CollectFailed("s3control.GetPublicAccessBlock", exc) from exc
            account_bpa = {}
        except BotoCoreError as exc:
            raise CollectFailed("s3control.GetPublicAccessBlock", exc) from exc
        s3 = self._client(session, "s3", region0)
        try:
            buckets = s3.list_buckets().get("Buckets", [])
        except (ClientError, BotoCoreError) as exc:
            raise CollectFailed("s3.ListBuckets", exc) from exc
        errors: list[CollectFailed] = []
        for b in buckets:
            try:
                doc = self._bucket(s3, unit, b["Name"], account_bpa)
            except CollectFailed as exc:
                errors.append(exc)
                continue
            if doc is not None:
                yield doc
        if errors:
            # One unreadable bucket must not hide the others' findings; it still makes the
            # unit incomplete (raised after the rest were yielded).
            raise CollectFailed(
                "s3 buckets", RuntimeError(f"{len(errors)} bucket(s) unreadable; first: {errors[0]}")
            ) from errors[0]

    def _bucket(self, s3: Any, unit: Unit, name: str, account_bpa: dict[str, Any]) -> ResourceDoc | None:
        def call(op: str, fn: Callable[[], Any], missing: tuple[str, ...] = ()) -> Any:
            try:
                return fn()
            except ClientError as exc:
                code = _code(exc)
                if code == "NoSuchBucket":
                    raise _Gone from exc
                if code in missing:
                    return None
                raise CollectFailed(f"s3.{op} {name}", exc) from exc
            except BotoCoreError as exc:
                raise CollectFailed(f"s3.{op} {name}", exc) from exc

        try:
            loc = call("GetBucketLocation", lambda: s3.get_bucket_location(Bucket=name))
            region = _bucket_region(loc.get("LocationConstraint"))
            bpa_r = call(
                "GetPublicAccessBlock",
                lambda: s3.get_public_access_block(Bucket=name),
                ("NoSuchPublicAccessBlockConfiguration",),
            )
            status_r = call(
                "GetBucketPolicyStatus", lambda: s3.get_bucket_policy_status(Bucket=name), ("NoSuchBucketPolicy",)
            )
            acl = call("GetBucketAcl", lambda: s3.get_bucket_acl(Bucket=name))
            tags_r = call(
                "GetBucketTagging", lambda: s3.get_bucket_tagging(Bucket=name), ("NoSuchTagSet", "NoSuchTagSetError")
            )
        except _Gone:
            return None
        bucket_bpa = (bpa_r or {}).get("PublicAccessBlockConfiguration", {})
        policy_public = bool(((status_r or {}).get("PolicyStatus") or {}).get("IsPublic"))
        grants = []
        for g in acl.get("Grants", []):
            grantee = g.get("Grantee") or {}
            group = PUBLIC_GROUPS.get(grantee.get("URI", "")) if grantee.get("Type") == "Group" else None
            if group:
                grants.append(f"{group}:{g.get('Permission')}")
        doc = self._base_doc(unit, BUCKET, f"arn:{self.s.partition}:s3:::{name}", name, region)
        doc["tags"] = str_tags((tags_r or {}).get("TagSet"))
        doc["console_url"] = f"https://s3.console.aws.amazon.com/s3/buckets/{name}?region={region}&tab=permissions"
        doc["config"] = jsonable(
            {
                "Name": name,
                "PublicAccessBlockConfiguration": bucket_bpa or None,
                "PolicyStatus": (status_r or {}).get("PolicyStatus"),
                "Grants": acl.get("Grants", []),
            }
        )
        doc["facts"] = {
            "account_block_public_access": jsonable(account_bpa),
            "bucket_block_public_access": jsonable(bucket_bpa),
            "policy_is_public": policy_public,
            "public_acl_grants": sorted(grants),
        }
        return doc


class _Gone(Exception):
    """The bucket was deleted between ListBuckets and a detail call: not an error."""


def sg_rules(perms: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    out = []
    for p in perms:
        proto = protocol(p.get("IpProtocol"))
        if proto == "all":
            ports = ALL_PORTS
        elif proto in ("tcp", "udp"):
            lo, hi = p.get("FromPort"), p.get("ToPort")
            ports = (lo, hi) if isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi else ALL_PORTS
        else:
            ports = NO_PORTS
        sources = [r["CidrIp"] for r in p.get("IpRanges", []) if r.get("CidrIp")]
        sources += [r["CidrIpv6"] for r in p.get("Ipv6Ranges", []) if r.get("CidrIpv6")]
        sources += [r["PrefixListId"] for r in p.get("PrefixListIds", []) if r.get("PrefixListId")]
        sources += [r["GroupId"] for r in p.get("UserIdGroupPairs", []) if r.get("GroupId")]
        out.append(rule(name=None, direction=direction, action="allow", proto=proto, ports=ports, sources=sources))
    return out


def _bucket_region(constraint: Any) -> str:
    # GetBucketLocation: null for us-east-1, the legacy "EU" for eu-west-1.
    if not constraint:
        return "us-east-1"
    return "eu-west-1" if constraint == "EU" else str(constraint)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _error(exc: CollectFailed) -> CollectError:
    cause = exc.cause
    return CollectError(exc.where, f"{type(cause).__module__}.{type(cause).__qualname__}", str(cause)[:1000])


def _strip_account_host(request: Any, **_: Any) -> None:
    request.url = _ACCOUNT_HOST.sub(r"\1", request.url)
