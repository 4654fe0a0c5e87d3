"""AWS scan wall time against moto (server mode, real boto3): A accounts x R regions, each
account with 20 security groups, 10 buckets and 5 IAM users with a key; dry run (no Kafka, no
archive), at collector concurrency 1 and 4. moto answers in ~1-5 ms where AWS takes 20-100 ms,
so this measures our own overhead per API call, not AWS's latency.

usage: .venv/bin/python bench/scan_aws_moto.py [ACCOUNTS] [REGIONS]
"""

from __future__ import annotations

import io
import logging
import sys
import time

import boto3
from moto.server import ThreadedMotoServer

from alertline.clock import utcnow
from services.scan.app import run_scan
from services.scan.settings import AwsScanSettings, ScanSettings

CREDS = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "bench"}
REGIONS = ["eu-west-1", "us-east-1", "ap-northeast-1", "us-west-2"]


def populate(url: str, account: str, regions: list[str]) -> None:
    sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1", **CREDS)
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/AlertlineScan", RoleSessionName="bench")["Credentials"]
    kw = {
        "endpoint_url": url,
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region, **kw)
        for i in range(20):
            gid = ec2.create_security_group(GroupName=f"g{i}", Description="b")["GroupId"]
            port = 22 if i % 5 == 0 else 443
            ec2.authorize_security_group_ingress(
                GroupId=gid,
                IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
                ],
            )
    s3 = boto3.client("s3", region_name="us-east-1", **kw)
    iam = boto3.client("iam", region_name="us-east-1", **kw)
    for i in range(10):
        s3.create_bucket(Bucket=f"b-{account}-{i}")
        if i == 0:
            s3.put_bucket_acl(Bucket=f"b-{account}-{i}", ACL="public-read")
    for i in range(5):
        iam.create_user(UserName=f"u{i}")
        iam.create_access_key(UserName=f"u{i}")


def main() -> None:
    n_accounts = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    n_regions = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    logging.disable(logging.WARNING)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    url = f"http://{host}:{port}"
    accounts = {f"{100000000000 + i:012d}": f"a{i}" for i in range(n_accounts)}
    regions = REGIONS[:n_regions]
    try:
        for a in accounts:
            populate(url, a, regions)
        for concurrency in (1, 4):
            settings = ScanSettings(
                aws=AwsScanSettings(
                    enabled=True, accounts=accounts, regions=regions, endpoint_url=url, concurrency=concurrency
                )
            )
            t = time.perf_counter()
            report = run_scan(
                settings, dry_run=True, out=io.StringIO(), session=boto3.Session(region_name="us-east-1", **CREDS),
                clock=utcnow, inventory=False,
            )  # fmt: skip
            dt = time.perf_counter() - t
            s = report.summary()
            print(
                f"accounts={n_accounts} regions={n_regions} concurrency={concurrency}: units={s['units']} "
                f"resources={s['resources']} findings={s['findings']} ok={s['ok']} {dt:.2f} s "
                f"({dt / s['units'] * 1000:.0f} ms/unit)"
            )
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
