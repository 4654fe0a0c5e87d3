"""Ingest transport throughput: archive to S3 (moto server over HTTP) + the real normalizer +
one Kafka transaction per batch, as the SQS source does with 10 messages per receive. Each
delivery is the Security Hub multi-finding fixture (3 ASFF findings) with fresh finding ids.

Reports deliveries/s and alerts/s through Pipeline.run, and the batch latency (p50/p99).

usage: KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/ingest_pipeline.py [BATCHES]
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer
from prometheus_client import CollectorRegistry

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create_topics
from alertline.kafka.publisher import Publisher
from alertline.settings import KafkaSettings
from services.ingest.archive import S3Archive
from services.ingest.domain import Delivery
from services.ingest.normalize import normalize
from services.ingest.pipeline import IngestMetrics, Pipeline, Topics

BATCH = 10
FINDINGS = 3
FIXTURE = "tests/fixtures/deliveries/securityhub/multi-finding.json"


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    template = json.loads((Path(__file__).resolve().parent.parent / FIXTURE).read_bytes())
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    s3.create_bucket(Bucket="bench")
    kafka = KafkaSettings(bootstrap=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
                          topic_prefix=f"bench{uuid.uuid4().hex[:6]}.", partitions=3)  # fmt: skip
    create_topics(kafka, ["alerts", "ingest.dlq"])
    codec = SingleObjectCodec()
    publisher = Publisher(kafka, codec, f"{kafka.topic_prefix}bench")
    p = Pipeline(
        archive=S3Archive(s3, "bench"), archive_prefix="raw/", normalize=normalize, publisher=publisher, codec=codec,
        topics=Topics.for_prefix(kafka.topic_prefix), metrics=IngestMetrics(CollectorRegistry()),
    )  # fmt: skip
    now = datetime.now(UTC)

    def body(n: int) -> bytes:
        event = json.loads(json.dumps(template))
        for f in event["detail"]["findings"]:
            f["Id"] += f"-{n}"
        return json.dumps(event).encode()

    p.run([Delivery("sqs", "warmup", body(-1), now, now, "sqs")])
    lat: list[float] = []
    alerts = 0
    t0 = time.perf_counter()
    for b in range(batches):
        ds = [Delivery("sqs", f"q#{b}-{i}", body(b * BATCH + i), now, now, "sqs") for i in range(BATCH)]
        s = time.perf_counter()
        outs = p.run(ds)
        lat.append(time.perf_counter() - s)
        alerts += sum(getattr(o, "alerts", 0) for o in outs)
    dt = time.perf_counter() - t0
    publisher.close()
    moto.stop()
    q = statistics.quantiles(lat, n=100)
    print(f"batches={batches} x {BATCH} deliveries x {FINDINGS} findings (real normalizer)")
    print(f"deliveries/s={batches * BATCH / dt:.0f}  alerts/s={alerts / dt:.0f}")
    print(f"batch latency p50={q[49] * 1000:.1f} ms  p99={q[98] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
