"""``alertline rules test | lint | diff``."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from alertline.clock import utcnow

_dir = click.Path(exists=True, file_okay=False, path_type=Path)


def register(cli: click.Group) -> None:
    cli.add_command(rules_group)
    cli.add_command(lookups_group)


@click.group("rules")
def rules_group() -> None:
    """Test, lint and dry-run evaluate rules."""


def _load_or_exit(rules_dir: Path, lookups_dir: Path | None) -> Any:
    from services.evaluate.diagnostics import RulesError
    from services.evaluate.rules import load

    try:
        return load(rules_dir, lookups_dir)
    except RulesError as exc:
        for p in exc.problems:
            click.echo(str(p), err=True)
        click.echo(f"{len(exc.problems)} problem(s); nothing was run", err=True)
        sys.exit(2)


def _alert_validator() -> Any:
    from fastavro.validation import ValidationError, validate

    from alertline.avro import SingleObjectCodec

    schema = SingleObjectCodec().schema("alert")

    def check(alert: Mapping[str, Any]) -> str | None:
        try:
            validate(dict(alert), schema, raise_errors=True)
        except ValidationError as exc:
            return str(exc).replace("\n", " ")[:500]
        return None

    return check


# ---------------------------------------------------------------------------- test
@rules_group.command("test")
@click.argument("rules_dir", type=_dir)
@click.option("--lookups", "lookups_dir", type=_dir, default=None, help="Lookup files (default RULES_DIR/lookups).")
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
def rules_test(rules_dir: Path, lookups_dir: Path | None, verbose: bool) -> None:
    """Run the test cases written in the rule files; exit 1 when one fails."""
    from services.evaluate.cases import format_result, run_cases

    loaded = _load_or_exit(rules_dir, lookups_dir)
    results = run_cases(loaded, utcnow, _alert_validator())
    failed = [r for r in results if not r.ok]
    for r in results:
        if verbose or not r.ok:
            click.echo(format_result(r))
    untested = [r.id for r in loaded.rules if not r.tests]
    if untested:
        click.echo(f"note: {len(untested)} rule(s) without test cases: {', '.join(untested)}", err=True)
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed ({len(loaded.rules)} rules)")
    if failed or not results:
        if not results:
            click.echo("no test cases found", err=True)
        sys.exit(1)


# ---------------------------------------------------------------------------- lint
@rules_group.command("lint")
@click.argument("rules_dir", type=_dir)
@click.option("--lookups", "lookups_dir", type=_dir, default=None, help="Lookup files (default RULES_DIR/lookups).")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--at", "at", default=None, help="Judge expiry at this time instead of now (e.g. next Friday).")
def rules_lint(rules_dir: Path, lookups_dir: Path | None, strict: bool, at: str | None) -> None:
    """Find unknown fields, bad regexes and CIDRs, unreachable rules, expired suppressions."""
    from services.evaluate.diagnostics import RulesError
    from services.evaluate.diff import parse_time
    from services.evaluate.lint import lint_sources
    from services.evaluate.rules import read_sources

    try:
        when = parse_time(at, utcnow()) if at else utcnow()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        problems = lint_sources(read_sources(rules_dir, lookups_dir), when)
    except RulesError as exc:
        problems = exc.problems
    for p in problems:
        click.echo(str(p))
    errors = sum(1 for p in problems if p.level == "error")
    warnings = len(problems) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)
    if errors or (strict and warnings):
        sys.exit(1)


# ---------------------------------------------------------------------------- diff
@rules_group.command("diff")
@click.option("--old", "old_dir", type=_dir, required=True, help="The running rules.")
@click.option("--new", "new_dir", type=_dir, required=True, help="The proposed rules.")
@click.option("--old-lookups", type=_dir, default=None, help="Lookup files of the old set (default OLD/lookups).")
@click.option("--new-lookups", type=_dir, default=None, help="Lookup files of the new set (default NEW/lookups).")
@click.option("--since", required=True, help="Start of the history: 2026-11-20T00:00:00Z or an age (24h, 7d).")
@click.option("--until", default=None, help="End of the history (default: now).")
@click.option("--examples", default=3, show_default=True, help="Examples shown per kind of change.")
@click.option("--topic-lookups/--no-topic-lookups", default=True, show_default=True, help="Read the lookups topic.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def rules_diff(
    old_dir: Path,
    new_dir: Path,
    old_lookups: Path | None,
    new_lookups: Path | None,
    since: str,
    until: str | None,
    examples: int,
    topic_lookups: bool,
    as_json: bool,
) -> None:
    """Evaluate the real alert history with both rule sets and show what would change.

    Reads the alerts topic from --since (offsets by timestamp) to --until; produces nothing.
    Kafka settings come from ALERTLINE_KAFKA__* as for the services.
    """
    from alertline.avro import make_codec
    from alertline.errors import DecodeError
    from alertline.kafka.table import TableReader
    from alertline.topics import topic
    from services.evaluate.diff import DiffReport, parse_time
    from services.evaluate.domain import RuleSet, decide
    from services.evaluate.history import Span, read_range
    from services.evaluate.lookups import LiveTables, Lookups
    from services.evaluate.settings import EvaluateSettings

    settings = EvaluateSettings()
    now = utcnow()
    try:
        t_since = parse_time(since, now)
        t_until = parse_time(until, now) if until else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    old = _load_or_exit(old_dir, old_lookups)
    new = _load_or_exit(new_dir, new_lookups)
    live: LiveTables | None = None
    if topic_lookups:
        live = LiveTables()
        reader = TableReader(settings.kafka, topic(settings.kafka.topic_prefix, "lookups"), on_change=live.apply)
        reader.start()
        ready = reader.wait_ready(60)
        reader.stop()
        if not ready:
            click.echo("lookups topic not readable within 60s; use --no-topic-lookups to go without", err=True)
            sys.exit(2)
    old_rs, new_rs = RuleSet(old), RuleSet(new)
    old_lk, new_lk = Lookups(old.tables, live), Lookups(new.tables, live)
    codec = make_codec(settings.kafka.schema_registry_url)
    report = DiffReport(examples_per_kind=examples)
    last: dict[str, str] = {}
    alerts_topic = topic(settings.kafka.topic_prefix, "alerts")
    bar_holder: dict[str, Any] = {}

    def on_spans(spans: list[Span]) -> None:
        total = sum(s.size for s in spans)
        bar = click.progressbar(length=total, label=f"reading {alerts_topic}", file=sys.stderr, show_pos=True)
        bar.__enter__()
        bar_holder["bar"] = bar

    def progress(n: int) -> None:
        bar_holder["bar"].update(n)

    from confluent_kafka import KafkaException

    from alertline.errors import Transient

    try:
        for raw in read_range(settings.kafka, alerts_topic, t_since, t_until, progress, on_spans):
            if raw.value is None:
                continue
            try:
                alert = codec.decode("alert", raw.value, alerts_topic)
            except DecodeError:
                report.undecodable += 1
                continue
            ident = alert["identity"]
            if last.get(ident) == alert["revision"]:
                report.duplicates += 1
                continue
            last[ident] = alert["revision"]
            report.add(alert, decide(old_rs, alert, old_lk, now), decide(new_rs, alert, new_lk, now))
    except (KafkaException, Transient) as exc:
        click.echo(f"\ncannot read {alerts_topic}: {exc}", err=True)
        sys.exit(2)
    finally:
        if "bar" in bar_holder:
            bar_holder["bar"].__exit__(None, None, None)
    click.echo(json.dumps(report.as_json(), indent=1, default=str) if as_json else report.as_text())


# ---------------------------------------------------------------------------- lookups topic
@click.group("lookups")
def lookups_group() -> None:
    """Rows of the lookups topic: evaluate's live lookup tables (key <table>/<key>)."""


