"""``alertline probe TARGET...``: the exposure probe from the command line, no Kafka."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click


def register(cli: click.Group) -> None:
    cli.add_command(probe)


@click.command("probe")
@click.argument("targets", nargs=-1, required=True)
@click.option("--allow", "allow", multiple=True, metavar="CIDR", help="Also allow this range (repeatable).")
@click.option("--screenshot", "screenshot_dir", default=None, metavar="DIR", help="Save page screenshots (PNG) in DIR.")
@click.option("--connect-timeout", type=float, default=None, help="Seconds to wait for a TCP connect.")
def probe(
    targets: tuple[str, ...], allow: tuple[str, ...], screenshot_dir: str | None, connect_timeout: float | None
) -> None:
    """Probe TARGETs (host:port or http(s) URL) the way the enrich service does; print one JSON
    object per target: guard refusal and reason, TCP state, HTTP / SSH / TLS findings.

    Private, loopback, link-local, metadata and other non-public addresses are refused unless
    --allow (or ALERTLINE_PROBE__ALLOW) covers them.
    """
    from services.enrich.app import probe_config
    from services.enrich.artifacts import DirectoryArtifacts
    from services.enrich.guard import Guard
    from services.enrich.probe import Prober, ProbeResult, parse_target
    from services.enrich.screenshot import Chromium, GuardProxy
    from services.enrich.settings import EnrichSettings

    settings = EnrichSettings()
    try:
        guard = Guard([*settings.probe.allow, *allow])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow") from exc
    cfg = probe_config(settings.probe)
    if connect_timeout is not None:
        from dataclasses import replace

        cfg = replace(cfg, connect_timeout_s=connect_timeout)
    proxy = None
    shooter = None
    store = None
    if screenshot_dir:
        proxy = GuardProxy(guard, io_timeout_s=settings.probe.read_timeout_s * 2)
        s = settings.screenshot
        shooter = Chromium(proxy, s.chromium, s.timeout_s, s.window, s.concurrency)
        store = DirectoryArtifacts(screenshot_dir)
    prober = Prober(guard, cfg, shooter)

    def one(text: str) -> dict[str, Any]:
        try:
            target = parse_target(text)
        except ValueError as exc:
            return {"target": text, "error": str(exc)}
        res: ProbeResult = prober.probe(target)
        if res.screenshot is not None and store is not None:
            res.data["screenshot"]["path"] = store.put_png(res.screenshot, target.label.replace(":", "_"))
        return res.data

    bad = False
    try:
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            for data in pool.map(one, targets):
                bad = bad or ("error" in data and data.get("tcp") is None and data.get("refused") is None)
                click.echo(json.dumps(data, sort_keys=True))
                sys.stdout.flush()
    finally:
        if proxy is not None:
            proxy.stop()
    if bad:
        sys.exit(2)
