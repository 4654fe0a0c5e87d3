"""The benchmark suite (run by ``bench/run``): every bench in bench/ on one broker in one run,
then one summary table.

- the passthrough ceiling (bench/runtime_passthrough.py): raw consume->produce, and the
  runtime's own passthrough with Avro and a transaction per batch;
- each stage's rate (bench/normalize.py, ingest_pipeline.py, evaluate.py, enrich_probe.py,
  ticket.py, scan_checks.py) and its ratio to both;
- peak RSS per service: the four services as real processes (the local stack the tests use,
  devtools/stack.py), fed a few thousand records, VmHWM read from /proc/<pid>/status.

Each bench's own output is kept under .cache/bench/<timestamp>/ and its path printed.

    ./bench/run [--quick] [--only NAME ...] [--skip-rss] [--rss-deliveries N]

A broker: KAFKA_BOOTSTRAP if set, else one started for the run (and stopped after it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RSS_GOAL_MB = 200.0


@dataclass
class Row:
    """One line of the summary table."""

    name: str
    rate: float | None = None  # records (alerts, items) per second
    unit: str = "alerts/s"
    note: str = ""
    kafka_stage: bool = False  # a Kafka->Kafka or source->Kafka stage: compare with the ceiling


@dataclass
class Run:
    """What one run knows: its broker, its output folder, the rows gathered so far."""

    bootstrap: str
    out: Path
    quick: bool
    rows: list[Row] = field(default_factory=list)
    ceiling: float | None = None  # (a) raw consume->produce, records/s
    runtime: float | None = None  # (d) runtime passthrough reading every record (Avro decode + encode), records/s
    rss: dict[str, float] = field(default_factory=dict)  # service -> peak RSS in MB
    extra: list[str] = field(default_factory=list)  # free lines printed under the table

    def bench(self, name: str, argv: list[str], timeout: float = 900) -> str:
        """Run one bench as its own process; its output is kept and returned."""
        env = os.environ | {"KAFKA_BOOTSTRAP": self.bootstrap, "PYTHONPATH": str(REPO)}
        print(f"  {name}: {' '.join(argv)}", flush=True)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=timeout, check=False)  # fmt: skip
        text = p.stdout + ("\n" + p.stderr if p.returncode else "")
        (self.out / f"{name}.txt").write_text(f"$ {' '.join(argv)}\n{text}")
        if p.returncode:
            raise RuntimeError(f"{name} failed ({p.returncode}); see {self.out / (name + '.txt')}:\n{text[-2000:]}")
        print(f"    done in {time.monotonic() - t0:.0f}s", flush=True)
        return p.stdout


def _num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise ValueError(f"figure not found ({pattern!r}) in:\n{text}")
    return float(m.group(1).replace(",", ""))


# ---------------------------------------------------------------------------- the benches
def passthrough(r: Run) -> None:
    n, rounds = ("50000", "1") if r.quick else ("500000", "3")
    out = r.bench("runtime_passthrough", ["bench/runtime_passthrough.py", n, rounds])
    r.ceiling = _num(r"\(a\) raw consume->produce ceiling:\s+([\d,]+)", out)
    unread = _num(r"\(b\) runtime, Avro no-op handler \(lazy body\) \+ txn:\s+([\d,]+)", out)
    bytes_only = _num(r"\(c\) runtime, bytes only \+ txn:\s+([\d,]+)", out)
    # /runtime compares stages with the passthrough that reads its input, as every stage does.
    r.runtime = _num(r"\(d\) runtime, handler reads all: decode\+encode\+txn:\s+([\d,]+)", out)
    r.rows.append(Row("runtime passthrough (Avro, reads all + txn)", r.runtime, "records/s", "decode + encode", True))
    r.rows.append(Row("runtime passthrough (Avro, unread + txn)", unread, "records/s", "no-op handler", True))
    r.rows.append(Row("runtime passthrough (bytes + txn)", bytes_only, "records/s", "no codec", True))


def normalize(r: Run) -> None:
    out = r.bench("normalize", ["bench/normalize.py", "--seconds", "3" if r.quick else "8"])
    d = json.loads(out[out.index("{") :])
    r.rows.append(Row("normalize (parse + map + Avro), 1 core", d["alerts_per_cpu_s"], "alerts/s", "CPU only"))


def ingest(r: Run) -> None:
    out = r.bench("ingest_pipeline", ["bench/ingest_pipeline.py", "50" if r.quick else "200"])
    rate = _num(r"alerts/s=([\d.]+)", out)
    p50, p99 = _num(r"p50=([\d.]+) ms", out), _num(r"p99=([\d.]+) ms", out)
    r.rows.append(Row("ingest (S3 archive + normalize + txn)", rate, "alerts/s",
                      f"batch of 10 deliveries p50 {p50:.0f} ms, p99 {p99:.0f} ms", True))  # fmt: skip


def evaluate(r: Run) -> None:
    n, svc = ("10000", "5000") if r.quick else ("50000", "20000")
    out = r.bench("evaluate", ["-m", "bench.evaluate", "--alerts", n, "--service-alerts", svc, "--rounds", "1"])
    decide = _num(r"decision function: ([\d,]+) decisions/s", out)
    rate = _num(r"evaluate ([\d,]+)/s", out)
    own = _num(r"passthrough ([\d,]+)/s", out)
    r.rows.append(Row("evaluate decision function, 1 core", decide, "alerts/s", "200 rules, CPU only"))
    r.rows.append(Row("evaluate service (through the broker)", rate, "alerts/s",
                      f"{rate / own:.2f} x its own passthrough in the same run", True))  # fmt: skip


def enrich(r: Run) -> None:
    n = "100" if r.quick else "300"
    out = r.bench("enrich_probe", ["bench/enrich_probe.py", "--alerts", n, "--sample", "3"])
    total = _num(r"batch total\s+([\d.]+)s", out)
    ratio = _num(r"ratio\s+([\d.]+)% of sequential", out)
    r.rows.append(Row("enrich, exposure probes (1-2 s each)", int(n) / total, "alerts/s",
                      f"{ratio:.1f}% of sequential probing time", True))  # fmt: skip


def ticket(r: Run) -> None:
    out = r.bench("ticket", ["bench/ticket.py", "--alerts", "100" if r.quick else "300"])
    render = _num(r"render, typical alert:\s+([\d,.]+)", out)
    create = _num(r"handler, new alert -> issue:\s+([\d,.]+)", out)
    r.rows.append(Row("ticket rendering, 1 core", render, "bodies/s", "CPU only"))
    r.rows.append(Row("ticket handler -> GitHub fake", create, "issues/s",
                      "limiter open; GitHub allows ~80 writes/min"))  # fmt: skip


def scan(r: Run) -> None:
    out = r.bench("scan_checks", ["bench/scan_checks.py", "10000" if r.quick else "50000"])
    rate = _num(r"evaluate \(all checks, security groups\)\s+\d+ items\s+[\d.]+ ms\s+(\d+) /s", out)
    r.rows.append(Row("scan checks over security groups", rate, "resources/s", "CPU only"))


# ---------------------------------------------------------------------------- peak RSS
def peak_rss_mb(pid: int) -> float:
    """VmHWM (the resident set's high-water mark) of one process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def rss(r: Run, deliveries: int) -> None:
    """The four services as real processes on the local stack, fed ``deliveries`` SQS messages of
    three findings each (plus Pub/Sub and Event Hubs samples), until the pipeline settles."""
    from devtools.stack import Stack

    print(f"  rss: local stack, {deliveries} deliveries x 3 findings through the four services", flush=True)
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-rss-")), bootstrap=r.bootstrap, prefix=f"bench{os.getpid()}.")
    t0 = time.monotonic()
    try:
        stack.start_infrastructure()
        stack.start_services()
        template = json.loads((REPO / "tests/fixtures/deliveries/securityhub/multi-finding.json").read_bytes())
        for start in range(0, deliveries, 10):
            entries = []
            for n in range(start, min(start + 10, deliveries)):
                event = json.loads(json.dumps(template))
                for f in event["detail"]["findings"]:
                    f["Id"] += f"-rss-{n}"
                entries.append({"Id": str(n), "MessageBody": json.dumps(event)})
            stack.sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=entries)

        def drained() -> bool:
            a = stack.sqs.get_queue_attributes(
                QueueUrl=stack.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return sum(int(v) for v in a.values()) == 0 and stack.settled()

        stack.wait_for(drained, 600, "the stack to take every delivery and settle")
        time.sleep(5)  # the ticket service's flushes and ticks after the last record
        for name, proc in stack.procs.items():
            assert proc.popen is not None
            r.rss[name] = peak_rss_mb(proc.popen.pid)
        issues = len(stack.issues())
    finally:
        stack.stop()
    r.extra.append(f"peak RSS after {deliveries * 3:,} alerts through the four services "
                   f"({time.monotonic() - t0:.0f}s, {issues} issues filed)")  # fmt: skip


# ---------------------------------------------------------------------------- end to end
def e2e_steady(r: Run) -> None:
    """Latency from source delivery (SQS send) to the ticket decision, at 100 alerts/s with 50 ms
    GitHub latency and GitHub's own write limits (bench/e2e.py steady)."""
    out = r.bench("e2e_steady", ["bench/e2e.py", "steady", "--rate", "100", "--seconds", "15" if r.quick else "30"],
                  timeout=1800)  # fmt: skip
    figures = r": SQS send -> ticket state: p50 ([\d.]+) s, p99 ([\d.]+) s.*missing (\d+)"
    for label in ("all alerts", "creates and closes (GitHub writes)"):
        m = re.search(re.escape(label) + figures, out)
        if not m:
            raise ValueError(f"e2e steady figures not found in:\n{out}")
        r.extra.append(f"end to end at 100 alerts/s, {label}: p50 {float(m[1]):.2f} s, p99 {float(m[2]):.2f} s "
                       f"(goal p99 < 2 s), missing {m[3]}")  # fmt: skip


def e2e_burst(r: Run) -> None:
    """A burst of new findings of one kind with the default GitHub limits (bench/e2e.py burst):
    100,000 findings (10,000 with --quick)."""
    n = "10000" if r.quick else "100000"
    out = r.bench("e2e_burst", ["bench/e2e.py", "burst", "--findings", n, "--timeout", "3000"], timeout=3600)
    for pattern in (r"  drained in .*", r"  NOT drained.*", r"  issues: .*", r"  accounted for: .*", r"  peak RSS: .*"):
        m = re.search(pattern, out)
        if m:
            r.extra.append(f"burst of {int(n):,}: {m[0].strip()}")


# Slow (minutes each): run by default, skipped with --only.
EXTRA_SECTIONS: list[tuple[str, Callable[[Run], None]]] = [("e2e-steady", e2e_steady), ("e2e-burst", e2e_burst)]


# ---------------------------------------------------------------------------- the table
def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.1 else f"{x:.2%}" if x >= 0.001 else f"{x:.3%}"


def table(r: Run) -> str:
    lines = [f"Alertline benchmark suite, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
             f"broker {r.bootstrap}"]  # fmt: skip
    if r.ceiling:
        lines.append(f"passthrough ceiling (raw confluent-kafka consume->produce): {r.ceiling:,.0f} records/s")
    head = f"{'stage':<42} {'rate':>12} {'unit':<12} {'/ceiling':>9} {'/runtime':>9}  note"
    lines += [head, "-" * len(head)]
    for row in r.rows:
        rate = f"{row.rate:,.0f}" if row.rate is not None else "—"
        vs_c = _pct(row.rate / r.ceiling) if row.kafka_stage and row.rate and r.ceiling else ""
        vs_r = _pct(row.rate / r.runtime) if row.kafka_stage and row.rate and r.runtime else ""
        lines.append(f"{row.name:<42} {rate:>12} {row.unit:<12} {vs_c:>9} {vs_r:>9}  {row.note}")
    if r.rss:
        lines.append("")
        lines.append(f"{'service':<12} {'peak RSS (VmHWM)':>18}  goal < {RSS_GOAL_MB:.0f} MB")
        for name, mb in r.rss.items():
            lines.append(f"{name:<12} {mb:>15.0f} MB  {'ok' if mb < RSS_GOAL_MB else 'OVER'}")
    lines += [f"  {x}" for x in r.extra]
    lines.append(f"(each bench's own output: {r.out})")
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[Run], None]] = {
    "passthrough": passthrough,
    "normalize": normalize,
    "ingest": ingest,
    "evaluate": evaluate,
    "enrich": enrich,
    "ticket": ticket,
    "scan": scan,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes in all)")
    ap.add_argument("--only", nargs="*", choices=[*SECTIONS, "rss", *(n for n, _ in EXTRA_SECTIONS)])
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--rss-deliveries", type=int, default=1000, help="SQS deliveries (3 findings each) for RSS")
    args = ap.parse_args(argv)
    wanted = set(args.only or [*SECTIONS, "rss", *(n for n, _ in EXTRA_SECTIONS)])
    if args.skip_rss:
        wanted.discard("rss")

    out = REPO / ".cache" / "bench" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    broker: Any = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        from alertline.kafka.local import LocalKafka

        print("starting a broker for this run (set KAFKA_BOOTSTRAP to reuse one) ...", flush=True)
        broker = LocalKafka(Path(tempfile.mkdtemp(prefix="bench-kafka-")), port=29192, controller_port=29193)
        broker.up()
        bootstrap = broker.bootstrap
    r = Run(bootstrap, out, args.quick)
    try:
        for name, fn in [*SECTIONS.items(), *EXTRA_SECTIONS]:
            if name in wanted:
                fn(r)
        if "rss" in wanted:
            rss(r, args.rss_deliveries)
    finally:
        if broker is not None:
            broker.down()
    text = table(r)
    (out / "summary.txt").write_text(text + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
