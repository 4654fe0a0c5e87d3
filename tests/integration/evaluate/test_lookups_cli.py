"""``alertline lookups put | delete | show`` against the real broker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from alertline.cli import cli
from alertline.kafka.admin import create_topics
from alertline.settings import KafkaSettings
from services.evaluate.cli import register

pytestmark = pytest.mark.kafka


def test_rows_are_put_shown_and_deleted_on_the_lookups_topic(kafka_settings: KafkaSettings) -> None:
    create_topics(kafka_settings, ["lookups"])
    if "lookups" not in cli.commands:
        register(cli)
    env = {
        "ALERTLINE_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "ALERTLINE_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    run = CliRunner()
    assert run.invoke(cli, ["lookups", "put", "accounts", "999999999999", '{"team": "ml"}'], env=env).exit_code == 0
    assert run.invoke(cli, ["lookups", "put", "tor-exit-nodes", "198.51.100.7"], env=env).exit_code == 0
    shown = run.invoke(cli, ["lookups", "show", "accounts"], env=env)
    assert [json.loads(x) for x in shown.stdout.splitlines()] == [
        {"key": "accounts/999999999999", "row": {"team": "ml"}}
    ]

    assert run.invoke(cli, ["lookups", "delete", "accounts", "999999999999"], env=env).exit_code == 0
    shown = run.invoke(cli, ["lookups", "show"], env=env)
    assert [json.loads(x)["key"] for x in shown.stdout.splitlines()] == ["tor-exit-nodes/198.51.100.7"]

    bad = run.invoke(cli, ["lookups", "put", "accounts", "1", "{not json"], env=env)
    assert bad.exit_code == 2 and "not JSON" in bad.output
    bad = run.invoke(cli, ["lookups", "put", "bad/table", "1"], env=env)
    assert bad.exit_code == 2 and "table name" in bad.output
