"""Bundled sample deliveries for the demo and the end-to-end tests (written from the official
formats; see tests/fixtures/deliveries/*/README.md for the documentation they follow)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
# A public address (reputation lookups only check public ones); nothing ever connects to it.
# It replaces the documentation address in tor-api-call.json, and the local Tor list names it.
TOR_IP = "185.220.101.47"
_FIXTURE_TOR_IP = "198.51.100.200"


def load(name: str) -> Any:
    return json.loads((HERE / name).read_text())


def _later(ts: str, minutes: int) -> str:
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def guardduty_port_probe(port: int) -> dict[str, Any]:
    """A GuardDuty port probe against an instance whose public address is a local web server."""
    d = load("port-probe.json")
    inst = d["detail"]["resource"]["instanceDetails"]
    for nic in inst["networkInterfaces"]:
        nic["publicIp"] = "127.0.0.1"
        nic["publicDnsName"] = "localhost"
    for p in d["detail"]["service"]["action"]["portProbeAction"]["portProbeDetails"]:
        p["localPortDetails"] = {"port": port, "portName": "HTTP"}
    return d  # type: ignore[no-any-return]


def guardduty_tor_call() -> dict[str, Any]:
    return json.loads((HERE / "tor-api-call.json").read_text().replace(_FIXTURE_TOR_IP, TOR_IP))  # type: ignore[no-any-return]


def securityhub_open_ports() -> dict[str, Any]:
    return load("ec2-19-open-ports.json")  # type: ignore[no-any-return]


def scc_open_firewall(state: str = "ACTIVE", minutes_later: int = 0) -> dict[str, Any]:
    d = load("v1-open-firewall-active.json")
    f = d["finding"]
    f["state"] = state
    for k in ("eventTime", "updateTime"):
        if k in f:
            f[k] = _later(f[k], minutes_later)
    return d  # type: ignore[no-any-return]


def defender_brute_force(status: str | None = None, minutes_later: int = 0) -> dict[str, Any]:
    d = copy.deepcopy(load("flat-ssh-brute-force.json"))
    if status:
        d["Status"] = status
    if minutes_later:
        for k in ("TimeGenerated", "ProcessingEndTime"):
            if k in d:
                d[k] = _later(d[k], minutes_later)
    return d  # type: ignore[no-any-return]


def eventbridge_to_sqs_body(event: dict[str, Any]) -> str:
    """EventBridge delivers the event itself as the SQS message body."""
    return json.dumps(event)
