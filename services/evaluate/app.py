"""Composition root of the evaluate service (``alertline run evaluate``).

alerts.v1 ─► [dedupe by (identity, revision) · rules + lookups] ─► evaluated.v1 (drops included)
             state: evaluate.state.v1 (compacted)     lookups: lookups.v1 (compacted, read whole)
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from alertline import logs
from alertline.avro import Codec, SingleObjectCodec, make_codec
from alertline.clock import Clock, utcnow
from alertline.errors import ConfigError
from alertline.kafka.runtime import Runner, Stage
from alertline.kafka.table import TableReader
from alertline.model import Decision
from alertline.topics import group, topic
from services.evaluate import rules
from services.evaluate.diagnostics import RulesError
from services.evaluate.domain import Evaluator
from services.evaluate.handler import Observer, make_handler
from services.evaluate.lookups import LiveTables
from services.evaluate.reload import ReloadStatus, RuleReloader
from services.evaluate.settings import EvaluateSettings
from services.evaluate.splice import Splicer

log = logging.getLogger("alertline.evaluate")
SERVICE = "evaluate"


class Metrics(Observer):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "alertline_evaluate_decisions", "Decisions made, by action.", ["action"], registry=registry
        )
        self.matches = Counter(
            "alertline_evaluate_rule_matches", "Alerts each rule matched.", ["rule"], registry=registry
        )
        self.duplicates = Counter(
            "alertline_evaluate_duplicates", "Redelivered (identity, revision) pairs skipped.", registry=registry
        )
        self.rules = Gauge("alertline_evaluate_rules", "Rules and suppressions in the running set.", registry=registry)
        self.reloads = Counter(
            "alertline_evaluate_rule_reloads", "Rule reloads, by result.", ["result"], registry=registry
        )
        self._by_action: dict[str, Any] = {}
        self._by_rule: dict[str, Any] = {}
        self.failing = Gauge(
            "alertline_evaluate_rules_reload_failing",
            "1 while the rule files on disk are invalid and the last good set is running.",
            registry=registry,
        )

    def decided(self, decision: Decision) -> None:
        # Label children are cached: labels() takes a lock and builds a key on every call.
        c = self._by_action.get(decision["action"])
        if c is None:
            c = self._by_action[decision["action"]] = self.decisions.labels(decision["action"])
        c.inc()
        for m in decision["matched"]:
            r = self._by_rule.get(m["rule_id"])
            if r is None:
                r = self._by_rule[m["rule_id"]] = self.matches.labels(m["rule_id"])
            r.inc()

    def duplicate(self) -> None:
        self.duplicates.inc()

    def reload_status(self, status: ReloadStatus, result: bool | None) -> None:
        self.rules.set(status.rules)
        self.failing.set(1 if status.failing_fingerprint else 0)
        if result is not None:
            self.reloads.labels("ok" if result else "error").inc()


@dataclass
class EvaluateService:
    settings: EvaluateSettings
    evaluator: Evaluator
    runner: Runner
    reloader: RuleReloader
    table: TableReader | None
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self, install_signals: bool = True) -> None:
        """Wait for the lookups, then run until stopped."""
        if self.table is not None:
            self.table.start()
            log.info("reading the lookups topic", extra={"topic": self.table.topic})
            if not self._wait_for_lookups():
                self.table.stop()
                limit = self.settings.evaluate.lookups_ready_timeout_s
                raise ConfigError(f"lookups topic {self.table.topic} not read within {limit}s")
        self.reloader.start()
        try:
            self.runner.run(install_signals=install_signals)
        finally:
            self.reloader.stop()
            if self.table is not None:
                self.table.stop()

    def _wait_for_lookups(self) -> bool:
        assert self.table is not None
        waited = 0.0
        while waited < self.settings.evaluate.lookups_ready_timeout_s and not self.stopping.is_set():
            if self.table.wait_ready(0.5):
                return True
            waited += 0.5
        return self.table.ready.is_set()

    def stop(self) -> None:
        self.stopping.set()
        self.runner.stop()


def build(
    settings: EvaluateSettings,
    loaded: rules.Loaded,
    codec: Codec | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = utcnow,
) -> EvaluateService:
    registry = registry or CollectorRegistry()
    prefix = settings.kafka.topic_prefix
    metrics = Metrics(registry)
    opts = settings.evaluate
    live = LiveTables() if opts.lookups_topic else None
    evaluator = Evaluator(loaded, live)
    table = None
    if live is not None:
        table = TableReader(settings.kafka, topic(prefix, "lookups"), on_change=live.apply, registry=registry)
    reloader = RuleReloader(
        opts.rules_dir, opts.lookups_dir, evaluator.install, loaded, opts.reload_interval_s, clock,
        on_status=metrics.reload_status,
    )  # fmt: skip
    metrics.reload_status(reloader.status, None)
    codec = codec or make_codec(
        settings.kafka.schema_registry_url,
        settings.kafka.schema_registry_auth.get_secret_value() if settings.kafka.schema_registry_auth else None,
    )
    splicer = Splicer() if isinstance(codec, SingleObjectCodec) else None
    stage = Stage(
        service=SERVICE,
        group_id=group(prefix, SERVICE),
        inputs=[topic(prefix, "alerts")],
        input_schema=None,  # the handler decodes, to reuse the alert's bytes in its output
        handler=make_handler(evaluator.decide, topic(prefix, "evaluated"), codec, metrics, splicer),
        dlq_topic=topic(prefix, "evaluate.dlq"),
        state_topic=topic(prefix, "evaluate.state"),
        state_schema="evaluate_state",
    )
    runner = Runner(
        stage, settings.kafka, settings.runtime, codec, registry=registry, clock=clock,
        routes={("GET", "/rules"): reloader.route},
    )  # fmt: skip
    return EvaluateService(settings, evaluator, runner, reloader, table)


def run_in_thread(service: EvaluateService) -> threading.Thread:
    """Run a service in a background thread (tests, benchmarks)."""
    t = threading.Thread(target=service.run, kwargs={"install_signals": False}, name="evaluate", daemon=True)
    t.start()
    return t


def main() -> None:
    settings = EvaluateSettings()
    logs.configure(SERVICE, settings.runtime.log_level)
    try:
        loaded = rules.load(settings.evaluate.rules_dir, settings.evaluate.lookups_dir)
    except RulesError as exc:
        # Fail fast: a pod that cannot start with its rules is visible; one running without them is not.
        log.error("invalid rules; not starting", extra={"problems": "\n".join(str(p) for p in exc.problems)})
        print(str(exc), file=sys.stderr)
        sys.exit(2)
    for w in loaded.warnings:
        log.warning("rule warning", extra={"problem": str(w)})
    log.info("rules loaded", extra={"ruleset": loaded.fingerprint, "rules": len(loaded.rules)})
    service = build(settings, loaded)
    try:
        service.run()
    except ConfigError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        sys.exit(2)
