"""``alertline ingest ...`` (transports) and ``alertline normalize`` (normalizers)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    _register_transports(cli)


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
# (added by the normalize work)
