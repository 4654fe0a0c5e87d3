"""Normalization throughput on one core: JSON parse + map + Avro encode, alerts/s.

A realistic mix of the delivery fixtures: mostly single-finding EventBridge events (Security
Hub control findings dominate a bad day), GuardDuty, SCC over Pub/Sub, Defender batches, and
multi-finding S3 objects.

    .venv/bin/python bench/normalize.py [--seconds 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import time
from datetime import UTC, datetime
from pathlib import Path

from alertline.avro import SingleObjectCodec
from services.ingest.normalize import RawLocation, normalize

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "deliveries"
# (fixture, weight): how often each shape appears in the mix.
MIX = [
    ("securityhub/ec2-19-open-ports.json", 6),
    ("securityhub/ec2-18-passed-resolved.json", 4),
    ("securityhub/cross-region-aggregated.json", 4),
    ("securityhub/archived.json", 2),
    ("securityhub/workflow-suppressed.json", 1),
    ("securityhub/multi-finding.json", 2),
    ("sqs/lambda-sqs-event.json", 1),
    ("sqs/sns-notification.json", 1),
    ("guardduty/port-probe.json", 3),
    ("guardduty/tor-api-call.json", 2),
    ("guardduty/archived.json", 1),
    ("securityhub-v2/detection-finding.json", 1),
    ("securityhub-v2/compliance-finding-passed.json", 1),
    ("s3/findings-export.ndjson", 1),
    ("s3/findings-export-firehose.json.gz", 1),
    ("scc/v1-open-firewall-active.json", 2),
    ("scc/v2-bad-ip-active.json", 1),
    ("pubsub/pull-response.json", 1),
    ("pubsub/push.json", 1),
    ("defender/flat-ssh-brute-force.json", 2),
    ("defender/rest-storage-tor-access.json", 1),
    ("defender/records-wrapper.json", 1),
]


def deliveries() -> list[tuple[bytes, RawLocation]]:
    out = []
    for rel, weight in MIX:
        body = (FIXTURES / rel).read_bytes()
        raw = RawLocation(f"s3://archive/raw/{rel}", hashlib.sha256(body).hexdigest())
        out += [(body, raw)] * weight
    return out


def run(
    batch: list[tuple[bytes, RawLocation]], codec: SingleObjectCodec, seconds: float
) -> tuple[int, int, float, float]:
    """(alerts, deliveries, wall seconds, CPU seconds of this process)."""
    received = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    encode = codec.encode
    alerts = n = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for body, raw in batch:
            for alert in normalize(body, raw=raw, received_at=received).alerts:
                encode("alert", alert)
                alerts += 1
            n += 1
        if time.perf_counter() >= deadline:
            break
    return alerts, n, time.perf_counter() - start, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--profile", action="store_true", help="print the top functions by own time")
    args = ap.parse_args()
    codec = SingleObjectCodec()
    batch = deliveries()
    per_round = sum(len(normalize(b, raw=r, received_at=datetime.now(UTC)).alerts) for b, r in batch)
    run(batch, codec, 1.0)  # warm-up
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(batch, codec, args.seconds)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    alerts, n, elapsed, cpu = run(batch, codec, args.seconds)
    avg_kb = sum(len(b) for b, _ in batch) / len(batch) / 1024
    load1 = os.getloadavg()[0]
    print(
        json.dumps(
            {
                "benchmark": "normalize (JSON parse + map + Avro encode), single thread",
                "mix": f"{len(batch)} deliveries, {per_round} alerts per round, {avg_kb:.1f} KiB per delivery",
                "wall_seconds": round(elapsed, 2),
                "cpu_seconds": round(cpu, 2),
                # Per core: alerts per CPU-second of this process (robust to a busy machine).
                "alerts_per_cpu_s": round(alerts / cpu),
                "alerts_per_wall_s": round(alerts / elapsed),
                "deliveries_per_cpu_s": round(n / cpu),
                "us_cpu_per_alert": round(cpu / alerts * 1e6, 1),
                "load_average_1m": round(load1, 2),
                "cores": os.cpu_count(),
                "goal_alerts_per_s": 20000,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
