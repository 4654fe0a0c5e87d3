"""Chaos: a scripted mix through the four services as separate processes while a driver
SIGKILLs random services, the broker restarts once, and the GitHub fake injects 5xx (some
after the write happened), secondary limits and latency. At the end GitHub is compared with
a model computed from the input: exactly one issue per identity, in the right state, no
comment twice, every raw delivery archived.

usage (by hand, a larger run): .venv/bin/python -m devtools.chaos --per-source 40 --kills 40
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devtools import samples
from devtools.stack import SERVICES, Stack

MARKER = re.compile(r"<!-- alertline:v1 identity=(\S+)")
BASE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _ts(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Event:
    source: str  # sqs | pubsub | eventhubs
    body: dict[str, Any]
    key: str  # (source kind, index): the model's identity
    active: bool


def securityhub(i: int, active: bool, minute: int) -> Event:
    d = copy.deepcopy(samples.securityhub_open_ports())
    f = d["detail"]["findings"][0]
    f["Id"] = f["Id"].rsplit("/", 1)[0] + f"/chaos-{i:05d}"
    f["UpdatedAt"] = _ts(minute)
    f["RecordState"] = "ACTIVE" if active else "ARCHIVED"
    return Event("sqs", d, f"securityhub-{i}", active)


def guardduty(i: int, minute: int) -> Event:
    d = copy.deepcopy(samples.load("port-probe.json"))
    g = d["detail"]
    fid = hashlib.md5(f"chaos-{i}".encode()).hexdigest()  # noqa: S324 - an id, not security
    g["arn"] = g["arn"].replace(g["id"], fid)
    g["id"] = fid
    g["updatedAt"] = _ts(minute)
    g["service"]["count"] = 17 + minute
    return Event("sqs", d, f"guardduty-{i}", True)


def scc(i: int, active: bool, minute: int) -> Event:
    d = copy.deepcopy(samples.load("v1-open-firewall-active.json"))
    f = d["finding"]
    f["name"] = f["name"].rsplit("/", 1)[0] + f"/chaos{i:05d}"
    f["state"] = "ACTIVE" if active else "INACTIVE"
    f["eventTime"] = _ts(minute)
    return Event("pubsub", d, f"scc-{i}", active)


def defender(i: int, active: bool, minute: int) -> Event:
    d = copy.deepcopy(samples.load("flat-ssh-brute-force.json"))
    d["SystemAlertId"] = f"2517238401236549999_{i:08x}-7d3b-4c58-9a2e-5b4d8c7f1e06"
    d["Status"] = "New" if active else "Resolved"
    d["TimeGenerated"] = _ts(minute)
    d["ProcessingEndTime"] = _ts(minute)
    return Event("eventhubs", d, f"defender-{i}", active)


def identity_of(e: Event) -> str:
    """The identity Alertline gives the event's finding (the model's key)."""
    from services.ingest.normalize import RawLocation, normalize

    result = normalize(json.dumps(e.body).encode(), raw=RawLocation("mem://", ""), received_at=BASE, hint=None)
    (alert,) = result.alerts
    return alert["identity"]


def scenario(per_source: int, rng: random.Random) -> list[list[Event]]:
    """Three phases (the pipeline settles between them, so per-identity order is known):
    new findings; recurrences and resolutions; reopenings of some resolved ones."""
    new, second, third = [], [], []
    for i in range(per_source):
        new += [securityhub(i, True, 0), scc(i, True, 0), defender(i, True, 0), guardduty(i, 0)]
        for make in (securityhub, scc, defender):
            roll = rng.random()
            if roll < 0.45:
                second.append(make(i, False, 30))  # resolved at the source
                if rng.random() < 0.3:
                    third.append(make(i, True, 60))  # and back again
            elif roll < 0.75:
                second.append(make(i, True, 30))  # a recurrence while open
        if rng.random() < 0.5:
            second.append(guardduty(i, 30))
    for phase in (new, second, third):
        rng.shuffle(phase)
    return [new, second, third]


@dataclass
class Report:
    deliveries: int = 0
    identities: int = 0
    issues: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    broker_restarts: int = 0
    faults_injected: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong_state: list[str] = field(default_factory=list)
    repeated_comments: list[str] = field(default_factory=list)
    archived: int = 0
    seconds: float = 0.0

    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong_state or self.repeated_comments) and (
            self.archived >= self.distinct_deliveries
        )

    distinct_deliveries: int = 0

    def lines(self) -> list[str]:
        return [
            f"deliveries sent: {self.deliveries} ({self.distinct_deliveries} distinct), identities: {self.identities}",
            f"kills: {sum(self.kills.values())} {dict(self.kills)}; broker restarts: {self.broker_restarts}; "
            f"GitHub faults injected: {self.faults_injected}",
            f"issues: {self.issues}; lost: {len(self.lost)}; duplicated: {len(self.duplicated)}; "
            f"wrong state: {len(self.wrong_state)}; repeated comments: {len(self.repeated_comments)}",
            f"raw deliveries archived: {self.archived}/{self.distinct_deliveries}; took {self.seconds:.0f}s",
        ]


class Chaos:
    def __init__(self, stack: Stack, rng: random.Random, restart_broker: Callable[[], None] | None) -> None:
        self.stack = stack
        self.rng = rng
        self.restart_broker = restart_broker
        self.report = Report()
        self._stop = threading.Event()

    def _inject(self) -> None:
        gh = self.stack.github
        kind = self.rng.choice(["error", "error-after", "secondary", "latency"])
        if kind == "error":
            gh.inject("POST", r"/issues", status=self.rng.choice([500, 502, 503]))
        elif kind == "error-after":
            gh.inject("POST", r"/issues$", status=502, after_write=True)
        elif kind == "secondary":
            gh.inject("POST", r".*", kind="secondary", status=429, retry_after=1)
        else:
            gh.inject("GET", r".*", kind="latency", delay_s=0.3, count=5)
        self.report.faults_injected += 1

    def _kill_loop(self, every: tuple[float, float], kills: int, broker_at: int | None) -> None:
        n = 0
        while not self._stop.wait(self.rng.uniform(*every)) and n < kills:
            if broker_at is not None and n == broker_at and self.restart_broker:
                self.restart_broker()
                self.report.broker_restarts += 1
            name = self.rng.choice(SERVICES)
            self.stack.restart(name, kill=True)
            self.report.kills[name] += 1
            self._inject()
            n += 1

    def run(self, phases: list[list[Event]], kills: int, every: tuple[float, float] = (1.0, 3.0),
            settle_timeout: float = 240) -> Report:  # fmt: skip
        started = time.monotonic()
        bodies = set()
        final: dict[str, bool] = {}
        killer = threading.Thread(target=self._kill_loop, args=(every, kills, kills // 2), daemon=True)
        killer.start()
        for phase in phases:
            for e in phase:
                {
                    "sqs": self.stack.send_sqs,
                    "pubsub": self.stack.publish_pubsub,
                    "eventhubs": self.stack.send_eventhub,
                }[e.source](e.body)
                bodies.add(json.dumps(e.body, sort_keys=True))
                final[identity_of(e)] = e.active
                self.report.deliveries += 1
            expected = len(final)
            self.stack.wait_for(lambda n=expected: self._count() >= n, settle_timeout, "issues for every identity")
            self.stack.wait_for(self.stack.settled, settle_timeout, "the pipeline to settle")
        # Let the killer finish its quota, then let everything settle with no chaos.
        killer.join(timeout=max(0.0, kills * every[1]))
        self._stop.set()
        self.stack.github.clear_faults()
        for p in self.stack.procs.values():
            if not p.alive():
                p.start()
        time.sleep(2)
        self.stack.wait_for(self.stack.settled, settle_timeout, "the pipeline to settle after the chaos")
        self._wait_states(final, settle_timeout)
        self._judge(final)
        self.report.distinct_deliveries = len(bodies)
        self.report.archived = self._archived()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _count(self) -> int:
        return len(self.stack.issues())

    def _by_identity(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for i in self.stack.issues():
            m = MARKER.search(i.body or "")
            if m:
                out.setdefault(m[1], []).append(i)
        return out

    def _wait_states(self, final: dict[str, bool], timeout: float) -> None:
        want_open = sum(final.values())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            issues = self.stack.issues()
            if sum(i.state == "open" for i in issues) == want_open and len(issues) >= len(final):
                return
            time.sleep(1)

    def _judge(self, final: dict[str, bool]) -> None:
        issues = self._by_identity()
        self.report.identities = len(final)
        self.report.issues = sum(len(v) for v in issues.values())
        self.report.duplicated = [k for k, v in issues.items() if len(v) > 1]
        self.report.lost = [k for k in final if k not in issues]
        for k, active in final.items():
            for i in issues.get(k, []):
                if (i.state == "open") != active:
                    self.report.wrong_state.append(f"{k} #{i.number}: {i.state}, want {'open' if active else 'closed'}")
        for k, v in issues.items():
            for i in v:
                c = Counter(x.body for x in i.comments)
                if any(n > 1 for n in c.values()):
                    self.report.repeated_comments.append(f"{k} #{i.number}")

    def _archived(self) -> int:
        n = 0
        for page in self.stack.s3.get_paginator("list_objects_v2").paginate(Bucket=self.stack.bucket):
            n += len(page.get("Contents", []))
        return n


def chaos_env() -> dict[str, dict[str, str]]:
    """Settings that make the chaos visible in a short run."""
    return {
        "ticket": {
            "ALERTLINE_TICKET__STORM_ENABLED": "false",
            "ALERTLINE_GITHUB__WRITES_PER_MINUTE": "2000",
            "ALERTLINE_GITHUB__WRITES_PER_HOUR": "20000",
        },
        "enrich": {"ALERTLINE_SCREENSHOT__ENABLED": "false"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-source", type=int, default=40)
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=29392, help="Port of the chaos run's own broker.")
    args = ap.parse_args()
    from alertline.kafka.local import LocalKafka

    work = Path(tempfile.mkdtemp(prefix="alertline-chaos-"))
    broker = LocalKafka(work / "kafka", port=args.port, controller_port=args.port + 1)
    broker.up()
    stack = Stack(work, bootstrap=broker.bootstrap, prefix="chaos.", service_env=chaos_env())
    rng = random.Random(args.seed)

    def restart_broker() -> None:
        broker.kill()
        time.sleep(3)
        broker.up()

    try:
        stack.start_infrastructure(print)
        stack.start_services(print)
        report = Chaos(stack, rng, restart_broker).run(scenario(args.per_source, rng), args.kills)
        print("\n".join(report.lines()))
        sys.exit(0 if report.ok() else 1)
    finally:
        stack.stop()
        broker.down()


if __name__ == "__main__":
    main()
