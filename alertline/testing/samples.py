"""Sample records for tests and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def alert(i: int = 0, **over: Any) -> dict[str, Any]:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    a: dict[str, Any] = {
        "identity": f"id-{i:08d}",
        "source_id": f"arn:aws:securityhub:us-east-1:123456789012:finding/{i}",
        "revision": f"rev-{i}",
        "provider": "aws",
        "product": "securityhub",
        "account": "123456789012",
        "account_name": None,
        "organization": None,
        "region": "us-east-1",
        "resources": [
            {
                "type": "AwsEc2SecurityGroup",
                "id": f"sg-{i:08x}",
                "name": None,
                "region": "us-east-1",
                "tags": {"team": "payments"},
                "addresses": [],
            }
        ],
        "title": "EC2.19 Security groups should not allow unrestricted access to ports with high risk",
        "description": "This control checks whether unrestricted incoming traffic is allowed.",
        "finding_type": "Software and Configuration Checks/Industry and Regulatory Standards",
        "severity": {"label": "high", "score": 70, "source_label": "HIGH", "source_score": 70.0},
        "status": "active",
        "status_raw": {"RecordState": "ACTIVE", "Workflow.Status": "NEW", "Compliance.Status": "FAILED"},
        "first_seen": now,
        "updated_at": now,
        "updated_at_raw": "2026-11-23T10:00:00Z",
        "received_at": now,
        "clock_skew": False,
        "indicators": {"ips": [], "domains": [], "users": [], "ports": [22, 3389]},
        "control_id": "EC2.19",
        "console_url": None,
        "raw": {"uri": "s3://alertline-archive/raw/2026/11/23/abc.json", "sha256": "ab" * 32, "index": 0},
        "attributes": {"GeneratorId": "security-control/EC2.19"},
        "labels": {},
    }
    a.update(over)
    return a
