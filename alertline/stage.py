"""What a processing step sees. Kafka-free: handlers import this, never ``confluent_kafka``.

A handler is a plain function ``handle(record, ctx) -> Iterable[Output]``:
- return outputs (possibly none) when the record is processed;
- raise ``BadInput`` (or let any unexpected error escape) and the record goes to the
  dead-letter topic with its cause, while the rest flow on;
- raise ``Transient`` and the record (and the rest of its partition) is retried after a
  back-off; nothing is committed past it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import msgspec

from alertline.clock import Clock, utcnow

HOT_KEYS = 256  # decoded committed values kept per partition (PartitionState.get)


class Record(msgspec.Struct, frozen=True, gc=False):
    """One input record. Immutable. A ``msgspec.Struct`` because the runtime builds one per
    record: a C-level constructor, half the time of a tuple and a fifth of a NamedTuple's or a
    dataclass's (decisions 0010, 0013). ``gc=False``: records are never part of a reference
    cycle, so the garbage collector need not track them.

    Built by hand (tests, tools): ``Record(topic, partition, offset, key, value, headers,
    timestamp_ms)``. The runtime passes the consumed message instead (``_msg``), and
    ``headers`` and ``timestamp_ms`` are read from it when a handler asks: most handlers never
    do, and reading both for every record was a tenth of the runtime's per-record time.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    _headers: Mapping[str, bytes] | None = None
    _timestamp_ms: int = 0
    _msg: Any = None  # a confluent_kafka.Message, when the runtime built this record

    @property
    def headers(self) -> Mapping[str, bytes]:
        m = self._msg
        if m is None:
            return self._headers if self._headers is not None else NO_HEADERS
        raw = m.headers()
        return headers_of(raw) if raw else NO_HEADERS

    @property
    def timestamp_ms(self) -> int:
        m = self._msg
        return self._timestamp_ms if m is None else int(m.timestamp()[1])

    @property
    def key_str(self) -> str:
        return self.key.decode("utf-8", "replace") if self.key is not None else ""


# Shared by every record without headers (most of them): read-only, so no handler can leak
# into another record's.
NO_HEADERS: Mapping[str, bytes] = MappingProxyType({})


def headers_of(raw: Any) -> dict[str, bytes]:
    """Kafka headers (a list of name, value pairs, or a dict) as a dict of bytes."""
    out: dict[str, bytes] = {}
    for k, v in raw.items() if isinstance(raw, dict) else raw:
        out[k] = v.encode() if isinstance(v, str) else (v or b"")
    return out


class Output(msgspec.Struct, frozen=True, gc=False):
    """One record to produce. ``schema`` names the Avro contract; ``None`` sends bytes as-is.

    ``value=None`` is a tombstone. ``partition`` pins the partition (state topics are
    co-partitioned with their input); otherwise the key decides. Immutable, a ``msgspec.Struct``
    like ``Record``: every handler builds one per output, and ``Output(topic, value, key=...,
    schema=...)`` costs ~40 ns instead of a NamedTuple's ~260 ns (decision 0013).
    """

    topic: str
    value: Mapping[str, Any] | bytes | None
    key: str | bytes | None = None
    schema: str | None = None
    headers: Mapping[str, bytes] | None = None
    partition: int | None = None


class PartitionState:
    """Key -> value state for one input partition, backed by a compacted topic.

    Writes go to a per-record scratch, then a per-batch overlay; the runtime writes the
    overlay to the state topic inside the same transaction as the input offsets and applies
    it to memory only after that transaction commits.
    """

    def __init__(
        self,
        committed: dict[str, Any] | None = None,
        pack: Callable[[Any], bytes] | None = None,
        unpack: Callable[[bytes], Any] | None = None,
    ) -> None:
        # With ``pack``/``unpack`` (the state's Avro codec), committed values are kept encoded
        # and decoded on read: ~300 bytes instead of ~2.5 KB of dicts and datetimes per key, so
        # a ticket service holding 100,000 identities stays small. As before, a value read must
        # not be changed in place (write a changed copy with ``set``).
        self.committed: dict[str, Any] = committed if committed is not None else {}
        self._pack = pack
        self._unpack = unpack
        # The most recently read keys, decoded (a storm's pages are read on every member event).
        self._hot: OrderedDict[str, Any] = OrderedDict()
        self._batch: dict[str, Any] = {}
        self._record: dict[str, Any] = {}

    _DELETED = object()
    _MISSING = object()

    def get(self, key: str, default: Any = None) -> Any:
        for layer in (self._record, self._batch):
            if key in layer:
                v = layer[key]
                return default if v is self._DELETED else v
        v = self.committed.get(key, self._MISSING)
        if v is self._MISSING:
            return default
        if self._unpack is not None and type(v) is bytes:
            hot = self._hot.get(key, self._MISSING)
            if hot is self._MISSING:
                hot = self._hot[key] = self._unpack(v)
                if len(self._hot) > HOT_KEYS:
                    self._hot.popitem(last=False)
            else:
                self._hot.move_to_end(key)
            return hot
        return v

    def set(self, key: str, value: Any) -> None:
        self._record[key] = value

    def delete(self, key: str) -> None:
        self._record[key] = self._DELETED

    def keys(self) -> Iterator[str]:
        seen = set()
        for layer in (self._record, self._batch, self.committed):
            for k in layer:
                if k not in seen:
                    seen.add(k)
                    top = self._record.get(k, self._batch.get(k, self._MISSING))
                    if top is not self._DELETED:
                        yield k

    # runtime side
    def end_record(self, ok: bool) -> None:
        if ok:
            self._batch.update(self._record)
        self._record.clear()

    def pending(self) -> dict[str, Any | None]:
        return {k: (None if v is self._DELETED else v) for k, v in self._batch.items()}

    def commit_batch(self) -> None:
        for k, v in self._batch.items():
            self._hot.pop(k, None)
            if v is self._DELETED:
                self.committed.pop(k, None)
            else:
                self.committed[k] = self._pack(v) if self._pack is not None else v
        self._batch.clear()

    def abort_batch(self) -> None:
        self._batch.clear()
        self._record.clear()


class _NoState(PartitionState):
    def set(self, key: str, value: Any) -> None:
        raise RuntimeError("this stage has no state topic")


@dataclass
class Context:
    """Per-record context handed to a handler."""

    now: Clock = utcnow
    state: PartitionState = field(default_factory=_NoState)
    partition: int = 0

    def time(self) -> datetime:
        return self.now()


Handler = Callable[[Record, Context], Iterable[Output]]
