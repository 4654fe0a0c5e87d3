"""helm lint and helm template for every ci scenario; manifests valid for a pinned Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.helm.chart import CHART, CI_VALUES, KUBE_VERSION, render, run_helm

# Custom resources are not in the core schemas: checked here against the fields their operators
# require (Prometheus Operator ServiceMonitor, Strimzi KafkaTopic), strictly enough to catch typos.
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": {"type": "object", "required": ["name", "labels"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object", "required": ["matchLabels"]},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port", "path"],
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            },
                        },
                    },
                },
            },
        },
    },
    "KafkaTopic": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"enum": ["kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"]},
            "metadata": {
                "type": "object",
                "required": ["name", "labels"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
                    "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
                },
            },
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["topicName", "partitions", "replicas", "config"],
                "properties": {
                    "topicName": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                    "config": {"type": "object"},
                },
            },
        },
    },
}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name.removesuffix("-values.yaml") for p in paths]


def validate(doc: dict[str, Any]) -> None:
    """Strict Kubernetes schema validation (unknown fields are errors), or the CRD schema above."""
    if doc["kind"] in CRD_SCHEMAS:
        jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
    else:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_every_scenario_exists() -> None:
    assert _ids(CI_VALUES) == ["minimal", "production", "staging", "strimzi"]


@pytest.mark.parametrize("values", CI_VALUES, ids=_ids(CI_VALUES))
def test_helm_lint_passes_strict(values: Path) -> None:
    proc = run_helm("lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=_ids(CI_VALUES))
def test_rendered_manifests_are_valid_kubernetes(values: Path) -> None:
    docs = render(values)
    assert len(docs) > 10
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{values.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_validation_catches_a_misplaced_field() -> None:
    # The validator must be able to fail: a field Kubernetes does not know is an error.
    doc = next(d for d in render(CI_VALUES[0]) if d["kind"] == "Deployment")
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(doc)


def test_crd_validation_catches_a_typo() -> None:
    doc = next(d for d in render(CHART / "ci" / "strimzi-values.yaml") if d["kind"] == "KafkaTopic")
    doc["spec"]["replica"] = doc["spec"].pop("replicas")
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@pytest.mark.parametrize("values", CI_VALUES, ids=_ids(CI_VALUES))
def test_no_resource_carries_a_namespace(values: Path) -> None:
    # The release namespace comes from `helm install --namespace`; nothing is pinned in the chart.
    assert [d["metadata"]["name"] for d in render(values) if "namespace" in d["metadata"]] == []


def test_no_template_writes_a_literal_namespace() -> None:
    for tpl in (CHART / "templates").glob("*.yaml"):
        for line in tpl.read_text().splitlines():
            if line.strip().startswith("namespace:"):
                assert "{{" in line, f"{tpl.name}: {line.strip()}"
