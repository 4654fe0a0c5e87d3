"""The one command line: ``alertline ...``.

Shared commands live here; each service adds its own through ``<module>.register(cli)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import click

from alertline.kafka.local import LocalKafka, cache_dir

# Modules that add commands. A module that does not exist yet is skipped.
COMMAND_MODULES = (
    "services.ingest.cli",
    "services.evaluate.cli",
    "services.enrich.cli",
    "services.ticket.cli",
    "services.scan.cli",
    "devtools.cli",
)
SERVICES = ("ingest", "evaluate", "enrich", "ticket", "scan")


@click.group()
@click.version_option(package_name="alertline")
def cli() -> None:
    """Alertline: cloud security alerts in, one honest queue of GitHub Issues out."""


# ---------------------------------------------------------------- kafka
def _local(port: int, home: str | None) -> LocalKafka:
    return LocalKafka(Path(home) if home else cache_dir() / f"kafka-{port}", port=port, controller_port=port + 1)


@cli.group()
def kafka() -> None:
    """Start, stop and inspect the local single-node Kafka (KRaft) on 127.0.0.1."""


_port = click.option("--port", default=19092, show_default=True, help="Broker port (controller uses port+1).")
_home = click.option("--home", default=None, help="Data directory (default: the cache directory).")


@kafka.command("up")
@_port
@_home
def kafka_up(port: int, home: str | None) -> None:
    """Format (first time) and start the broker; wait until it accepts connections."""
    k = _local(port, home)
    click.echo(f"starting Kafka on {k.bootstrap} (data: {k.home}) ...", err=True)
    k.up()
    click.echo(k.bootstrap)


@kafka.command("down")
@_port
@_home
def kafka_down(port: int, home: str | None) -> None:
    """Stop the broker cleanly."""
    _local(port, home).down()
    click.echo("stopped", err=True)


@kafka.command("status")
@_port
@_home
def kafka_status(port: int, home: str | None) -> None:
    """Show whether the broker is running."""
    click.echo(_local(port, home).status())


# ---------------------------------------------------------------- topics
@cli.group()
def topics() -> None:
    """Topic administration."""


@topics.command("create")
@click.option("--partitions", type=int, default=None, help="Override the configured partition count.")
def topics_create(partitions: int | None) -> None:
    """Create every Alertline topic idempotently (state topics compacted)."""
    from alertline.kafka.admin import create_topics
    from alertline.settings import BaseServiceSettings, KafkaSettings

    settings: KafkaSettings = BaseServiceSettings().kafka
    for name, result in create_topics(settings, partitions=partitions).items():
        click.echo(json.dumps({"topic": name, "result": result}))


# ---------------------------------------------------------------- run
@cli.command("run")
@click.argument("service", type=click.Choice(SERVICES))
def run(service: str) -> None:
    """Run one service until SIGTERM (settings from ALERTLINE_* environment variables)."""
    module = importlib.import_module(f"services.{service}.app")
    module.main()


def main() -> None:
    from alertline.replay_cli import replay

    cli.add_command(replay)
    for name in COMMAND_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(name).register(cli)
    try:
        cli(standalone_mode=True)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
