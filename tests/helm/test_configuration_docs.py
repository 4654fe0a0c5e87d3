"""docs/configuration.md lists every variable the chart sets, and the shared settings read them."""

from __future__ import annotations

import os
import re

import pytest

from alertline.settings import BaseServiceSettings
from tests.conftest import REPO
from tests.helm.chart import ci, containers, named, pod_spec, render

# Every optional setting switched on, so every variable the chart can set is rendered.
EVERYTHING = (
    "kafka.schemaRegistry.url=https://registry.example",
    "kafka.schemaRegistry.authSecret.name=registry",
    "cloud.aws.credentialsSecret.name=aws",
    "cloud.azure.credentialsSecret.name=azure",
    "archive.endpointUrl=http://minio:9000",
    "enrich.probe.allowCidrs.lab=203.0.113.0/24",
    "github.repositoryOverride=example-org/other",
    "github.tokenSecret.name=token",
    "secretFiles.extra.secretName=extra",
    "scan.checks.ports\\.yaml=[]",
    "services.ticket.kind=StatefulSet",
)


def test_every_variable_the_chart_sets_is_documented() -> None:
    chart_part = (REPO / "docs" / "configuration.md").read_text().split("## Not set by the chart")[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", chart_part, re.M))
    rendered = set()
    for name in ("production", "strimzi", "staging"):
        for _, c in containers(render(ci(name), sets=EVERYTHING)):
            rendered |= {e["name"] for e in c["env"]}
    assert rendered - documented == set()
    # And the table names nothing the chart no longer sets (the image's own variables aside).
    assert documented - rendered <= {"ALERTLINE_SCHEMAS_DIR"}


def test_the_shared_settings_read_the_kafka_and_runtime_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    container = pod_spec(named(render(ci("strimzi")), "Deployment", "ticket"))["containers"][0]
    for var in [v for v in os.environ if v.startswith("ALERTLINE_")]:
        monkeypatch.delenv(var)
    for e in container["env"]:
        source = e.get("valueFrom", {})
        value = e.get("value") or ("the-pod-name" if "fieldRef" in source else "from-a-secret")
        monkeypatch.setenv(e["name"], value)
    settings = BaseServiceSettings()
    conf = settings.kafka.client_config()
    assert conf["bootstrap.servers"] == "alertline-kafka-kafka-bootstrap:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512" and conf["sasl.username"] == "alertline"
    assert conf["sasl.password"] == "from-a-secret"
    assert conf["ssl.ca.location"] == "/etc/alertline/kafka-ca/ca.crt"
    assert settings.kafka.topic_prefix == "alertline." and settings.kafka.partitions == 6
    assert settings.runtime.instance_id == "the-pod-name" and settings.runtime.http_port == 8080
