"""The ingest service as its own process, for the crash tests.

usage: python -m tests.integration.ingest.ingest_proc
Settings come from ALERTLINE_* like `alertline run ingest`, with the real normalizer. One
test-only substitution goes through the composition root: INGEST_TEST_EVENTHUB_DIR /
INGEST_TEST_CHECKPOINTS drive Event Hubs at the SDK boundary (devtools/eventhubs.py) instead
of an AMQP connection that cannot exist here.
"""

from __future__ import annotations

import os
from pathlib import Path

from alertline import logs
from services.ingest.app import build
from services.ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    logs.configure("ingest", settings.runtime.log_level)
    receiver = None
    if os.environ.get("INGEST_TEST_EVENTHUB_DIR"):
        from devtools.eventhubs import FakeEventHub, FileCheckpointStore, PartitionPump

        receiver = PartitionPump(
            FakeEventHub(Path(os.environ["INGEST_TEST_EVENTHUB_DIR"])),
            FileCheckpointStore(Path(os.environ["INGEST_TEST_CHECKPOINTS"])),
            max_batch_size=2,
        )
    raise SystemExit(build(settings, eventhubs_receiver=receiver).run())


if __name__ == "__main__":
    main()
