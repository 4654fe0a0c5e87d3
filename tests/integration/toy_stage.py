"""A toy stage on the real runtime, run as its own process by the integration tests.

usage: python -m tests.integration.toy_stage IN OUT DLQ GROUP INSTANCE
It decodes an Alert, adds a label, and produces it to OUT keyed by identity.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable

from alertline import logs
from alertline.avro import SingleObjectCodec
from alertline.errors import BadInput
from alertline.kafka.runtime import Runner, Stage
from alertline.settings import KafkaSettings, RuntimeSettings
from alertline.stage import Context, Output, Record


def main() -> None:
    src, dst, dlq, group, instance = sys.argv[1:6]

    pause = float(os.environ.get("SLEEP_MS", "0")) / 1000

    def handle(rec: Record, ctx: Context) -> Iterable[Output]:
        if pause:
            time.sleep(pause)  # keeps the stage busy long enough for kills to land mid-stream
        alert = rec.value
        if alert["title"] == "poison":
            raise BadInput("poison title")
        alert["labels"][group] = "seen"
        yield Output(dst, alert, key=alert["identity"], schema="alert")

    logs.configure(group, "WARNING")
    stage = Stage(service=group, group_id=group, inputs=[src], input_schema="alert", handler=handle, dlq_topic=dlq)
    Runner(
        stage,
        KafkaSettings(bootstrap=os.environ["KAFKA_BOOTSTRAP"], transaction_timeout_ms=10000),
        RuntimeSettings(
            instance_id=instance,
            http_port=0,
            batch_size=int(os.environ.get("BATCH", "500")),
            session_timeout_ms=6000,
            static_membership=os.environ.get("STATIC", "1") == "1",
        ),
        SingleObjectCodec(),
    ).run()


if __name__ == "__main__":
    main()
