"""End to end through the four services as separate processes (the local stack).

steady: alerts arrive at a steady rate (default 100/s) through SQS; GitHub answers after
        50 ms; prints p50/p99 from source delivery (SQS send) to the GitHub call that created
        its issue. Write limits are raised so the pipeline, not GitHub's quota, is measured.
burst:  N new findings of one kind at once (a detector enabled org-wide) with the default
        GitHub limits (80/min, 500/h) and storm grouping: time to drain, GitHub writes used,
        the most writes in any minute, issues created, and whether every finding is accounted
        for (an issue of its own or a line in a grouped issue).

usage: .venv/bin/python bench/e2e.py steady [--rate 100 --seconds 30]
       .venv/bin/python bench/e2e.py burst [--findings 100000]
(KAFKA_BOOTSTRAP reuses a running broker; otherwise one is started on 127.0.0.1:19092.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.chaos import BASE, guardduty
from devtools.stack import Stack

MARKER = re.compile(r"<!-- alertline:v1 identity=(\S+)")


def _stack(service_env: dict[str, dict[str, str]]) -> Stack:
    work = Path(tempfile.mkdtemp(prefix="alertline-bench-"))
    s = Stack(work, bootstrap=os.environ.get("KAFKA_BOOTSTRAP"), prefix=f"bench{int(time.time())}.",
              partitions=6, service_env=service_env)  # fmt: skip
    s.start_infrastructure()
    s.start_services()
    return s


def _send_batch(stack: Stack, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 10):
        entries = [{"Id": str(n), "MessageBody": json.dumps(e)} for n, e in enumerate(events[i : i + 10])]
        stack.sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=entries)


def steady(rate: float, seconds: float, pool: int = 200) -> None:
    """A pool of open issues whose alerts keep recurring (a new revision each time) at ``rate``.
    Latency: SQS send -> the ticket service's committed decision for that revision (its state
    record), which is where it calls GitHub (or decides a body refresh is throttled)."""
    env = {
        "ticket": {"ALERTLINE_TICKET__STORM_ENABLED": "false"},
        "enrich": {"ALERTLINE_SCREENSHOT__ENABLED": "false"},
        "ingest": {"ALERTLINE_INGEST__SQS__WAIT_S": "1"},
    }
    stack = _stack(env)
    try:
        stack.github.inject("*", r".*", kind="latency", delay_s=0.05, count=10**9)
        warm = [guardduty(i, 0) for i in range(pool)]
        _send_batch(stack, [e.body for e in warm])
        stack.wait_for(lambda: len(stack.issues()) >= pool, 900, "the pool's issues")
        stack.wait_for(stack.settled, 300, "the pipeline to settle")
        n_total = int(rate * seconds)
        events = [guardduty(n % pool, 1 + n // pool) for n in range(n_total)]
        revisions = [_revision(e) for e in events]
        sent: dict[tuple[str, str], float] = {}
        t0 = time.monotonic()
        for start in range(0, n_total, 10):  # batches of 10 (one SQS call) keep up with the rate
            due = t0 + start / rate
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            now = time.time()
            for k in revisions[start : start + 10]:
                sent[k] = now
            _send_batch(stack, [e.body for e in events[start : start + 10]])
        behind = time.monotonic() - t0 - seconds
        stack.wait_for(stack.settled, 600, "the pipeline to settle")
        latencies = sorted(t - sent[k] for k, t in _decided(stack).items() if k in sent)
        q = statistics.quantiles(latencies, n=100)
        print(f"steady: {n_total} alerts at {rate:.0f}/s (sender {behind:+.1f} s late) over {pool} open issues; "
              f"GitHub latency 50 ms")  # fmt: skip
        print(f"  SQS send -> ticket decision: p50 {q[49]:.2f} s, p99 {q[98]:.2f} s, max {latencies[-1]:.2f} s "
              f"(n={len(latencies)} of {n_total}; goal p99 < 2 s)")  # fmt: skip
        print(f"  GitHub writes during the run: {stack.github.writes()}, most in any 60 s: "
              f"{stack.github.max_writes_in_window(60)}")  # fmt: skip
    finally:
        stack.stop()


def _revision(e: Any) -> tuple[str, str]:
    from services.ingest.normalize import RawLocation, normalize

    (a,) = normalize(json.dumps(e.body).encode(), raw=RawLocation("mem://", ""), received_at=BASE).alerts
    return a["identity"], a["revision"]


def _decided(stack: Stack) -> dict[tuple[str, str], float]:
    """(identity, revision) -> when the ticket service first committed state for it."""
    from alertline.avro import SingleObjectCodec
    from alertline.testing.kafka import read_all
    from alertline.topics import topic

    codec = SingleObjectCodec()
    out: dict[tuple[str, str], float] = {}
    assert stack.bootstrap
    for m in read_all(stack.bootstrap, topic(stack.prefix, "tickets.state"), timeout=60):
        if m.value() is None:
            continue
        st = codec.decode("ticket_state", m.value())
        key = (st["identity"], st.get("last_revision") or "")
        out.setdefault(key, m.timestamp()[1] / 1000)
    return out


def burst(findings: int) -> None:
    env = {"enrich": {"ALERTLINE_SCREENSHOT__ENABLED": "false"}, "ingest": {"ALERTLINE_INGEST__SQS__WAIT_S": "1"}}
    stack = _stack(env)
    try:
        t0 = time.monotonic()
        batch = []
        for n in range(findings):
            batch.append(guardduty(n, 0).body)
            if len(batch) == 500:
                _send_batch(stack, batch)
                batch = []
        _send_batch(stack, batch)
        sent_s = time.monotonic() - t0
        print(f"burst: {findings} findings sent to SQS in {sent_s:.0f} s")
        last = None

        def drained() -> bool:
            nonlocal last
            cur = (stack.github.writes(), len(stack.issues()))
            if cur != last:
                print(f"  {time.monotonic() - t0:6.0f} s: GitHub writes {cur[0]}, issues {cur[1]}", flush=True)
                last = cur
            return stack.settled()

        stack.wait_for(drained, 7200, "the burst to drain")
        drain_s = time.monotonic() - t0
        issues = stack.issues()
        bodies = "\n".join(i.body or "" for i in issues)
        own = {m[1] for i in issues for m in [MARKER.search(i.body or "")] if m}
        print(f"  drained in {drain_s:.0f} s; GitHub writes {stack.github.writes()}, "
              f"most in any 60 s: {stack.github.max_writes_in_window(60)} (limit 80), "
              f"in any hour: {stack.github.max_writes_in_window(3600)} (limit 500)")  # fmt: skip
        print(f"  issues: {len(issues)} ({len(own)} with a single identity); grouped-issue text: {len(bodies)} chars")
    finally:
        stack.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["steady", "burst"])
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--findings", type=int, default=100_000)
    a = ap.parse_args()
    steady(a.rate, a.seconds) if a.mode == "steady" else burst(a.findings)


if __name__ == "__main__":
    main()
