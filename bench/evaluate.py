"""Benchmark of the evaluate service: 200 realistic rules and a realistic alert mix.

1. The decision function alone (index + compiled predicates + decision record), one core.
2. The whole service through the real broker, against the runtime's passthrough (decode an
   alert, produce it back) measured in the same run on the same input.

usage: .venv/bin/python -m bench.evaluate [--alerts 50000] [--service-alerts 20000]
       [--bootstrap 127.0.0.1:19092] [--skip-service]
Goals: 20,000 decisions/s per core; service rate >= 0.5 x passthrough.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alertline.testing.samples import alert

RNG_SEED = 42
N_ACCOUNTS = 100
PRODUCTS = [
    ("securityhub", 55),
    ("guardduty", 20),
    ("scc", 10),
    ("defender", 6),
    ("inspector", 5),
    ("access-analyzer", 4),
]
SEVERITIES = [("informational", 10), ("low", 30), ("medium", 35), ("high", 20), ("critical", 5)]
CONTROLS = [
    f"{family}.{i}"
    for family, count in (("EC2", 59), ("S3", 19), ("IAM", 27), ("RDS", 29), ("Lambda", 5), ("CloudTrail", 7))
    for i in range(1, count + 1)
]
GD_TYPES = [
    "Recon:EC2/PortProbeUnprotectedPort", "Recon:EC2/Portscan", "UnauthorizedAccess:IAMUser/TorIPCaller",
    "UnauthorizedAccess:EC2/SSHBruteForce", "UnauthorizedAccess:EC2/RDPBruteForce", "CryptoCurrency:EC2/BitcoinTool.B",
    "Trojan:EC2/DNSDataExfiltration", "Backdoor:EC2/C&CActivity.B", "Policy:IAMUser/RootCredentialUsage",
    "Stealth:IAMUser/CloudTrailLoggingDisabled", "Discovery:S3/MaliciousIPCaller",
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", "Impact:EC2/WinRMBruteForce",
    "PenTest:IAMUser/KaliLinux", "Recon:IAMUser/MaliciousIPCaller", "Persistence:IAMUser/AnomalousBehavior",
]  # fmt: skip
SCC_TYPES = [
    "OPEN_FIREWALL", "OPEN_SSH_PORT", "OPEN_RDP_PORT", "PUBLIC_BUCKET_ACL", "MFA_NOT_ENFORCED", "SQL_PUBLIC_IP",
    "PUBLIC_IP_ADDRESS", "OVER_PRIVILEGED_SERVICE_ACCOUNT_USER", "Persistence: IAM Anomalous Grant",
    "Execution: Cryptocurrency Mining Hash Match", "FLOW_LOGS_DISABLED", "WEAK_SSL_POLICY",
]  # fmt: skip
DEFENDER_TYPES = [
    f"VM_{n}" for n in ("SuspectedBruteForce", "SshBruteForce", "CryptoMiner", "MaliciousIP", "Kerberoast")
]
SCORES = {"informational": 0, "low": 30, "medium": 50, "high": 70, "critical": 90}
INSPECTOR_TYPES = ["Package Vulnerability", "Network Reachability", "Code Vulnerability"]


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def accounts() -> list[str]:
    return [f"{100000000000 + i * 7919:012d}" for i in range(N_ACCOUNTS)]


# ---------------------------------------------------------------------------- rules
def write_rules(directory: Path, rng: random.Random) -> int:
    """Write 200 rules and suppressions spread over files as a real team would."""
    accts = accounts()
    (directory / "lookups").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, a in enumerate(accts[:80]):
        env = ("production", "staging", "sandbox", "dev")[i % 4]
        lines.append(f'"{a}": {{team: team{i % 12}, env: {env}, repository: acme/team{i % 12}-security, '
                     f"assignees: [oncall{i % 12}]}}")  # fmt: skip
    (directory / "lookups" / "accounts.yaml").write_text("\n".join(lines) + "\n")
    (directory / "lookups" / "tor-exit-nodes.yaml").write_text(
        "\n".join(f'- "198.51.100.{i}"' for i in range(1, 120)) + "\n"
    )
    (directory / "lookups" / "known-scanners.csv").write_text(
        "ip,owner\n" + "\n".join(f"203.0.113.{i},secops" for i in range(1, 20)) + "\n"
    )
    n = 0
    files: dict[str, list[str]] = {"00-suppressions": [], "10-threats": [], "20-noise": [], "30-controls": [],
                                   "40-detectors": [], "50-misc": [], "80-routing": []}  # fmt: skip
    sup = files["00-suppressions"]
    for i in range(10):
        a = rng.choice(accts)
        c = rng.choice(CONTROLS)
        until = "2027-06-30T00:00:00Z" if i % 3 else "2026-01-01T00:00:00Z"
        sup.append(f"""  - id: sup-{i}
    match: {{all: [{{field: account, equals: "{a}"}}, {{field: control_id, equals: {c}}}]}}
    until: {until}
    by: user{i}@acme.example
    why: accepted risk RISK-{100 + i}""")
        n += 1
    t = files["10-threats"]
    t.append("""  - id: tor
    description: Tor callers
    owner: secops
    match: {any: [{field: finding_type, glob: "*/TorIPCaller"}, {field: indicators.ips, in_lookup: tor-exit-nodes}]}
    actions: {keep: tor, priority: P1, labels: [tor]}""")
    t.append("""  - id: creds
    description: credential theft
    owner: secops
    match: [{field: product, equals: guardduty}, {field: finding_type, glob: "*InstanceCredentialExfiltration*"}]
    actions: {keep: creds, priority: P1, labels: [credentials]}""")
    n += 2
    for i, ft in enumerate(GD_TYPES):
        for j, sev in enumerate((["high", "critical"], ["low", "medium"])):
            t.append(f"""  - id: gd-{i}-{j}
    description: GuardDuty {ft}
    owner: secops
    match: [{{field: product, equals: guardduty}}, {{field: finding_type, equals: "{ft}"}}, {{field: severity.label, in: {sev}}}]
    actions: {{priority: P{1 + j * 2}, labels: ["gd:{ft.split(":")[0].lower()}"]}}""")  # noqa: E501
            n += 1
    noise = files["20-noise"]
    noise.append("""  - id: scanners
    description: our scanners
    owner: secops
    match: [{field: product, in: [guardduty, scc, defender]}, {field: indicators.ips, in_lookup: known-scanners, every: true}]
    actions: {drop: own scanner}""")  # noqa: E501
    n += 1
    for i in range(20):
        c = rng.choice(CONTROLS)
        noise.append(f"""  - id: noise-{i}
    description: accepted control {c} in sandbox
    owner: platform
    match: {{all: [{{field: control_id, equals: {c}}}, {{field: severity.label, in: [informational, low, medium]}}]}}
    expr: 'lookup("accounts", account).env in ["sandbox", "dev"]'
    actions: {{drop: "{c} accepted outside production"}}""")
        n += 1
    ctl = files["30-controls"]
    for i, c in enumerate(CONTROLS[:90]):
        ports = (
            "{field: indicators.ports, in: [22, 3389]}" if c.startswith("EC2.1") else "{field: status, equals: active}"
        )
        ctl.append(f"""  - id: ctl-{i}
    description: Security Hub control {c}
    owner: secops
    match: {{all: [{{field: control_id, equals: "{c}"}}, {ports}]}}
    actions: {{priority: P{1 + i % 4}, labels: ["control:{c}"], group_key: "{c}/${{account}}"}}""")
        n += 1
    det = files["40-detectors"]
    for i, ft in enumerate(SCC_TYPES + DEFENDER_TYPES + INSPECTOR_TYPES):
        prod = "scc" if ft in SCC_TYPES else ("defender" if ft in DEFENDER_TYPES else "inspector")
        det.append(f"""  - id: det-{i}
    description: "{prod} {ft}"
    owner: secops
    match: {{all: [{{field: product, equals: {prod}}}, {{field: finding_type, equals: "{ft}"}}]}}
    actions: {{priority: P{1 + i % 3}, labels: ["{prod}"]}}""")
        n += 1
    misc = files["50-misc"]
    while n < 198:
        k = n % 5
        if k == 0:
            body = f"match: {{field: title, regex: '(?i)\\b(test|canary){n}\\b'}}\n    actions: {{labels: [canary]}}"
        elif k == 1:
            body = f"match: {{field: resources.tags.env, equals: experiment{n}}}\n    actions: {{priority: P4}}"
        elif k == 2:
            body = (f"expr: 'product == \"securityhub\" and severity.score >= {60 + n % 30} and "
                    f"in_lookup(\"accounts\", account)'\n    actions: {{labels: [sev{n}]}}")  # fmt: skip
        elif k == 3:
            body = f"match: {{field: indicators.ips, cidr: [10.{n}.0.0/16]}}\n    actions: {{labels: [internal]}}"
        else:
            body = (f"match: {{all: [{{field: provider, equals: azure}}, {{field: region, glob: 'west*{n}'}}]}}\n"
                    f"    actions: {{assignees: [azure{n}]}}")  # fmt: skip
        misc.append(f"  - id: misc-{n}\n    description: misc {n}\n    owner: secops\n    {body}")
        n += 1
    route = files["80-routing"]
    route.append("""  - id: route
    description: route by account owner
    owner: secops
    match: {field: account, in_lookup: accounts}
    actions:
      repository: "${lookup('accounts', account).repository}"
      assignees: ["${lookup('accounts', account).assignees}"]
      labels: ["team:${lookup('accounts', account).team}"]""")
    route.append("""  - id: unknown-owner
    description: unknown owner
    owner: secops
    match: {not: {field: account, in_lookup: accounts}}
    actions: {labels: [owner:unknown]}""")
    n += 2
    for name, items in files.items():
        key = "suppressions" if name.startswith("00") else "rules"
        (directory / f"{name}.yaml").write_text(f"{key}:\n" + "\n".join(items) + "\n")
    return n


# ---------------------------------------------------------------------------- alerts
def alert_mix(n: int, rng: random.Random) -> list[dict[str, Any]]:
    accts = accounts()
    out = []
    for i in range(n):
        product = _pick(rng, PRODUCTS)
        sev = _pick(rng, SEVERITIES)
        over: dict[str, Any] = {
            "identity": f"bench:{i:08d}",
            "revision": f"r{i}",
            "product": product,
            "account": rng.choice(accts),
            "severity": {"label": sev, "score": SCORES[sev], "source_label": sev.upper(), "source_score": 1.0},
            "indicators": {"ips": [], "domains": [], "users": [], "ports": []},
            "control_id": None,
            "finding_type": None,
        }  # fmt: skip
        if product == "securityhub":
            over["control_id"] = rng.choice(CONTROLS)
            over["title"] = f"{over['control_id']} control failed"
            if over["control_id"].startswith("EC2."):
                over["indicators"]["ports"] = rng.sample([22, 80, 443, 3389, 5432], k=rng.randint(0, 2))
        elif product == "guardduty":
            over["finding_type"] = rng.choice(GD_TYPES)
            over["title"] = over["finding_type"]
            r = rng.random()
            ip = (f"198.51.100.{rng.randint(1, 250)}" if r < 0.1 else f"203.0.113.{rng.randint(1, 40)}" if r < 0.3
                  else f"192.0.2.{rng.randint(1, 250)}")  # fmt: skip
            over["indicators"]["ips"] = [ip]
            over["indicators"]["ports"] = [rng.choice([22, 3389, 80, 8080])]
        elif product == "scc":
            over["provider"] = "gcp"
            over["finding_type"] = rng.choice(SCC_TYPES)
            over["account"] = f"acme-project-{rng.randint(1, 60)}"
            over["title"] = over["finding_type"]
        elif product == "defender":
            over["provider"] = "azure"
            over["finding_type"] = rng.choice(DEFENDER_TYPES)
            over["region"] = rng.choice(["westeurope", "eastus"])
            over["indicators"]["ips"] = [f"192.0.2.{rng.randint(1, 250)}"]
        else:
            over["finding_type"] = rng.choice(INSPECTOR_TYPES)
        a = alert(i, **over)
        a["resources"][0]["tags"] = {"env": rng.choice(["prod", "staging", "experiment7"])}
        out.append(a)
    return out


# ---------------------------------------------------------------------------- part 1
def bench_decide(rules_dir: Path, alerts: list[dict[str, Any]]) -> dict[str, float]:
    from alertline.clock import utcnow
    from services.evaluate.domain import Evaluator
    from services.evaluate.rules import load

    t0 = time.perf_counter()
    loaded = load(rules_dir)
    ev = Evaluator(loaded)
    compile_s = time.perf_counter() - t0
    now = utcnow()
    for a in alerts[:2000]:  # warm the candidate cache and the interpreter
        ev.decide(a, now)  # type: ignore[arg-type]
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        for a in alerts:
            ev.decide(a, now)  # type: ignore[arg-type]
        rates.append(len(alerts) / (time.perf_counter() - t0))
    cand = statistics.mean(len(ev.ruleset.candidates(a)) for a in alerts[:5000])
    matched = statistics.mean(len(ev.decide(a, now)["matched"]) for a in alerts[:5000])  # type: ignore[arg-type]
    drops = sum(ev.decide(a, now)["action"] == "drop" for a in alerts[:5000]) / 50  # type: ignore[arg-type]
    return {
        "rules": len(loaded.rules), "indexed_rules": ev.ruleset.indexed, "compile_s": compile_s,
        "candidates_per_alert": cand, "matched_per_alert": matched, "drop_pct": drops,
        "decisions_per_s": max(rates),
    }  # fmt: skip


# ---------------------------------------------------------------------------- part 2
def _consumed(metrics: Any, service: str, topic: str) -> float:
    # One counter read directly: collecting the whole registry every 10 ms would take CPU
    # from the service being measured (evaluate has a counter per rule), skewing the ratio.
    return float(metrics.consumed.labels(service, topic)._value.get())


def _measure(start: Callable[[], Any], stop: Callable[[Any], None], count: Callable[[Any], float], n: int) -> float:
    """Records per second from the first record consumed to the n-th."""
    handle = start()
    try:
        deadline = time.monotonic() + 600
        first_at = None
        first_n = 0.0
        while time.monotonic() < deadline:
            c = count(handle)
            if first_at is None and c > 0:
                first_at, first_n = time.monotonic(), c
            if c >= n:
                assert first_at is not None
                return (c - first_n) / max(1e-9, time.monotonic() - first_at)
            time.sleep(0.01)
        raise RuntimeError("timed out")
    finally:
        stop(handle)


def bench_service(rules_dir: Path, alerts: list[dict[str, Any]], bootstrap: str, rounds: int) -> dict[str, Any]:
    from confluent_kafka import Producer
    from prometheus_client import CollectorRegistry

    from alertline import logs
    from alertline.avro import SingleObjectCodec
    from alertline.kafka.admin import create_topics
    from alertline.kafka.runtime import Runner, Stage
    from alertline.settings import KafkaSettings, RuntimeSettings
    from alertline.stage import Context, Output, Record
    from alertline.topics import topic
    from services.evaluate.app import build
    from services.evaluate.rules import load
    from services.evaluate.settings import EvaluateOptions, EvaluateSettings

    logs.configure("bench", "WARNING")
    codec = SingleObjectCodec()
    loaded = load(rules_dir)
    runtime = RuntimeSettings(http_port=0, http_host="127.0.0.1", instance_id="bench", session_timeout_ms=6000)
    base = f"bench{uuid.uuid4().hex[:8]}"
    n = len(alerts)

    def prepare(prefix: str) -> KafkaSettings:
        # Fresh topics per round: every round decides every alert (no dedupe state carried over).
        kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, partitions=6)
        create_topics(kafka, ["alerts", "evaluated", "evaluate.dlq", "evaluate.state", "lookups", "enriched"])
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
        for a in alerts:
            p.produce(topic(prefix, "alerts"), codec.encode("alert", a), a["identity"].encode())
            p.poll(0)
        p.flush(60)
        return kafka

    def passthrough(kafka: KafkaSettings) -> Callable[[], Any]:
        def start() -> Any:
            out = topic(kafka.topic_prefix, "enriched")

            def handle(rec: Record, ctx: Context) -> list[Output]:
                return [Output(out, rec.value, key=rec.key, schema="alert")]

            reg = CollectorRegistry()
            stage = Stage(
                "passthrough", f"{kafka.topic_prefix}passthrough", [topic(kafka.topic_prefix, "alerts")], "alert",
                handle, topic(kafka.topic_prefix, "evaluate.dlq"),
            )  # fmt: skip
            runner = Runner(stage, kafka, runtime, codec, registry=reg)
            th = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
            th.start()
            return runner, th, reg

        return start

    def evaluate(kafka: KafkaSettings) -> Callable[[], Any]:
        def start() -> Any:
            opts = EvaluateOptions(rules_dir=rules_dir, lookups_ready_timeout_s=60)
            settings = EvaluateSettings(kafka=kafka, runtime=runtime, evaluate=opts)
            reg = CollectorRegistry()
            svc = build(settings, loaded, codec=codec, registry=reg)
            th = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
            th.start()
            return svc, th, reg

        return start

    def stop(h: Any) -> None:
        h[0].stop()
        h[1].join(60)

    def settle() -> None:
        # Runners hold reference cycles (client callbacks): collect them now, so destroying
        # their Kafka clients does not land inside the next measurement.
        gc.collect()

    pt_rates, ev_rates = [], []
    for r in range(rounds):
        kafka = prepare(f"{base}r{r}.")
        src = topic(kafka.topic_prefix, "alerts")
        settle()
        pt_rates.append(
            _measure(passthrough(kafka), stop, lambda h, s=src: _consumed(h[0].metrics, "passthrough", s), n)
        )
        settle()
        ev_rates.append(
            _measure(evaluate(kafka), stop, lambda h, s=src: _consumed(h[0].runner.metrics, "evaluate", s), n)
        )
    pt, ev = statistics.median(pt_rates), statistics.median(ev_rates)
    return {"alerts": n, "passthrough_per_s": pt, "evaluate_per_s": ev, "ratio": ev / pt,
            "rounds": rounds, "passthrough_runs": pt_rates, "evaluate_runs": ev_rates}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=50_000, help="Alerts for the decision-function benchmark.")
    ap.add_argument("--service-alerts", type=int, default=20_000, help="Alerts pushed through the broker.")
    ap.add_argument("--rounds", type=int, default=2, help="Service rounds (passthrough, evaluate) alternating.")
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    ap.add_argument("--skip-service", action="store_true")
    args = ap.parse_args()
    rng = random.Random(RNG_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp) / "rules"
        rules_dir.mkdir()
        n_rules = write_rules(rules_dir, rng)
        alerts = alert_mix(args.alerts, rng)
        print(f"rule set: {n_rules} rules/suppressions; alert mix: {len(alerts)} alerts")
        d = bench_decide(rules_dir, alerts)
        print(
            f"decision function: {d['decisions_per_s']:,.0f} decisions/s on one core "
            f"({d['rules']} rules, {d['indexed_rules']} indexed, compiled in {d['compile_s'] * 1000:.0f} ms; "
            f"{d['candidates_per_alert']:.1f} candidate rules and {d['matched_per_alert']:.1f} matches per alert; "
            f"{d['drop_pct']:.1f}% dropped)  goal 20,000/s"
        )
        if args.skip_service:
            return
        s = bench_service(rules_dir, alerts[: args.service_alerts], args.bootstrap, args.rounds)
        print(
            f"through the broker ({s['alerts']} alerts, median of {s['rounds']} rounds): "
            f"passthrough {s['passthrough_per_s']:,.0f}/s, evaluate {s['evaluate_per_s']:,.0f}/s, "
            f"ratio {s['ratio']:.2f}  goal >= 0.5"
        )
        print(f"  runs: passthrough {[round(x) for x in s['passthrough_runs']]}, "
              f"evaluate {[round(x) for x in s['evaluate_runs']]}")  # fmt: skip


if __name__ == "__main__":
    main()
