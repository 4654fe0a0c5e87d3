"""Commands from devtools: the demo."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from devtools.demo import demo

    cli.add_command(demo)
