"""Files for backfill and the demo: each file is one delivery through the same pipeline."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alertline.clock import Clock, utcnow
from alertline.errors import BadInput
from services.ingest.domain import Delivery, Done, TooLarge, maybe_gunzip
from services.ingest.pipeline import Pipeline
from services.ingest.sources.backoff import Backoff


@dataclass(frozen=True)
class FileResult:
    path: str
    ok: bool
    alerts: int = 0
    dead_letters: int = 0
    raw_uri: str = ""
    reason: str = ""


def ingest_files(
    paths: Iterable[Path],
    pipeline: Pipeline,
    *,
    max_bytes: int = 256 * 1024 * 1024,
    attempts: int = 3,
    clock: Clock = utcnow,
    backoff: Backoff | None = None,
    progress: Callable[[int, FileResult], None] = lambda n, r: None,
) -> list[FileResult]:
    """Archive + publish each file; a file whose archive or Kafka write keeps failing is
    reported (not skipped silently) after ``attempts`` tries."""
    backoff = backoff or Backoff(0.5, 5.0)
    never = threading.Event()
    out: list[FileResult] = []
    for n, path in enumerate(paths, 1):
        result = _one(path, pipeline, max_bytes, attempts, clock, backoff, never)
        out.append(result)
        progress(n, result)
    return out


def _one(
    path: Path,
    pipeline: Pipeline,
    max_bytes: int,
    attempts: int,
    clock: Clock,
    backoff: Backoff,
    sleep: threading.Event,
) -> FileResult:
    try:
        stat = path.stat()
        if stat.st_size > max_bytes:
            raise TooLarge(f"{stat.st_size} bytes, over {max_bytes}")
        body = path.read_bytes()
    except (OSError, TooLarge) as exc:
        return FileResult(str(path), False, reason=f"unreadable: {exc}")
    defect: BadInput | None = None
    try:
        body = maybe_gunzip(body, max_bytes)
    except BadInput as exc:  # corrupt or oversized gzip: archived as-is and dead-lettered
        defect = exc
    d = Delivery(
        "file",
        path.resolve().as_uri(),
        body,
        clock(),
        datetime.fromtimestamp(stat.st_mtime, UTC),
        None,
        meta={"path": str(path)},
        defect=defect,
    )
    backoff.reset()
    reason = ""
    for attempt in range(attempts):
        outcome = pipeline.run([d])[0]
        if isinstance(outcome, Done):
            return FileResult(str(path), True, outcome.alerts, outcome.dead_letters, outcome.raw_uri)
        reason = outcome.reason
        if attempt + 1 < attempts:
            backoff.wait(sleep, outcome.retry_after)
    return FileResult(str(path), False, reason=reason)
