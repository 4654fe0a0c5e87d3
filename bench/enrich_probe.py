"""Benchmark: a batch of exposure alerts whose probes each take 1-2 s, against a slow local server.

usage: .venv/bin/python bench/enrich_probe.py [--alerts 500] [--concurrency 64] [--rate 50]

Every alert names its own loopback address (127.0.1.x, 127.0.2.x, ...) so per-target politeness
does not serialize them; the server answers each request after 0.5-1.0 s, and a probe makes two
requests (a TLS attempt, then HTTP), so one probe takes 1-2 s. The batch goes through the real
enrich service (``prepare`` for the batch, then the per-record handler). Screenshots are off
(Chromium would measure the CPU, not the prober). Prints total time, peak concurrency and the
sequential time (the sum of the probes' own durations, checked against a sequential sample).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import threading
import time
from datetime import UTC, datetime

from alertline.stage import Context, PartitionState, Record
from alertline.testing.samples import alert
from services.enrich.app import build
from services.enrich.guard import Guard
from services.enrich.probe import Prober, Target
from services.enrich.settings import (
    Ec2Settings,
    EnrichSettings,
    ProbeSettings,
    ReputationSettings,
    ScreenshotSettings,
)


class SlowServer:
    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self.ports: dict[str, int] = {}
        self.now = 0
        self.peak = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.rng = random.Random(1)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            data = await asyncio.wait_for(reader.read(4096), 10)
            if data:
                await asyncio.sleep(self.rng.uniform(0.5, 1.0))
                body = b"<html><title>slow</title></html>"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self.now -= 1
            writer.close()

    async def _start(self) -> None:
        for h in self.hosts:
            srv = await asyncio.start_server(self._conn, h, 0, backlog=64)
            self.ports[h] = srv.sockets[0].getsockname()[1]
        self._ready.set()

    def start(self) -> None:
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._start())
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        self._ready.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rate", type=float, default=50.0, help="probe starts per second")
    ap.add_argument("--sample", type=int, default=10, help="probes run sequentially to check the estimate")
    args = ap.parse_args()

    hosts = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(args.alerts)]
    server = SlowServer(hosts)
    server.start()
    probe = ProbeSettings(allow=["127.0.0.0/8"], banner_wait_s=0.2, concurrency=args.concurrency,
                          rate_per_s=args.rate)  # fmt: skip
    settings = EnrichSettings(probe=probe, screenshot=ScreenshotSettings(enabled=False),
                              ec2=Ec2Settings(enabled=False), reputation=ReputationSettings(feeds={}))  # fmt: skip
    built = build(settings)
    now = datetime.now(UTC)
    records = []
    for i, h in enumerate(hosts):
        a = alert(i, resources=[{"type": "AwsEc2Instance", "id": f"i-{i:08x}", "name": None, "region": None,
                                 "tags": {}, "addresses": [h]}],
                  indicators={"ips": [], "domains": [], "users": [], "ports": [server.ports[h]]})  # fmt: skip
        ev = {"alert": a, "decision": {"action": "ticket", "priority": "P3", "reason": None, "repository": None,
              "assignees": [], "labels": [], "auto_close": True, "group_key": None, "matched": [],
              "ruleset": "", "evaluated_at": now}}  # fmt: skip
        records.append(Record("evaluated", 0, i, a["identity"].encode(), ev, {}, 0))

    st = PartitionState()
    t0 = time.monotonic()
    built.service.prepare(records)
    t_prepare = time.monotonic() - t0
    durations = []
    states = {}
    for r in records:
        [out] = list(built.service.handle(r, Context(state=st)))
        st.end_record(ok=True)
        for e in out.value["enrichments"]:
            d = json.loads(e["data_json"])
            durations.append(d.get("duration_ms", 0) / 1000)
            states[e["subject"]] = (d.get("http") or {}).get("status")
    total = time.monotonic() - t0
    built.close()

    prober = Prober(Guard(["127.0.0.0/8"]), built.service.exposure.prober.cfg)  # type: ignore[union-attr]
    sample = []
    for h in hosts[: args.sample]:
        s0 = time.monotonic()
        prober.probe(Target(h, server.ports[h]))
        sample.append(time.monotonic() - s0)
    sequential = sum(durations)
    ok = sum(1 for v in states.values() if v == 200)
    print(f"alerts                 {args.alerts} (one probe each; {ok} answered HTTP 200)")
    print(f"settings               concurrency={args.concurrency} rate={args.rate}/s banner_wait=0.2s")
    print(f"probe time             mean {statistics.mean(durations):.2f}s, min {min(durations):.2f}s, "
          f"max {max(durations):.2f}s (in the batch)")  # fmt: skip
    print(f"sequential sample      mean {statistics.mean(sample):.2f}s over {len(sample)} probes run one by one")
    print(f"batch total            {total:.1f}s (prepare {t_prepare:.1f}s, handlers {total - t_prepare:.2f}s)")
    print(f"sequential time        {sequential:.0f}s (sum of the probes' durations)")
    print(f"ratio                  {100 * total / sequential:.2f}% of sequential")
    print(f"peak concurrency       {built.engine.peak_concurrency('exposure')} probes in flight (engine), "
          f"{server.peak} connections open at the server")  # fmt: skip


if __name__ == "__main__":
    main()
