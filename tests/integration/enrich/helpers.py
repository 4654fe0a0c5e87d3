"""Sample evaluated alerts and a test-sized enrich configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alertline.settings import KafkaSettings
from alertline.testing.samples import alert
from services.enrich.settings import (
    Ec2Settings,
    EnrichSettings,
    FeedSettings,
    ProbeSettings,
    RecheckSettings,
    ReputationSettings,
    ScreenshotSettings,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def decision(action: str = "ticket") -> dict[str, Any]:
    return {
        "action": action,
        "priority": "P2",
        "reason": None,
        "repository": None,
        "assignees": [],
        "labels": [],
        "auto_close": True,
        "group_key": None,
        "matched": [],
        "ruleset": "r1",
        "evaluated_at": NOW,
    }


def evaluated(i: int = 0, action: str = "ticket", **over: Any) -> dict[str, Any]:
    return {"alert": alert(i, **over), "decision": decision(action)}


def exposure_alert(i: int, address: str, ports: list[int], **over: Any) -> dict[str, Any]:
    res = [
        {
            "type": "AwsEc2Instance",
            "id": f"i-{i:08x}",
            "name": None,
            "region": "us-east-1",
            "tags": {},
            "addresses": [address],
        }
    ]
    ind = {"ips": [], "domains": [], "users": [], "ports": ports}
    return evaluated(i, resources=res, indicators=ind, **over)


def intrusion_alert(i: int, ips: list[str], **over: Any) -> dict[str, Any]:
    ind = {"ips": ips, "domains": ["c2.bad.example"], "users": ["arn:aws:iam::123456789012:user/alice"], "ports": []}
    return evaluated(
        i,
        product="guardduty",
        control_id=None,
        finding_type="UnauthorizedAccess:IAMUser/TorIPCaller",
        title="API called from a Tor exit node",
        indicators=ind,
        resources=[],
        attributes={"Service.Action.AwsApiCallAction.RemoteIpDetails.Organization.Asn": "4242"},
        **over,
    )


def settings(
    prefix: str = "t.", bootstrap: str = "127.0.0.1:19092", feeds: dict[str, str] | None = None, **over: Any
) -> EnrichSettings:
    base: dict[str, Any] = {
        "kafka": KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, partitions=3, transaction_timeout_ms=10000),
        "probe": ProbeSettings(
            allow=["127.0.0.0/8"],
            banner_wait_s=0.3,
            connect_timeout_s=1.0,
            read_timeout_s=2.0,
            probe_timeout_s=10.0,
            per_target_delay_s=0.0,
        ),
        "screenshot": ScreenshotSettings(enabled=False),
        "ec2": Ec2Settings(enabled=False),
        "reputation": ReputationSettings(
            feeds={
                n: FeedSettings(url=u, kind="tor", verdict="suspicious") if "tor" in n else FeedSettings(url=u)
                for n, u in (feeds or {}).items()
            }
        ),
        "recheck": RecheckSettings(interval_s=3600, tick_interval_s=1),
    }
    base.update(over)
    return EnrichSettings(**base)
