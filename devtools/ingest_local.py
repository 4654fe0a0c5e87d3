"""The ingest service for the local stack (demo, end-to-end and chaos tests).

Exactly ``alertline run ingest``, except that Event Hubs is driven at the SDK boundary from a
file-backed hub (devtools/eventhubs.py) because no AMQP server can run here. Settings come from
ALERTLINE_*; ALERTLINE_DEMO_EVENTHUB_DIR / ALERTLINE_DEMO_CHECKPOINTS locate the hub.
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
    if os.environ.get("ALERTLINE_DEMO_EVENTHUB_DIR"):
        from devtools.eventhubs import FakeEventHub, FileCheckpointStore, PartitionPump

        receiver = PartitionPump(
            FakeEventHub(Path(os.environ["ALERTLINE_DEMO_EVENTHUB_DIR"])),
            FileCheckpointStore(Path(os.environ["ALERTLINE_DEMO_CHECKPOINTS"])),
            namespace=settings.ingest.eventhubs.fully_qualified_namespace,
            eventhub=settings.ingest.eventhubs.eventhub_name,
        )
    raise SystemExit(build(settings, eventhubs_receiver=receiver).run())


if __name__ == "__main__":
    main()
