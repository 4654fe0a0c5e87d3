"""Who is behind a security group: its network interfaces and their public addresses (boto3)."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_SG = re.compile(r"(sg-[0-9a-f]{8,17})\b")
_ARN = re.compile(r"^arn:aws[\w-]*:ec2:(?P<region>[\w-]*):(?P<account>\d*):security-group/(?P<id>sg-[0-9a-f]+)$")


class ResolveError(Exception):
    """The cloud API could not tell us who uses a group (denied, unreachable, throttled)."""


@dataclass(frozen=True)
class GroupRef:
    group_id: str
    region: str | None
    account: str | None


@dataclass(frozen=True)
class Host:
    """One address behind a group, with where it came from."""

    address: str
    context: tuple[tuple[str, str], ...]


def group_ref(resource_type: str, resource_id: str, region: str | None, account: str | None) -> GroupRef | None:
    """A security group reference from an alert resource (id, ARN or type), else None."""
    m = _ARN.match(resource_id)
    if m:
        return GroupRef(m["id"], m["region"] or region, m["account"] or account)
    if resource_type == "AwsEc2SecurityGroup" or resource_id.startswith("sg-"):
        sg = _SG.search(resource_id)
        if sg:
            return GroupRef(sg.group(1), region, account)
    return None


@dataclass(frozen=True)
class Resolution:
    group: GroupRef
    hosts: list[Host]
    interfaces: int


@dataclass(frozen=True)
class Ec2Config:
    endpoint_url: str | None = None
    default_region: str = "us-east-1"
    role_arn_template: str | None = None  # e.g. arn:aws:iam::{account}:role/alertline-enrich
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_interfaces: int = 200
    cache_ttl_s: float = 60.0  # a group's interfaces, reused across the alerts of a burst


class Ec2Resolver:
    def __init__(self, cfg: Ec2Config, session: boto3.session.Session | None = None) -> None:
        self.cfg = cfg
        self._session = session or boto3.session.Session()
        self._botocfg = Config(
            connect_timeout=cfg.connect_timeout_s, read_timeout=cfg.read_timeout_s, retries={"max_attempts": 3}
        )
        self._lock = threading.Lock()
        # Held while a boto3 client is built. A client parses its service model (EC2's: about
        # 30 MB of Python objects); the engine's 16 planning threads racing on a cold batch each
        # parsed it at once, and the process kept the memory: 384 MB peak RSS instead of 118 MB
        # in the 10,000-finding burst (docs/performance.md).
        self._build_lock = threading.Lock()
        self._creds: dict[str, tuple[float, dict[str, str]]] = {}
        self._clients: dict[tuple[str, str | None], tuple[float, Any]] = {}
        self._results: dict[GroupRef, tuple[float, Resolution]] = {}
        self._inflight: dict[GroupRef, Future[Resolution]] = {}
        self._sts: Any = None

    def _credentials(self, account: str | None) -> dict[str, str]:
        if not self.cfg.role_arn_template or not account:
            return {}
        with self._lock:
            hit = self._creds.get(account)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        with self._build_lock:
            if self._sts is None:
                self._sts = self._session.client("sts", endpoint_url=self.cfg.endpoint_url, config=self._botocfg)
            sts = self._sts
        arn = self.cfg.role_arn_template.format(account=account)
        c = sts.assume_role(RoleArn=arn, RoleSessionName="alertline-enrich", DurationSeconds=3600)["Credentials"]
        creds = {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }
        with self._lock:
            self._creds[account] = (time.monotonic() + 3000, creds)
        return creds

    def _client(self, region: str, account: str | None) -> Any:
        """One EC2 client per region and account (a boto3 client costs milliseconds to build),
        renewed with the assumed role's credentials."""
        key = (region, account if self.cfg.role_arn_template else None)
        with self._lock:
            hit = self._clients.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        creds = self._credentials(account)
        with self._build_lock:
            with self._lock:  # built by another thread while this one waited
                hit = self._clients.get(key)
                if hit and hit[0] > time.monotonic():
                    return hit[1]
            client = self._session.client(
                "ec2", region_name=region, endpoint_url=self.cfg.endpoint_url, config=self._botocfg, **creds
            )
            with self._lock:
                self._clients[key] = (time.monotonic() + 2400, client)  # inside the credentials' 3000 s
        return client

    def resolve(self, ref: GroupRef) -> Resolution:
        """Public addresses of every network interface using the group (instances, load balancers, ...).
        A success is reused for ``cache_ttl_s``: a burst of alerts about one group costs one call,
        and threads asking about a group already being described wait for that call."""
        with self._lock:
            hit = self._results.get(ref)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            running = self._inflight.get(ref)
            if running is None:
                mine: Future[Resolution] = Future()
                self._inflight[ref] = mine
        if running is not None:
            return running.result()  # the owner always settles it (bounded by the client timeouts)
        try:
            res = self._describe(ref)
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(res)
            if self.cfg.cache_ttl_s > 0:
                with self._lock:
                    if len(self._results) >= 10_000:
                        self._results.clear()
                    self._results[ref] = (time.monotonic() + self.cfg.cache_ttl_s, res)
            return res
        finally:
            with self._lock:
                self._inflight.pop(ref, None)

    def _describe(self, ref: GroupRef) -> Resolution:
        region = ref.region or self.cfg.default_region
        try:
            ec2 = self._client(region, ref.account)
            pages = ec2.get_paginator("describe_network_interfaces").paginate(
                Filters=[{"Name": "group-id", "Values": [ref.group_id]}]
            )
            enis: list[dict[str, Any]] = []
            for page in pages:
                enis.extend(page.get("NetworkInterfaces", []))
                if len(enis) >= self.cfg.max_interfaces:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise ResolveError(f"describe_network_interfaces for {ref.group_id} in {region}: {exc}") from exc
        out: dict[str, Host] = {}
        for eni in enis:
            ctx = [("security_group", ref.group_id), ("network_interface", eni.get("NetworkInterfaceId", ""))]
            instance = (eni.get("Attachment") or {}).get("InstanceId")
            if instance:
                ctx.append(("instance", instance))
            if eni.get("InterfaceType") and eni["InterfaceType"] != "interface":
                ctx.append(("interface_type", eni["InterfaceType"]))
            addrs = [(eni.get("Association") or {}).get("PublicIp")]
            addrs += [(p.get("Association") or {}).get("PublicIp") for p in eni.get("PrivateIpAddresses", [])]
            addrs += [v6.get("Ipv6Address") for v6 in eni.get("Ipv6Addresses", [])]
            for a in addrs:
                if a and a not in out:
                    out[a] = Host(a, tuple(ctx))
        return Resolution(ref, list(out.values()), len(enis))
