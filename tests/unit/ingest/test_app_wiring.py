"""The composition root wires one source per configured queue / subscription / Event Hub, and
the production Event Hubs path builds the real SDK objects (no connection is opened here)."""

from __future__ import annotations

import pytest

from alertline.avro import SingleObjectCodec
from alertline.errors import ConfigError
from services.ingest.app import _production_eventhubs, build
from services.ingest.normalize import normalize
from services.ingest.settings import IngestSettings


def test_one_source_per_queue_and_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s = IngestSettings(
        archive={"bucket": "archive"},
        ingest={
            "sqs": {"queue_urls": ["http://127.0.0.1:1/q1", "http://127.0.0.1:1/q2"]},
            "pubsub": {"subscriptions": ["projects/p/subscriptions/s"], "concurrency": 2},
        },
    )
    app = build(s, normalize=normalize, codec=SingleObjectCodec(), pubsub_subscriber=object())
    assert sorted(app.sources) == ["pubsub-0", "sqs-0", "sqs-1"]
    ids = sorted(p._conf["transactional.id"] for p in app.wiring.publishers)
    assert len(set(ids)) == 4, "one transactional producer per worker"


def test_nothing_runs_without_an_archive_bucket() -> None:
    with pytest.raises(ConfigError, match="ARCHIVE__BUCKET"):
        build(IngestSettings(), normalize=normalize, codec=SingleObjectCodec())


def test_production_event_hubs_uses_the_blob_checkpoint_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE", "ns.servicebus.windows.net")
    monkeypatch.setenv("ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME", "defender")
    monkeypatch.setenv(
        "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL", "https://acct.blob.core.windows.net/checkpoints"
    )
    monkeypatch.setenv(
        "ALERTLINE_INGEST__EVENTHUBS__CONNECTION_STRING",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey=a2V5;EntityPath=defender",
    )
    monkeypatch.setenv(
        "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    )
    receiver = _production_eventhubs(IngestSettings())
    cells = {type(c.cell_contents).__name__ for c in receiver.__closure__ or ()}  # type: ignore[attr-defined]
    assert "BlobCheckpointStore" in cells
