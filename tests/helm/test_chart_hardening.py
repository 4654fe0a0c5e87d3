"""Every pod the chart can start is hardened, whatever the scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helm.chart import CI_VALUES, containers, pod_spec, render

IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_container_is_non_root_with_read_only_root_and_no_capabilities(values: Path) -> None:
    seen = 0
    for workload, c in containers(render(values)):
        pod = pod_spec(workload)["securityContext"]
        sc = c["securityContext"]
        where = f"{workload['kind']}/{workload['metadata']['name']}/{c['name']}"
        assert sc["runAsNonRoot"] is True and pod["runAsNonRoot"] is True, where
        assert sc["runAsUser"] != 0 and pod["runAsUser"] != 0, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
        assert sc["seccompProfile"]["type"] == "RuntimeDefault" == pod["seccompProfile"]["type"], where
        seen += 1
    assert seen >= 4  # the four services, plus the topic job and scanners where enabled


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_pod_has_a_writable_tmp_and_no_api_token(values: Path) -> None:
    for workload, c in containers(render(values)):
        spec = pod_spec(workload)
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], workload["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, workload["metadata"]["name"]


def test_service_accounts_do_not_mount_tokens() -> None:
    for sa in (d for d in render(CI_VALUES[1]) if d["kind"] == "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_the_chart_never_creates_a_secret() -> None:
    # Secrets are referenced, never rendered: nothing secret passes through values.
    for values in CI_VALUES:
        assert not [d for d in render(values) if d["kind"] == "Secret"]
    for _, c in containers(render(CI_VALUES[1])):
        for e in c["env"]:
            if any(word in e["name"] for word in ("PASSWORD", "TOKEN", "SECRET", "PRIVATE_KEY", "CONNECTION_STRING")):
                assert "secretKeyRef" in e["valueFrom"], e["name"]
