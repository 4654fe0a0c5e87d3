"""Azure Event Hubs at the SDK boundary, for tests and the demo (no AMQP server runs here).

- ``FileCheckpointStore``: a real ``azure.eventhub.CheckpointStore`` (ownership with etags,
  checkpoints), file-backed so it survives a SIGKILLed consumer process.
- ``FakeEventHub``: partitions as files of AMQP-encoded messages. ``send`` builds a real
  ``EventData``, stamps the annotations the service stamps (x-opt-sequence-number,
  x-opt-offset, x-opt-enqueued-time) and encodes it with the SDK's own AMQP encoder; reading
  decodes with the SDK's decoder and ``EventData._from_message``, as the SDK's receive link does.
- ``PartitionPump``: what ``EventHubConsumerClient.receive_batch`` does for our handler: claim
  partitions through the checkpoint store, start after each partition's checkpoint, call
  ``on_event_batch(PartitionContext, [EventData])``, and after a handler error call
  ``on_error`` and restart the partition from its last checkpoint (the SDK closes the
  partition consumer and re-opens it from the checkpoint).
Never imported by service code.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.eventhub import CheckpointStore, EventData
from azure.eventhub._eventprocessor.partition_context import PartitionContext
from azure.eventhub._pyamqp._decode import decode_payload
from azure.eventhub._pyamqp._encode import encode_payload
from azure.eventhub._pyamqp.types import TYPE, VALUE, AMQPTypes
from azure.eventhub._transport._pyamqp_transport import PyamqpTransport


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new file, never half


class FileCheckpointStore(CheckpointStore):  # type: ignore[misc]
    """Checkpoints and ownership in one JSON file (process-safe with flock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @staticmethod
    def _k(ns: str, hub: str, cg: str, pid: str) -> str:
        return f"{ns.lower()}/{hub.lower()}/{cg.lower()}/{pid}"

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = _read_json(self.path, {"ownership": {}, "checkpoints": {}})
        return data

    def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        prefix = self._k(fully_qualified_namespace, eventhub_name, consumer_group, "")
        with _locked(self.path):
            own = self._load()["ownership"]
        return [
            dict(v, last_modified_time=datetime.fromtimestamp(v["last_modified_time"], UTC))
            for k, v in own.items()
            if k.startswith(prefix)
        ]

    def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        claimed = []
        with _locked(self.path):
            data = self._load()
            for o in ownership_list:
                k = self._k(o["fully_qualified_namespace"], o["eventhub_name"], o["consumer_group"], o["partition_id"])
                current = data["ownership"].get(k)
                if current is not None and o.get("etag") != current.get("etag"):
                    continue  # someone else claimed it since we listed: optimistic concurrency
                new = {
                    "fully_qualified_namespace": o["fully_qualified_namespace"],
                    "eventhub_name": o["eventhub_name"],
                    "consumer_group": o["consumer_group"],
                    "partition_id": o["partition_id"],
                    "owner_id": o["owner_id"],
                    "etag": uuid.uuid4().hex,
                    "last_modified_time": time.time(),
                }
                data["ownership"][k] = new
                claimed.append(dict(new, last_modified_time=datetime.fromtimestamp(new["last_modified_time"], UTC)))
            _write_json(self.path, data)
        return claimed

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        k = self._k(
            checkpoint["fully_qualified_namespace"], checkpoint["eventhub_name"], checkpoint["consumer_group"],
            checkpoint["partition_id"],
        )  # fmt: skip
        with _locked(self.path):
            data = self._load()
            data["checkpoints"][k] = {
                "fully_qualified_namespace": checkpoint["fully_qualified_namespace"],
                "eventhub_name": checkpoint["eventhub_name"],
                "consumer_group": checkpoint["consumer_group"],
                "partition_id": checkpoint["partition_id"],
                "sequence_number": int(checkpoint["sequence_number"]),
                "offset": str(checkpoint["offset"]),
            }
            _write_json(self.path, data)

    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        prefix = self._k(fully_qualified_namespace, eventhub_name, consumer_group, "")
        with _locked(self.path):
            cps = self._load()["checkpoints"]
        return [dict(v) for k, v in cps.items() if k.startswith(prefix)]


class FakeEventHub:
    """An Event Hub's partitions, persisted under ``directory`` (shared across processes)."""

    def __init__(self, directory: Path | str, partitions: int = 2) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.partition_ids = [str(n) for n in range(partitions)]

    def _log(self, pid: str) -> Path:
        return self.dir / f"partition-{pid}.json"

    def send(self, body: bytes | str, partition_id: str = "0", properties: dict[str, Any] | None = None) -> int:
        """Append one event; returns its sequence number."""
        ed = EventData(body)
        if properties:
            ed.properties = properties
        path = self._log(partition_id)
        with _locked(path):
            entries: list[str] = _read_json(path, [])
            seq = len(entries)
            offset = sum(len(base64.b64decode(e)) for e in entries)
            ann = ed.raw_amqp_message
            ann.annotations = {
                b"x-opt-sequence-number": {TYPE: AMQPTypes.long, VALUE: seq},
                b"x-opt-offset": str(offset).encode(),
                b"x-opt-enqueued-time": {TYPE: AMQPTypes.timestamp, VALUE: int(time.time() * 1000)},
            }
            buf = bytearray()
            encode_payload(buf, PyamqpTransport.to_outgoing_amqp_message(ann))
            entries.append(base64.b64encode(bytes(buf)).decode())
            _write_json(path, entries)
        return seq

    def read(self, partition_id: str, after_sequence: int, limit: int) -> list[EventData]:
        path = self._log(partition_id)
        with _locked(path):
            entries: list[str] = _read_json(path, [])
        out = []
        for raw in entries[after_sequence + 1 : after_sequence + 1 + limit]:
            out.append(EventData._from_message(decode_payload(memoryview(base64.b64decode(raw)))))
        return out

    def size(self, partition_id: str) -> int:
        path = self._log(partition_id)
        with _locked(path):
            return len(_read_json(path, []))


class PartitionPump:
    """Drives an ingest ``EventHubsHandler`` like ``EventHubConsumerClient.receive_batch``."""

    def __init__(
        self,
        hub: FakeEventHub,
        store: CheckpointStore,
        *,
        namespace: str = "alertline-demo.servicebus.windows.net",
        eventhub: str = "defender-export",
        consumer_group: str = "$Default",
        max_batch_size: int = 10,
        max_wait_s: float = 0.2,
    ) -> None:
        self.hub = hub
        self.store = store
        self.namespace = namespace
        self.eventhub = eventhub
        self.consumer_group = consumer_group
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.owner_id = uuid.uuid4().hex

    def _checkpointed(self, pid: str) -> int:
        for cp in self.store.list_checkpoints(self.namespace, self.eventhub, self.consumer_group):
            if cp["partition_id"] == pid:
                return int(cp["sequence_number"])
        return -1

    def _claim(self) -> list[str]:
        current = {
            o["partition_id"]: o for o in self.store.list_ownership(self.namespace, self.eventhub, self.consumer_group)
        }
        wanted = [
            {
                "fully_qualified_namespace": self.namespace,
                "eventhub_name": self.eventhub,
                "consumer_group": self.consumer_group,
                "partition_id": pid,
                "owner_id": self.owner_id,
                "etag": current.get(pid, {}).get("etag"),
            }
            for pid in self.hub.partition_ids
        ]
        return [o["partition_id"] for o in self.store.claim_ownership(wanted)]

    def __call__(self, handler: Any, stop: threading.Event) -> None:
        owned = self._claim()
        contexts = {
            pid: PartitionContext(self.namespace, self.eventhub, self.consumer_group, pid, self.store) for pid in owned
        }
        position = {pid: self._checkpointed(pid) for pid in owned}
        while not stop.is_set():
            idle = True
            for pid, ctx in contexts.items():
                if stop.is_set():
                    break
                events = self.hub.read(pid, position[pid], self.max_batch_size)
                if not events:
                    continue
                idle = False
                ctx._last_received_event = events[-1]  # as the SDK's EventProcessor does
                try:
                    handler.on_event_batch(ctx, events)
                    position[pid] = events[-1].sequence_number
                except Exception as exc:  # noqa: BLE001 - the SDK reports handler errors to on_error and reopens
                    handler.on_error(ctx, exc)
                    position[pid] = self._checkpointed(pid)
            if idle:
                stop.wait(self.max_wait_s)
