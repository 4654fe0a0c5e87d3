"""``alertline ingest ...`` (transports) and ``alertline normalize`` (normalizers)."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path

import click


def register(cli: click.Group) -> None:
    register_normalize(cli)
    _register_transports(cli)
    _register_replay(cli)


# ---------------------------------------------------------------- transports: alertline ingest ...
def _register_transports(cli: click.Group) -> None:
    @cli.group("ingest")
    def ingest() -> None:
        """Ingest deliveries through the archive-first pipeline (the service: `alertline run ingest`)."""

    @ingest.command("file")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
    def ingest_file(paths: tuple[str, ...]) -> None:
        """Backfill/demo: each file is one delivery, archived to S3 then published to Kafka.

        Settings as for the service (ALERTLINE_ARCHIVE__BUCKET, ALERTLINE_KAFKA__BOOTSTRAP, ...).
        Prints one progress line per file; exits 1 if any file could not be archived and published.
        """
        import uuid
        from pathlib import Path

        from services.ingest.app import wire
        from services.ingest.settings import IngestSettings
        from services.ingest.sources.files import FileResult, ingest_files

        settings = IngestSettings()
        w = wire(settings)
        # A one-off producer id: a backfill must not fence a running service replica.
        w.settings = settings.model_copy(
            update={"runtime": settings.runtime.model_copy(update={"instance_id": f"file-{uuid.uuid4().hex[:8]}"})}
        )
        pipeline = w.pipeline("file")
        total = len(paths)

        def progress(n: int, r: FileResult) -> None:
            if r.ok:
                click.echo(
                    f"[{n}/{total}] {r.path}: {r.alerts} alerts, {r.dead_letters} dead letters ({r.raw_uri})", err=True
                )
            else:
                click.echo(f"[{n}/{total}] {r.path}: FAILED, not published: {r.reason}", err=True)

        try:
            results = ingest_files([Path(p) for p in paths], pipeline, progress=progress)
        finally:
            w.close()
        failed = [r for r in results if not r.ok]
        alerts = sum(r.alerts for r in results)
        dead = sum(r.dead_letters for r in results)
        click.echo(f"{total - len(failed)}/{total} files ingested: {alerts} alerts, {dead} dead letters", err=True)
        if failed:
            raise SystemExit(1)


# ---------------------------------------------------------------- normalizers: alertline normalize
def _register_replay(cli: click.Group) -> None:
    replay = cli.commands.get("replay")
    if not isinstance(replay, click.Group):
        return

    @replay.command("archive")
    @click.option("--from", "start", required=True, help="ISO-8601 or relative (now-2h): archived at or after.")
    @click.option("--to", "end", default="now", show_default=True, help="Archived at or before.")
    def replay_archive(start: str, end: str) -> None:
        """Re-publish archived raw deliveries from S3 through normalization into the pipeline.

        Settings as for the ingest service (ALERTLINE_ARCHIVE__*, ALERTLINE_KAFKA__*). Safe to
        repeat: downstream idempotency means a second replay changes nothing."""
        import uuid

        from alertline.clock import utcnow
        from alertline.errors import AlertlineError
        from alertline.timeparse import parse_time
        from services.ingest import aws
        from services.ingest.app import wire
        from services.ingest.replay import replay as run_replay
        from services.ingest.settings import IngestSettings

        try:
            t0, t1 = parse_time(start), parse_time(end)
        except AlertlineError as exc:
            raise click.ClickException(str(exc)) from exc
        settings = IngestSettings()
        w = wire(settings)
        w.settings = settings.model_copy(
            update={"runtime": settings.runtime.model_copy(update={"instance_id": f"replay-{uuid.uuid4().hex[:8]}"})}
        )
        s3 = aws.client(
            "s3",
            settings.aws.model_copy(
                update={"endpoint_url": settings.archive.endpoint_url or settings.aws.endpoint_url}
            ),
            settings.archive.region,
        )

        def progress(n: int, total: int, item: object, what: str) -> None:
            click.echo(f"[{n}/{total}] {getattr(item, 'key', item)}: {what}", err=True)

        try:
            r = run_replay(s3, settings.archive.bucket, settings.archive.prefix, w.pipeline("replay"), t0, t1, utcnow,
                           progress)  # fmt: skip
        finally:
            w.close()
        click.echo(f"replayed {r.deliveries} deliveries: {r.alerts} alerts, {r.dead_letters} dead letters, "
                   f"{r.failed} failed")  # fmt: skip
        if r.failed:
            raise SystemExit(1)


def register_normalize(cli: click.Group) -> None:
    @cli.command("normalize")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
    @click.option(
        "--received-at",
        type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"]),
        default=None,
        help="Receipt time to normalize against (ISO-8601 UTC, e.g. 2026-11-23T11:00:00Z); default: now.",
    )
    def normalize_cmd(paths: tuple[Path, ...], received_at: datetime | None) -> None:
        """Normalize files, each one delivery as a transport hands it; no Kafka, no cloud.

        Prints one JSON object per alert on stdout. A file (or a finding in it) that cannot
        be accepted gets one line on stderr naming it and the reason; the other files still
        go through, and the exit code is 1.
        """
        ok = normalize_files(paths, received_at=received_at)
        if not ok:
            sys.exit(1)


def normalize_files(paths: tuple[Path, ...] | list[Path], *, received_at: datetime | None = None) -> bool:
    """The body of ``alertline normalize``; True when every file and finding was accepted."""
    from datetime import UTC

    from alertline.clock import utcnow
    from alertline.errors import NormalizeError
    from services.ingest.normalize import RawLocation, normalize
    from services.ingest.normalize.view import summary

    if received_at is not None and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    ok = True
    out = click.get_text_stream("stdout")
    for path in paths:
        try:
            body = path.read_bytes()
        except OSError as exc:
            click.echo(f"{path}: cannot read: {exc.strerror or exc}", err=True)
            ok = False
            continue
        raw = RawLocation(f"file://{path.resolve()}", hashlib.sha256(body).hexdigest())
        try:
            result = normalize(body, raw=raw, received_at=received_at or utcnow())
        except NormalizeError as exc:
            click.echo(f"{path}: {exc}", err=True)
            ok = False
            continue
        for alert in result.alerts:
            out.write(json.dumps(summary(alert), ensure_ascii=False) + "\n")
        for err in result.errors:
            click.echo(f"{path}: finding {err.index}: {err.message}", err=True)
            ok = False
    out.flush()
    return ok
