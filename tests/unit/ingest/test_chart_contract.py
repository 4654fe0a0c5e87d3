"""The Helm chart and the ingest settings agree: what the chart renders for the ingest pod is
what IngestSettings reads (every queue, the subscription, Event Hubs with its secrets)."""

from __future__ import annotations

import pytest

from services.ingest.settings import IngestSettings
from tests.helm.chart import ci, env, named, pod_spec, render


def test_the_production_chart_configures_every_ingest_source(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = named(render(ci("production")), "Deployment", "ingest")
    [container] = [c for c in pod_spec(deployment)["containers"] if c["name"] == "ingest"]
    variables = env(container)
    for name in list(variables):
        if name.startswith("ALERTLINE_"):
            monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        if not name.startswith("ALERTLINE_") or name == "ALERTLINE_SECRETS_DIR":
            continue
        # valueFrom (secretKeyRef, fieldRef) is resolved by the kubelet; stand in a value for it.
        monkeypatch.setenv(name, value if isinstance(value, str) else f"from:{sorted(value)[0]}")
    s = IngestSettings()
    i = s.ingest
    assert s.archive.bucket and i.sqs.queue_urls == sorted(i.sqs.queue_urls) and len(i.sqs.queue_urls) == 2
    assert i.pubsub.subscriptions == ["projects/example-security/subscriptions/alertline-scc"]
    eh = i.eventhubs
    assert (eh.fully_qualified_namespace, eh.eventhub_name, eh.consumer_group) == (
        "example-security.servicebus.windows.net", "defender-alerts", "alertline",
    )  # fmt: skip
    assert eh.connection_string is not None and eh.checkpoint_connection_string is not None
    assert eh.checkpoint_account_and_container()[1] == "alertline-checkpoints"