def _publish(key: str, value: bytes | None) -> None:
    from confluent_kafka import KafkaError, Message, Producer

    from alertline.settings import BaseServiceSettings
    from alertline.topics import topic

    kafka = BaseServiceSettings().kafka
    errors: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    p = Producer(kafka.client_config() | {"enable.idempotence": True, "acks": "all"})
    p.produce(topic(kafka.topic_prefix, "lookups"), value, key.encode(), on_delivery=delivered)
    left = p.flush(30)
    if errors or left:
        click.echo(f"not written: {errors[0] if errors else 'timed out'}", err=True)
        sys.exit(1)


def _key(table: str, key: str) -> str:
    from services.evaluate.lookups import TABLE_NAME

    if not TABLE_NAME.match(table):
        raise click.BadParameter(f"table name {table!r} must be letters, digits, '_', '.', '-'")
    if not key:
        raise click.BadParameter("empty key")
    return f"{table}/{key}"


@lookups_group.command("put")
@click.argument("table")
@click.argument("key")
@click.argument("row", default="{}")
def lookups_put(table: str, key: str, row: str) -> None:
    """Set TABLE/KEY to the JSON ROW (default {}: membership only)."""
    try:
        value = json.loads(row)
    except ValueError as exc:
        raise click.BadParameter(f"ROW is not JSON: {exc}") from None
    if value is None:
        raise click.BadParameter("ROW is null; use 'lookups delete' to remove a row")
    _publish(_key(table, key), json.dumps(value, separators=(",", ":")).encode())
    click.echo(f"{table}/{key} set", err=True)


@lookups_group.command("delete")
@click.argument("table")
@click.argument("key")
def lookups_delete(table: str, key: str) -> None:
    """Delete TABLE/KEY (a tombstone; a file row with the same key shows again)."""
    _publish(_key(table, key), None)
    click.echo(f"{table}/{key} deleted", err=True)


@lookups_group.command("show")
@click.argument("table", required=False)
def lookups_show(table: str | None) -> None:
    """Print the rows on the topic (all tables, or TABLE) as JSON lines."""
    from alertline.kafka.table import TableReader
    from alertline.settings import BaseServiceSettings
    from alertline.topics import topic

    kafka = BaseServiceSettings().kafka
    reader = TableReader(kafka, topic(kafka.topic_prefix, "lookups")).start()
    try:
        if not reader.wait_ready(60):
            click.echo("lookups topic not readable within 60s", err=True)
            sys.exit(1)
        rows = dict(reader.rows)
    finally:
        reader.stop()
    for k in sorted(rows):
        if table is None or k.startswith(table + "/"):
            click.echo(json.dumps({"key": k, "row": rows[k]}))
