"""Running the real helm binary on the chart, and reading what it renders."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

CHART = REPO / "deploy" / "helm" / "alertline"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# The Kubernetes version the chart is rendered for and validated against; kubernetes-validate
# ships its schemas (1.25 ... 1.37 in the pinned release).
KUBE_VERSION = "1.33.0"
RELEASE = "al"
# The workloads that run the one image.
POD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}


def helm_binary() -> str:
    """The helm the project installs (scripts/bootstrap), or ALERTLINE_HELM; never skipped."""
    candidates = [os.environ.get("ALERTLINE_HELM"), str(REPO / ".venv" / "bin" / "helm"), shutil.which("helm")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    pytest.fail("helm is missing: run ./scripts/bootstrap (it builds helm into .venv/bin/helm)", pytrace=False)


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stderr}", pytrace=False)
    return proc


def _args(values_files: tuple[str, ...], sets: tuple[str, ...]) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    for f in values_files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    return args


@functools.lru_cache(maxsize=64)
def _render(values_files: tuple[str, ...], sets: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    out = run_helm(*_args(values_files, sets)).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(*values_files: str | Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rendered manifests (cached per arguments: helm is deterministic)."""
    return list(_render(tuple(str(f) for f in values_files), sets))


def render_error(*values_files: str | Path, sets: tuple[str, ...] = ()) -> str:
    """helm template's error output for values that must be refused."""
    proc = run_helm(*_args(tuple(str(f) for f in values_files), sets), check=False)
    assert proc.returncode != 0, "helm template accepted values it should refuse"
    return proc.stderr


def ci(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    for d in of_kind(docs, kind):
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == component:
            return d
    raise AssertionError(f"no {kind} for {component}")


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]  # type: ignore[no-any-return]


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container of every pod the chart can start."""
    for d in docs:
        if d["kind"] in POD_KINDS:
            spec = pod_spec(d)
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield d, c


def env(container: dict[str, Any]) -> dict[str, Any]:
    """Env name -> value (or the valueFrom source)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
