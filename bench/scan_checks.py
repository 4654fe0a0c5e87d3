"""Scan domain throughput: how long the checks and the reconciliation take for a large unit.

(a) evaluate: N synthetic security groups (10% with an admin port open to the internet)
    against every shipped check;
(b) reconcile + alert building for the same findings, first scan (all new) and an unchanged
    re-scan (nothing to publish);
(c) reading a Cloud Asset Inventory export of N firewall lines.
No broker or cloud: this is the CPU a scan spends per unit, next to its API calls.

usage: .venv/bin/python bench/scan_checks.py [N]
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from services.scan.checks import default_dir, load_checks
from services.scan.collectors import gcp
from services.scan.domain import Collected, Unit, evaluate, reconcile

UNIT = Unit("aws:111111111111:eu-west-1", "aws", "111111111111", "eu-west-1")
RAW = {"uri": "s3://a/raw/scan/x.json", "sha256": "00" * 32, "index": 0}


def sg(i: int) -> dict[str, Any]:
    arn = f"arn:aws:ec2:eu-west-1:111111111111:security-group/sg-{i:08x}"
    open_port = 22 if i % 10 == 0 else 443
    rules = [
        {"name": None, "direction": "ingress", "action": "allow", "protocol": "tcp", "from_port": p, "to_port": p,
         "sources": src, "priority": None, "disabled": False}
        for p, src in ((open_port, ["0.0.0.0/0"]), (5432, ["10.0.0.0/8"]), (8080, ["192.168.0.0/16"]))
    ]  # fmt: skip
    return {
        "provider": "aws", "kind": "AwsEc2SecurityGroup", "type": "AwsEc2SecurityGroup", "id": arn, "key": arn,
        "name": f"sg-{i}", "account": "111111111111", "region": "eu-west-1", "tags": {"team": "x"},
        "addresses": [], "config": {}, "facts": {"group_id": f"sg-{i:08x}", "vpc_id": "vpc-1", "rules": rules},
    }  # fmt: skip


def firewall_line(i: int) -> bytes:
    return json.dumps({
        "name": f"//compute.googleapis.com/projects/p{i % 50}/global/firewalls/fw-{i}",
        "asset_type": "compute.googleapis.com/Firewall",
        "resource": {"version": "v1", "discovery_name": "Firewall", "location": "global",
                     "parent": f"//cloudresourcemanager.googleapis.com/projects/{i % 50}",
                     "data": {"name": f"fw-{i}", "direction": "INGRESS", "priority": 1000,
                              "sourceRanges": ["0.0.0.0/0"] if i % 10 == 0 else ["10.0.0.0/8"],
                              "allowed": [{"IPProtocol": "tcp", "ports": ["22", "443"]}]}},
        "ancestors": [f"projects/{i % 50}", "organizations/1"],
    }).encode()  # fmt: skip


def timed(label: str, n: int, fn: Any) -> Any:
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    print(f"{label:<44} {n:>8} items  {dt * 1000:9.1f} ms  {n / dt:>10.0f} /s")
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    checks = load_checks([default_dir()])
    docs = [sg(i) for i in range(n)]
    findings = timed("evaluate (all checks, security groups)", n, lambda: evaluate(docs, checks))
    c = Collected(UNIT, resources=docs, covered={"AwsEc2SecurityGroup"})  # type: ignore[arg-type]
    now = datetime.now(UTC)

    def rec(prior: dict[str, Any]) -> Any:
        return reconcile(c, findings, prior, checks, now=now, raw_for=lambda d: RAW, unit_raw=RAW)  # type: ignore[arg-type, return-value]

    plan = timed(f"reconcile, first scan ({len(findings)} new)", len(findings), lambda: rec({}))
    again = timed("reconcile, unchanged re-scan", len(findings), lambda: rec(plan.keep))
    assert len(plan.publish) == len(findings) and again.publish == []
    body = b"\n".join(firewall_line(i) for i in range(n))
    known = {k for ch in checks if ch.provider == "gcp" for k in ch.kinds}
    got = timed(
        f"CAI export parse ({len(body) / 1e6:.1f} MB)",
        n,
        lambda: gcp.parse_export(Unit("gcp-cai:x", "gcp"), [("x", body)], known),
    )
    timed("evaluate (CAI firewalls)", n, lambda: evaluate(got.resources, checks))


if __name__ == "__main__":
    main()
