"""End to end through the four services as separate processes (the local stack).

steady: alerts arrive at a steady rate (default 100/s) through SQS, mostly recurrences of open
        issues plus new findings and resolutions at the rate GitHub's limits allow; GitHub
        answers after 50 ms; prints p50/p99 from source delivery (SQS send) to the ticket
        service's committed decision (after its GitHub calls), for all alerts, for those that
        wrote to GitHub, and for the rest.
burst:  N new Security Hub findings of one kind at once (a standard enabled org-wide; 50 per
        EventBridge event, one SQS message each) with the default
        GitHub limits (80/min, 500/h) and storm grouping: time to drain, GitHub writes used,
        the most writes in any minute, issues created, and whether every finding is accounted
        for (an issue of its own or a line in a grouped issue).

usage: .venv/bin/python bench/e2e.py steady [--rate 100 --seconds 30]
       .venv/bin/python bench/e2e.py burst [--findings 100000]
(KAFKA_BOOTSTRAP reuses a running broker; otherwise one is started on 127.0.0.1:19092.)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.chaos import Event, identity_of, securityhub
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


def _hub_event(findings: list[Event]) -> dict[str, Any]:
    """One "Security Hub Findings - Imported" event carrying several findings, as EventBridge
    delivers them (one SQS message for up to 100 findings)."""
    ev = copy.deepcopy(findings[0].body)
    ev["detail"]["findings"] = [f.body["detail"]["findings"][0] for f in findings]
    return ev


def steady(rate: float, seconds: float, pool: int = 100, per_event: int = 10) -> None:
    """A steady stream at ``rate`` with GitHub's real limits (80 writes/min, 500/h) and 50 ms
    per GitHub call. Security Hub findings, ``per_event`` to an EventBridge event as Security
    Hub sends them. Most alerts are recurrences of open issues (a new revision each: counted,
    body refresh deferred, no GitHub write); one in 200 is a new finding (an issue is created)
    and one in 400 resolves such a finding (a comment and a close): about 60 writes a minute,
    what GitHub allows. Latency: SQS send -> the ticket service's committed state counting that
    alert. The state is produced after the handler's GitHub calls returned, so for the creates
    and closes it bounds "source delivery to GitHub call" from above."""
    env = {
        "ticket": {"ALERTLINE_TICKET__STORM_ENABLED": "false"},
        "enrich": {"ALERTLINE_SCREENSHOT__ENABLED": "false"},
        "ingest": {"ALERTLINE_INGEST__SQS__WAIT_S": "1"},
    }
    stack = _stack(env)
    try:
        stack.github.inject("*", r".*", kind="latency", delay_s=0.05, count=10**9)
        warm = [securityhub(i, True, 0) for i in range(pool)]
        _send_batch(stack, [_hub_event(warm[i : i + per_event]) for i in range(0, pool, per_event)])
        stack.wait_for(lambda: len(stack.issues()) >= pool, 900, "the pool's issues")
        stack.wait_for(stack.settled, 300, "the pipeline to settle")
        time.sleep(61)  # the warm-up's creates leave the 80-a-minute window before the run starts
        writes0, t_run = stack.github.writes(), time.time()
        n_total = int(rate * seconds) // per_event * per_event
        findings, writing, expect = [], set(), []
        occ = {identity_of(e): 1 for e in warm}  # the warm-up counted one each
        for n in range(n_total):
            if n % 200 == 0:  # a new finding: creates an issue
                e, w = securityhub(10_000 + n // 200, True, 0), True
            elif n % 400 == 100:  # the finding created 100 alerts ago is resolved: comment + close
                e, w = securityhub(10_000 + (n - 100) // 200, False, 1), True
            else:  # a recurrence of an open issue: a new revision, no GitHub write
                e, w = securityhub(n % pool, True, 1 + n // pool), False
            ident = identity_of(e)
            occ[ident] = occ.get(ident, 0) + 1
            expect.append((ident, occ[ident]))  # this alert is handled once the state counts it
            if w:
                writing.add(n)
            findings.append(e)
        events = [_hub_event(findings[i : i + per_event]) for i in range(0, n_total, per_event)]
        sent = [0.0] * n_total
        t0 = time.monotonic()
        for k, ev in enumerate(events):  # one SQS message per event, as EventBridge sends them
            due = t0 + k * per_event / rate
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            sent[k * per_event : (k + 1) * per_event] = [time.time()] * per_event
            stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(ev))
        behind = time.monotonic() - t0 - seconds
        stack.wait_for(lambda: _queue_empty(stack), 600, "ingest to take every message")
        stack.wait_for(stack.settled, 600, "the pipeline to settle")
        counted = _counted(stack)
        print(f"steady: {n_total} alerts at {rate:.0f}/s in {len(events)} Security Hub events (sender "
              f"{behind:+.1f} s late) over {pool} open issues")  # fmt: skip
        print("  GitHub latency 50 ms, limits 80/min and 500/h")
        for label, idx in (("all alerts", range(n_total)), ("creates and closes (GitHub writes)", sorted(writing)),
                           ("recurrences (no write)", [n for n in range(n_total) if n not in writing])):  # fmt: skip
            done = [(n, _first(counted.get(expect[n][0], []), expect[n][1])) for n in idx]
            lat = sorted(t - sent[n] for n, t in done if t is not None)
            missing = sum(1 for _, t in done if t is None)
            q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else (lat or [float("nan")]) * 99
            worst = lat[-1] if lat else float("nan")
            print(f"  {label}: SQS send -> ticket state: p50 {q[49]:.2f} s, p99 {q[98]:.2f} s, "
                  f"max {worst:.2f} s (n={len(lat)}, missing {missing}; goal p99 < 2 s)")  # fmt: skip
        print(f"  GitHub writes during the run: {stack.github.writes() - writes0} "
              f"({time.time() - t_run:.0f} s), most in any 60 s: {stack.github.max_writes_in_window(60)}")  # fmt: skip
    finally:
        stack.stop()


def _queue_empty(stack: Stack) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=names)["Attributes"]
    return all(int(attrs[n]) == 0 for n in names)


def _counted(stack: Stack) -> dict[str, list[tuple[int, float]]]:
    """identity -> [(occurrences, when the ticket service produced that state)], in order.
    State is written once per key per batch, so one record can count several alerts."""
    from alertline.avro import SingleObjectCodec
    from alertline.testing.kafka import read_all
    from alertline.topics import topic

    codec = SingleObjectCodec()
    out: dict[str, list[tuple[int, float]]] = {}
    assert stack.bootstrap
    for m in read_all(stack.bootstrap, topic(stack.prefix, "tickets.state"), timeout=60):
        if m.value() is None:
            continue
        st = codec.decode("ticket_state", m.value())
        out.setdefault(st["identity"], []).append((st["occurrences"], m.timestamp()[1] / 1000))
    return out


def _first(records: list[tuple[int, float]], occurrences: int) -> float | None:
    return next((t for n, t in records if n >= occurrences), None)


def burst(findings: int, per_event: int = 50, timeout_s: float = 7200) -> None:
    env = {"enrich": {"ALERTLINE_SCREENSHOT__ENABLED": "false"}, "ingest": {"ALERTLINE_INGEST__SQS__WAIT_S": "1"}}
    stack = _stack(env)
    try:
        t0 = time.monotonic()
        for start in range(0, findings, per_event):  # one SQS message per event (256 KB at most)
            ev = _hub_event([securityhub(n, True, 0) for n in range(start, min(findings, start + per_event))])
            stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(ev))
        sent_s = time.monotonic() - t0
        print(f"burst: {findings} Security Hub findings ({per_event} per event) sent to SQS in {sent_s:.0f} s",
              flush=True)  # fmt: skip
        last = None
        expected = {identity_of(securityhub(n, True, 0)) for n in range(findings)}

        def drained() -> bool:
            """Ingest took every message, every stage caught up, and every finding shows on
            GitHub (grouped pages are written after flush_quiet_s / flush_max_delay_s)."""
            nonlocal last, checked_at
            issues = stack.issues()
            cur = (stack.github.writes(), len(issues))
            if cur != last:
                print(f"  {time.monotonic() - t0:6.0f} s: GitHub writes {cur[0]}, issues {cur[1]}", flush=True)
                last = cur
            if time.monotonic() - checked_at < 15 or not (_queue_empty(stack) and stack.settled()):
                return False
            checked_at = time.monotonic()
            own, lines, counted = _shown(issues)
            return len(expected & (own | lines)) + counted >= len(expected)

        checked_at = 0.0
        try:
            stack.wait_for(drained, timeout_s, "the burst to drain")
        except TimeoutError as exc:
            print(f"  NOT drained: {exc}")
        drain_s = time.monotonic() - t0
        issues = stack.issues()
        bodies = "\n".join(i.body or "" for i in issues)
        own = {m[1] for i in issues for m in [MARKER.search(i.body or "")] if m}
        print(f"  drained in {drain_s:.0f} s; GitHub writes {stack.github.writes()}, "
              f"most in any 60 s: {stack.github.max_writes_in_window(60)} (limit 80), "
              f"in any hour: {stack.github.max_writes_in_window(3600)} (limit 500)")  # fmt: skip
        print(f"  issues: {len(issues)} ({len(own)} with a single identity); grouped-issue text: {len(bodies)} chars")
        _accounting(findings, issues)
        rss = [f"{n} {_rss_mb(p.popen.pid):.0f} MB" for n, p in stack.procs.items() if p.popen]
        print("  peak RSS: " + ", ".join(rss))
    finally:
        stack.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


OVERFLOW = re.compile(r"and (\d+) more alerts of this kind")


def _shown(issues: list[Any]) -> tuple[set[str], set[str], int]:
    """Identities on GitHub: an issue's marker, a grouped issue's task line; and how many
    alerts grouped issues count without listing (storm_max_pages)."""
    from services.ticket.text import parse_members

    own = {m[1] for i in issues for m in [MARKER.search(i.body or "")] if m}
    lines: set[str] = set()
    counted = 0
    for i in issues:
        lines |= set(parse_members(i.body or ""))
        counted += sum(int(x) for x in OVERFLOW.findall(i.body or ""))
    return own, lines, counted


def _accounting(findings: int, issues: list[Any]) -> None:
    """Every finding on an issue of its own, a grouped issue's line, or a grouped issue's count."""
    expected = {identity_of(securityhub(n, True, 0)) for n in range(findings)}
    own, lines, counted = _shown(issues)
    shown = own | lines
    total = len(expected & shown) + counted
    print(f"  accounted for: {total} of {len(expected)} (own issue {len(expected & own)}, "
          f"grouped line {len(expected & lines)}, counted on a grouped issue {counted}); "
          f"{'nothing missing' if total == len(expected) else f'MISSING {len(expected) - total}'}, "
          f"unexpected {len(shown - expected)}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["steady", "burst"])
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--findings", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=7200, help="burst: give up waiting after this many seconds")
    a = ap.parse_args()
    steady(a.rate, a.seconds) if a.mode == "steady" else burst(a.findings, timeout_s=a.timeout)


if __name__ == "__main__":
    main()
