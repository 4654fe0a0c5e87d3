"""The ingest domain: what a delivery is, where its raw bytes are archived, and how a
delivery's processing ends. Pure: no S3, Kafka or cloud SDK here."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from alertline.errors import BadInput

SOURCES = ("sqs", "s3", "pubsub", "eventhubs", "file")


class TooLarge(BadInput):
    """A delivery or a record made from it exceeds a configured size limit."""


class ObjectMissing(BadInput):
    """An S3 notification names an object that no longer exists."""


@dataclass(frozen=True)
class Delivery:
    """One unit the source hands us and later wants acknowledged (or part of one: an SQS
    message that announces several S3 objects yields one delivery per object).

    ``sent_at`` is the source's own enqueue time (SQS SentTimestamp, Pub/Sub publish_time,
    Event Hubs enqueued_time, S3 eventTime, file mtime). It names the archive's date folder,
    so a redelivery, whenever it comes, lands on the same archive object.
    ``defect`` marks a delivery already known to be bad (e.g. its S3 object is gone): it is
    archived and dead-lettered with that cause instead of being normalized.
    """

    source: str
    origin: str
    body: bytes
    received_at: datetime
    sent_at: datetime | None = None
    hint: str | None = None
    partition: int | None = None
    offset: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    defect: BadInput | None = None

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def archive_key(prefix: str, d: Delivery) -> str:
    """``<prefix><source>/YYYY/MM/DD/<sha256>.json``: content-addressed (a redelivery overwrites
    the same object) under a date folder (a time range can be listed and replayed)."""
    day = (d.sent_at or d.received_at).astimezone(UTC)
    return f"{prefix}{d.source}/{day:%Y/%m/%d}/{d.sha256}.json"


@dataclass(frozen=True)
class Done:
    """Archived and every record confirmed by Kafka: acknowledge the source now."""

    raw_uri: str
    alerts: int
    dead_letters: int


@dataclass(frozen=True)
class Retry:
    """Not acknowledged: the source must deliver it again (after ``retry_after`` seconds)."""

    reason: str
    retry_after: float | None = None


Outcome = Done | Retry


def error_class(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


GZIP_MAGIC = b"\x1f\x8b"


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip (multi-member too) refusing more than ``limit`` bytes: a small object
    must not expand into gigabytes in memory."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=31)
        try:
            out += d.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadInput(f"corrupt gzip: {exc}") from exc
        if len(out) > limit or d.unconsumed_tail:
            raise TooLarge(f"gzip expands beyond {limit} bytes")
        if not d.eof:
            raise BadInput("truncated gzip stream")
        rest = d.unused_data.lstrip(b"\x00")
    return bytes(out)


def maybe_gunzip(data: bytes, limit: int) -> bytes:
    return gunzip_bounded(data, limit) if data[:2] == GZIP_MAGIC else data
