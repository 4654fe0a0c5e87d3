"""Real parts for the scan tests: moto in server mode (one server for "the cloud", one for the
archive bucket, so the cloud can be stopped mid-scan while the archive stays up), boto3
pointed at them, and the real Kafka broker. conftest.py re-exports the fixtures."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from alertline.avro import SingleObjectCodec
from alertline.clock import FixedClock
from alertline.settings import KafkaSettings
from alertline.testing.kafka import read_all
from services.scan.settings import ArchiveSettings, AwsScanSettings, ScanSettings

A, B = "111111111111", "222222222222"
REGION = "eu-west-1"
ARCHIVE_BUCKET = "alertline-archive"
CREDS = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "not-a-secret"}


@dataclass
class Moto:
    server: ThreadedMotoServer
    url: str

    def stop(self) -> None:
        self.server.stop()


def _start() -> Moto:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto request otherwise
    s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s.start()
    host, port = s.get_host_and_port()
    return Moto(s, f"http://{host}:{port}")


@pytest.fixture
def cloud() -> Iterator[Moto]:
    m = _start()
    # moto's backends are process-wide: start every test from an empty world.
    requests.post(f"{m.url}/moto-api/reset", timeout=10).raise_for_status()
    yield m
    try:
        m.stop()
    except Exception:  # already stopped by the test
        pass


@pytest.fixture
def archive_moto(cloud: Moto) -> Iterator[Moto]:
    """A second endpoint (same process-wide moto state) that stays up when ``cloud`` stops."""
    m = _start()
    boto3.client("s3", endpoint_url=m.url, region_name="us-east-1", **CREDS).create_bucket(Bucket=ARCHIVE_BUCKET)
    yield m
    m.stop()


def base_session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", **CREDS)


def account_clients(cloud: Moto, account: str, region: str = REGION) -> dict[str, Any]:
    """Clients acting inside ``account``: moto keeps what they create in that account."""
    sts = boto3.client("sts", endpoint_url=cloud.url, region_name="us-east-1", **CREDS)
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/AlertlineScan", RoleSessionName="setup")["Credentials"]
    kw = {
        "endpoint_url": cloud.url,
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }
    return {
        "ec2": boto3.client("ec2", region_name=region, **kw),
        "s3": boto3.client("s3", region_name="us-east-1", **kw),
        "iam": boto3.client("iam", region_name="us-east-1", **kw),
    }


def public_policy(bucket: str) -> str:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass
class World:
    """What the two mocked accounts hold; ids needed to fix things later."""

    a_web_sg: str
    b_rdp_sg: str
    a_key_id: str


def build_world(cloud: Moto) -> World:
    """Account A: SSH open to the world, a public-policy bucket, an old access key.
    Account B: RDP open to ::/0, a public-ACL bucket, EBS default encryption off.
    Both: things that look close but are fine (HTTPS open, a DB port open to 10/8, a private
    bucket, a public policy neutralised by bucket-level Block Public Access)."""
    a, b = account_clients(cloud, A), account_clients(cloud, B)
    web = a["ec2"].create_security_group(GroupName="web", Description="web")["GroupId"]
    a["ec2"].authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        ],
    )
    db = a["ec2"].create_security_group(GroupName="db", Description="db")["GroupId"]
    a["ec2"].authorize_security_group_ingress(
        GroupId=db,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
    )
    a["ec2"].enable_ebs_encryption_by_default()
    a["s3"].create_bucket(Bucket="a-public")
    a["s3"].put_bucket_policy(Bucket="a-public", Policy=public_policy("a-public"))
    a["s3"].put_bucket_tagging(Bucket="a-public", Tagging={"TagSet": [{"Key": "team", "Value": "web"}]})
    a["s3"].create_bucket(Bucket="a-private")
    a["iam"].create_user(UserName="deploy")
    key = a["iam"].create_access_key(UserName="deploy")["AccessKey"]["AccessKeyId"]

    rdp = b["ec2"].create_security_group(GroupName="jump", Description="jump")["GroupId"]
    b["ec2"].authorize_security_group_ingress(
        GroupId=rdp,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
    )
    b["s3"].create_bucket(Bucket="b-acl")
    b["s3"].put_bucket_acl(Bucket="b-acl", ACL="public-read")
    b["s3"].create_bucket(Bucket="b-blocked")
    b["s3"].put_bucket_policy(Bucket="b-blocked", Policy=public_policy("b-blocked"))
    b["s3"].put_public_access_block(
        Bucket="b-blocked",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        },
    )  # fmt: skip
    return World(web, rdp, key)


# What the shipped checks must find in build_world(): (account, check, resource name).
EXPECTED = {
    (A, "aws-sg-open-admin-port", "web"),
    (A, "aws-s3-public-bucket", "a-public"),
    (A, "aws-iam-access-key-old", None),  # name filled in by the test (user/key id)
    (A, "aws-iam-root-mfa-off", "prod"),
    (B, "aws-sg-open-admin-port", "jump"),
    (B, "aws-s3-public-bucket", "b-acl"),
    (B, "aws-ebs-default-encryption-off", f"{B} {REGION}"),
    (B, "aws-iam-root-mfa-off", "sandbox"),
}


def expected(world: World) -> set[tuple[str, str, str | None]]:
    out = set()
    for acct, check, name in EXPECTED:
        if check == "aws-iam-access-key-old":
            name = f"deploy/{world.a_key_id}"
        out.add((acct, check, name))
    return out


def later_clock() -> FixedClock:
    """120 days from now, at 10:00 UTC (so a test's few hours never cross midnight): keys
    created by the test are "old" without waiting."""
    return FixedClock((datetime.now(UTC) + timedelta(days=120)).replace(hour=10, minute=0, second=0, microsecond=0))


def settings_for(cloud: Moto, archive: Moto, kafka: KafkaSettings, **aws: Any) -> ScanSettings:
    return ScanSettings(
        kafka=kafka,
        aws=AwsScanSettings(
            enabled=True,
            accounts={A: "prod", B: "sandbox"},
            regions=[REGION],
            endpoint_url=cloud.url,
            concurrency=1,
            max_attempts=2,
            connect_timeout_s=2,
            read_timeout_s=10,
            **aws,
        ),
        archive=ArchiveSettings(bucket=ARCHIVE_BUCKET, endpoint_url=archive.url, region="us-east-1"),
        state_read_timeout_s=30,
    )


def alerts(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    codec = SingleObjectCodec()
    return [
        ((m.key() or b"").decode(), codec.decode("alert", m.value())) for m in read_all(bootstrap, topic, timeout=20)
    ]


def key_of(a: dict[str, Any]) -> tuple[str, str, str | None]:
    return a["account"], a["control_id"], a["resources"][0]["name"]
