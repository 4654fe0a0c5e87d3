"""Composition root of the enrich service: ``alertline run enrich``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from alertline import logs
from alertline.avro import make_codec
from alertline.clock import Clock, utcnow
from alertline.errors import ConfigError
from alertline.kafka.runtime import Runner, Stage
from alertline.topics import group, topic
from services.enrich.abuseipdb import AbuseIpDb, AbuseIpDbConfig
from services.enrich.artifacts import S3Artifacts
from services.enrich.ec2 import Ec2Config, Ec2Resolver
from services.enrich.engine import Engine, Enricher, Limits
from services.enrich.enrichers import AbuseIpDbEnricher, Exposure, GeoIp, GeoReader, IpReputation
from services.enrich.feeds import Feeds, FeedSpec
from services.enrich.guard import Guard, Resolver
from services.enrich.probe import ProbeConfig, Prober
from services.enrich.screenshot import Chromium, GuardProxy
from services.enrich.service import EnrichService
from services.enrich.settings import EnrichSettings, ProbeSettings

log = logging.getLogger(__name__)


def probe_config(p: ProbeSettings) -> ProbeConfig:
    return ProbeConfig(
        connect_timeout_s=p.connect_timeout_s,
        read_timeout_s=p.read_timeout_s,
        banner_wait_s=p.banner_wait_s,
        probe_timeout_s=p.probe_timeout_s,
        max_redirects=p.max_redirects,
        per_target_concurrency=p.per_target_concurrency,
        per_target_delay_s=p.per_target_delay_s,
        user_agent=p.user_agent,
    )


@dataclass
class Built:
    service: EnrichService
    feeds: Feeds
    engine: Engine
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for c in reversed(self.closers):
            c()


def build(settings: EnrichSettings, clock: Clock = utcnow, resolver: Resolver | None = None) -> Built:
    """Wire every part of the service from settings (tests call this too)."""
    prefix = settings.kafka.topic_prefix
    guard = Guard(settings.probe.allow, resolver=resolver, only=settings.probe.only)
    closers: list[Callable[[], None]] = []
    artifacts = None
    screenshotter = None
    if settings.artifacts.bucket and settings.screenshot.enabled:
        a = settings.artifacts
        artifacts = S3Artifacts(a.bucket or "", a.prefix, a.endpoint_url, a.region)
        proxy = GuardProxy(guard, io_timeout_s=settings.probe.read_timeout_s * 2)
        closers.append(proxy.stop)
        s = settings.screenshot
        screenshotter = Chromium(proxy, s.chromium, s.timeout_s, s.window, s.concurrency)
    prober = Prober(guard, probe_config(settings.probe), screenshotter, clock)
    resolver_ec2 = None
    if settings.ec2.enabled:
        e = settings.ec2
        cfg = Ec2Config(e.endpoint_url, e.default_region, e.role_arn_template, cache_ttl_s=e.cache_ttl_s)
        resolver_ec2 = Ec2Resolver(cfg)
    selection = settings.selection.selection()
    p = settings.probe
    exposure = Exposure(
        prober,
        selection,
        resolver_ec2,
        artifacts,
        Limits(
            timeout_s=p.probe_timeout_s + settings.screenshot.timeout_s + 10,
            concurrency=p.concurrency,
            rate_per_s=p.rate_per_s,
            burst=max(1, int(p.rate_per_s) or 1),
            cache_ttl_s=p.cache_ttl_s,
        ),
        max_targets=p.max_targets,
        max_ports=p.max_ports,
        clock=clock,
    )
    r = settings.reputation
    feeds = Feeds(
        {n: FeedSpec(n, f.url, f.kind, f.verdict) for n, f in r.feeds.items()},
        interval_s=r.refresh_interval_s,
        timeout_s=r.timeout_s,
        clock=clock,
    )
    closers.append(feeds.stop)
    enrichers: list[Enricher] = [IpReputation(feeds, clock=clock)]
    ab = settings.abuseipdb
    if ab.api_key is not None:
        client = AbuseIpDb(AbuseIpDbConfig(ab.api_key.get_secret_value(), ab.base_url, ab.max_age_days))
        enrichers.append(
            AbuseIpDbEnricher(
                client,
                Limits(timeout_s=10.0, concurrency=4, rate_per_s=ab.rate_per_s, burst=5, cache_ttl_s=ab.cache_ttl_s),
                clock=clock,
            )
        )
    if settings.geoip.database:
        enrichers.append(GeoIp(open_mmdb(settings.geoip.database), clock=clock))
    enrichers.append(exposure)
    engine = Engine(enrichers, clock, batch_timeout_s=settings.batch_timeout_s)
    closers.append(engine.close)
    rc = settings.recheck
    service = EnrichService(
        engine,
        exposure,
        selection,
        topic(prefix, "enriched"),
        recheck_interval=timedelta(seconds=rc.interval_s),
        recheck_max_age=timedelta(days=rc.max_age_days),
        max_per_tick=rc.max_per_tick,
    )
    return Built(service, feeds, engine, closers)


def open_mmdb(path: str) -> GeoReader:
    import maxminddb

    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(f"GeoIP database {path!r} cannot be opened: {exc}") from exc


def stage(settings: EnrichSettings, svc: EnrichService) -> Stage:
    prefix = settings.kafka.topic_prefix
    return Stage(
        service="enrich",
        group_id=group(prefix, "enrich"),
        inputs=[topic(prefix, "evaluated")],
        input_schema="decision",
        handler=svc.handle,
        dlq_topic=topic(prefix, "enrich.dlq"),
        state_topic=topic(prefix, "enrich.state"),
        state_schema="enrich_state",
        tick=svc.tick,
        tick_interval_s=settings.recheck.tick_interval_s,
        prepare=svc.prepare,
    )


def main() -> None:
    settings = EnrichSettings()
    logs.configure("enrich", settings.runtime.log_level)
    built = build(settings)
    built.feeds.start()
    k = settings.kafka
    codec = make_codec(
        k.schema_registry_url, k.schema_registry_auth.get_secret_value() if k.schema_registry_auth else None
    )
    try:
        Runner(stage(settings, built.service), k, settings.runtime, codec).run()
    finally:
        built.close()
