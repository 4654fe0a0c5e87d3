"""values.yaml documents itself; values.schema.json catches typos; the chart mirrors the code."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from alertline.kafka.admin import topic_configs
from alertline.topics import TOPICS
from tests.helm.chart import CHART, ci, of_kind, render, render_error

VALUES = CHART / "values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _keys_with_lines(node: yaml.Node, path: str = "") -> list[tuple[str, str, int]]:
    """(dotted path, key, 0-based line) of every mapping key in values.yaml."""
    out: list[tuple[str, str, int]] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            dotted = f"{path}.{key.value}" if path else key.value
            out.append((dotted, key.value, key.start_mark.line))
            out.extend(_keys_with_lines(value, dotted))
    return out


def test_every_value_is_documented_by_a_comment_starting_with_its_name() -> None:
    lines = VALUES.read_text().splitlines()
    undocumented = []
    for dotted, key, line in _keys_with_lines(yaml.compose(VALUES.read_text())):
        above = lines[line - 1].strip() if line > 0 else ""
        # The comment block directly above the key; its first line starts with the key's name.
        first = line - 1
        while first > 0 and lines[first - 1].strip().startswith("#"):
            first -= 1
        head = lines[first].strip()
        if not (above.startswith("#") and (head.startswith(f"# {key} ") or head.startswith(f"# {key}:"))):
            undocumented.append(dotted)
    assert undocumented == []


def test_ci_scenarios_and_defaults_satisfy_the_schema() -> None:
    defaults = yaml.safe_load(VALUES.read_text())
    jsonschema.validate(defaults, SCHEMA)
    for name in ("minimal", "production", "staging", "strimzi"):
        merged = _merge(defaults, yaml.safe_load(ci(name).read_text()))
        jsonschema.validate(merged, SCHEMA)


@pytest.mark.parametrize(
    ("typo", "bad_key"),
    [
        ("kafka.bootstrapServers=x", "bootstrapServers"),
        ("services.ingest.replica=3", "replica"),
        ("services.ingset.enabled=true", "ingset"),
        ("networkPolicy.egress.github.cidr.all=0.0.0.0/0", "cidr"),
        ("ticket.shadowMode=true", "shadowMode"),
        ("services.enrich.egressTo.internet=true", "internet"),
    ],
)
def test_the_schema_rejects_a_typo(typo: str, bad_key: str) -> None:
    err = render_error(ci("minimal"), sets=(typo,))
    assert f"additional properties '{bad_key}' not allowed" in err


def test_the_schema_rejects_a_wrong_type_and_a_bad_enum() -> None:
    assert "schema" in render_error(ci("minimal"), sets=("kafka.partitions=six",))
    assert "schema" in render_error(ci("minimal"), sets=("topics.manager=operator",))


def test_topic_catalog_matches_the_code() -> None:
    catalog = yaml.safe_load(VALUES.read_text())["topics"]["catalog"]
    assert {k: (v["name"], v["compact"]) for k, v in catalog.items()} == {
        k: (t.name, t.compact) for k, t in TOPICS.items()
    }


def test_kafka_topics_carry_the_configs_the_topic_job_would_set() -> None:
    retention = yaml.safe_load(VALUES.read_text())["kafka"]["retentionMs"]
    for t in of_kind(render(ci("strimzi")), "KafkaTopic"):
        compact = t["spec"]["config"]["cleanup.policy"] == "compact"
        expected = topic_configs(compact, retention)
        assert {k: str(v) for k, v in t["spec"]["config"].items()} == expected


def test_chart_app_version_is_the_package_version() -> None:
    import tomllib

    from tests.conftest import REPO

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_a_chart_without_values_refuses_to_render() -> None:
    assert "kafka.bootstrap is required" in render_error()


def _merge(base: Any, over: Any) -> Any:
    """Helm's coalescing: maps merge, null deletes, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(base.get(k), v)
        return out
    return over
