"""What the chart does with values: checksums, staging, network policy, topics, images, probes."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from tests.helm.chart import (
    CHART,
    KUBE_VERSION,
    ci,
    containers,
    env,
    named,
    of_kind,
    pod_spec,
    pod_template,
    render,
    render_error,
)

SERVICES = ("ingest", "evaluate", "enrich", "ticket")
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


# ---------------------------------------------------------------- checksums
def _pod_annotations(docs: list[dict], component: str) -> dict[str, str]:
    return pod_template(named(docs, "Deployment", component))["metadata"].get("annotations") or {}


def test_a_rules_change_changes_the_evaluate_pod_checksum() -> None:
    before = render(ci("production"))
    after = render(ci("production"), sets=("rules.files.extra\\.yaml=- id: new-rule",))
    assert (
        _pod_annotations(before, "evaluate")["checksum/rules"] != _pod_annotations(after, "evaluate")["checksum/rules"]
    )
    # Only evaluate reads rules: the other services do not restart for a rule change.
    for svc in ("ingest", "enrich", "ticket"):
        assert pod_template(named(before, "Deployment", svc)) == pod_template(named(after, "Deployment", svc))


def test_a_lookup_change_changes_the_evaluate_pod_checksum() -> None:
    before = render(ci("production"))
    after = render(ci("production"), sets=("lookups.files.owners\\.csv=account\\,team",))
    assert (
        _pod_annotations(before, "evaluate")["checksum/lookups"]
        != _pod_annotations(after, "evaluate")["checksum/lookups"]
    )
    assert (
        _pod_annotations(before, "evaluate")["checksum/rules"] == _pod_annotations(after, "evaluate")["checksum/rules"]
    )


def test_rules_and_lookups_are_mounted_read_only_into_evaluate() -> None:
    docs = render(ci("production"))
    c = pod_spec(named(docs, "Deployment", "evaluate"))["containers"][0]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/alertline/rules"]["readOnly"] and mounts["/etc/alertline/lookups"]["readOnly"]
    rules = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-rules"))
    assert "drop-sandbox.yaml" in rules["data"]
    assert env(c)["ALERTLINE_EVALUATE__RULES_DIR"] == "/etc/alertline/rules"


# ---------------------------------------------------------------- staging
def _service_env(docs: list[dict], svc: str) -> dict:
    return env(pod_spec(named(docs, "Deployment", svc))["containers"][0])


def test_staging_uses_its_own_topic_prefix_everywhere() -> None:
    staging, production = render(ci("staging")), render(ci("production"))
    prefixes = {env(c)["ALERTLINE_KAFKA__TOPIC_PREFIX"] for _, c in containers(staging)}
    assert prefixes == {"alertline-staging."}
    assert {env(c)["ALERTLINE_KAFKA__TOPIC_PREFIX"] for _, c in containers(production)} == {"alertline."}


def test_staging_ticket_runs_in_shadow_mode_against_its_own_repository() -> None:
    staging, production = (
        _service_env(render(ci("staging")), "ticket"),
        _service_env(render(ci("production")), "ticket"),
    )
    assert staging["ALERTLINE_TICKET__SHADOW"] == "true"
    assert production["ALERTLINE_TICKET__SHADOW"] == "false"
    assert staging["ALERTLINE_GITHUB__REPOSITORY_OVERRIDE"] == staging["ALERTLINE_GITHUB__REPOSITORY"]
    assert staging["ALERTLINE_GITHUB__REPOSITORY"] != production["ALERTLINE_GITHUB__REPOSITORY"]


def test_staging_reads_the_same_alerts_through_its_own_queue_subscription_and_consumer_group() -> None:
    staging, production = (
        _service_env(render(ci("staging")), "ingest"),
        _service_env(render(ci("production")), "ingest"),
    )
    # Same Event Hub, other consumer group; other SQS queue and Pub/Sub subscription (a shared one
    # would split the messages between the two deployments).
    for key in ("ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE", "ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME"):
        assert staging[key] == production[key]
    assert (
        staging["ALERTLINE_INGEST__EVENTHUBS__CONSUMER_GROUP"]
        != production["ALERTLINE_INGEST__EVENTHUBS__CONSUMER_GROUP"]
    )
    for key in ("ALERTLINE_INGEST__SQS__QUEUE_URLS", "ALERTLINE_INGEST__PUBSUB__SUBSCRIPTIONS"):
        assert not set(yaml.safe_load(staging[key])) & set(yaml.safe_load(production[key])), key
    assert staging["ALERTLINE_ARCHIVE__PREFIX"] != production["ALERTLINE_ARCHIVE__PREFIX"]


def test_staging_and_production_can_share_a_namespace() -> None:
    staging = {d["metadata"]["name"] for d in render(ci("staging"), sets=("fullnameOverride=alertline-staging",))}
    production = {d["metadata"]["name"] for d in render(ci("production"), sets=("fullnameOverride=alertline",))}
    assert not staging & production


# ---------------------------------------------------------------- network policy
def test_network_policy_per_workload_when_enabled() -> None:
    docs = render(ci("production"))
    policies = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind(docs, "NetworkPolicy")}
    assert set(policies) == {*SERVICES, "scan", "topics"}
    for p in policies.values():
        assert p["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in p["spec"].get("ingress", []):
            assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_no_network_policy_when_disabled() -> None:
    assert of_kind(render(ci("production"), sets=("networkPolicy.enabled=false",)), "NetworkPolicy") == []


def _egress_ports(policy: dict) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def test_egress_is_limited_to_dns_and_the_targets_each_service_needs() -> None:
    docs = render(ci("production"))
    evaluate = named(docs, "NetworkPolicy", "evaluate")
    assert _egress_ports(evaluate) == {53, 9096}  # DNS and MSK's SASL/SCRAM listener only
    ticket = named(docs, "NetworkPolicy", "ticket")
    github = [r for r in ticket["spec"]["egress"] if {"port": 443, "protocol": "TCP"} in r.get("ports", [])]
    assert {b["ipBlock"]["cidr"] for b in github[0]["to"]} == {
        "192.30.252.0/22",
        "185.199.108.0/22",
        "140.82.112.0/20",
        "143.55.64.0/20",
    }
    assert len(ticket["spec"]["ingress"]) == 2  # metrics, and the webhook from the ingress controller


def test_the_prober_cannot_reach_private_or_metadata_addresses() -> None:
    enrich = named(render(ci("production")), "NetworkPolicy", "enrich")
    blocks = [peer["ipBlock"] for rule in enrich["spec"]["egress"] for peer in rule.get("to", []) if "ipBlock" in peer]
    v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4["except"])


def test_in_cluster_kafka_is_reached_by_pod_selector() -> None:
    evaluate = named(render(ci("strimzi")), "NetworkPolicy", "evaluate")
    kafka = next(r for r in evaluate["spec"]["egress"] if {"port": 9093, "protocol": "TCP"} in r["ports"])
    assert kafka["to"] == [
        {"podSelector": {"matchLabels": {"strimzi.io/cluster": "alertline-kafka", "strimzi.io/kind": "Kafka"}}}
    ]


def test_an_egress_target_that_would_allow_everything_is_refused() -> None:
    err = render_error(ci("minimal"), sets=("networkPolicy.egress.github.ports.https=null",))
    assert "networkPolicy.egress.github" in err and "allow all egress" in err


# ---------------------------------------------------------------- topics
def test_topics_are_created_by_a_pre_install_hook_job_by_default() -> None:
    docs = render(ci("minimal"))
    (job,) = of_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = pod_spec(job)["containers"][0]
    assert c["args"] == ["topics", "create"]
    assert "serviceAccountName" not in pod_spec(job)  # the chart's accounts do not exist yet at pre-install
    assert of_kind(docs, "KafkaTopic") == []


def test_strimzi_topics_replace_the_job_and_outlive_the_release() -> None:
    docs = render(ci("strimzi"))
    assert of_kind(docs, "Job") == []
    topics = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic")}
    assert "alertline.tickets.state.v1" in topics
    for t in topics.values():
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == "alertline-kafka"
        assert t["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert t["spec"]["partitions"] == 6 and t["spec"]["replicas"] == 3


def test_strimzi_topics_follow_the_staging_prefix() -> None:
    docs = render(ci("staging"), sets=("topics.manager=strimzi", "topics.strimzi.clusterName=kafka"))
    assert {t["spec"]["topicName"] for t in of_kind(docs, "KafkaTopic")} >= {"alertline-staging.alerts.v1"}
    assert all(t["spec"]["topicName"].startswith("alertline-staging.") for t in of_kind(docs, "KafkaTopic"))


# ---------------------------------------------------------------- images
def test_image_tag_defaults_to_the_app_version_and_enrich_gets_chromium() -> None:
    images = {c["name"]: c["image"] for _, c in containers(render(ci("minimal")))}
    assert images["ingest"] == f"ghcr.io/alertline/alertline:{APP_VERSION}"
    assert images["enrich"] == f"ghcr.io/alertline/alertline:{APP_VERSION}-enrich"
    assert not any(i.endswith(":latest") for i in images.values())


def test_a_digest_pins_the_image() -> None:
    digest = "sha256:" + "a" * 64
    images = {c["name"]: c["image"] for _, c in containers(render(ci("minimal"), sets=(f"image.digest={digest}",)))}
    assert images["ticket"] == f"ghcr.io/alertline/alertline:{APP_VERSION}@{digest}"
    # The enrich image is another image: it never inherits the runtime image's digest.
    assert images["enrich"] == f"ghcr.io/alertline/alertline:{APP_VERSION}-enrich"
    enrich_digest = "sha256:" + "b" * 64
    sets = (f"image.digest={digest}", f"services.enrich.image.digest={enrich_digest}")
    images = {c["name"]: c["image"] for _, c in containers(render(ci("minimal"), sets=sets))}
    assert images["enrich"] == f"ghcr.io/alertline/alertline:{APP_VERSION}-enrich@{enrich_digest}"


def test_a_floating_tag_is_refused() -> None:
    assert "tag" in render_error(ci("minimal"), sets=("image.tag=latest",))


# ---------------------------------------------------------------- services
@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_runs_its_command_with_probes_and_a_metrics_port(svc: str) -> None:
    docs = render(ci("production"))
    spec = pod_spec(named(docs, "Deployment", svc))
    c = spec["containers"][0]
    assert c["args"] == ["run", svc]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert env(c)["ALERTLINE_RUNTIME__INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert named(docs, "PodDisruptionBudget", svc)["spec"]["maxUnavailable"] == 1
    assert named(docs, "Service", svc)["spec"]["ports"][0]["targetPort"] == "http"


def test_service_accounts_carry_the_cloud_role_of_their_workload() -> None:
    accounts = {
        a["metadata"]["labels"]["app.kubernetes.io/component"]: a
        for a in of_kind(render(ci("production")), "ServiceAccount")
    }
    assert accounts["ingest"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("role/alertline-ingest")
    assert "annotations" not in accounts["ticket"]["metadata"]
    deployment = pod_spec(named(render(ci("production")), "Deployment", "ingest"))
    assert deployment["serviceAccountName"] == accounts["ingest"]["metadata"]["name"]


def test_only_cloud_facing_services_get_cloud_credentials() -> None:
    docs = render(ci("production"))
    assert "GOOGLE_APPLICATION_CREDENTIALS" in _service_env(docs, "ingest")
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in _service_env(docs, "ticket")
    assert "AWS_REGION" not in _service_env(docs, "evaluate")


def test_optional_resources_follow_their_switches() -> None:
    minimal, production = render(ci("minimal")), render(ci("production"))
    for kind in ("HorizontalPodAutoscaler", "ServiceMonitor", "Ingress", "CronJob"):
        assert of_kind(minimal, kind) == [], kind
        assert of_kind(production, kind) != [], kind
    (hpa,) = of_kind(production, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == named(production, "Deployment", "evaluate")["metadata"]["name"]
    assert "replicas" not in named(production, "Deployment", "evaluate")["spec"]


def test_the_ingress_exposes_only_the_webhook() -> None:
    docs = render(ci("production"))
    (ingress,) = of_kind(docs, "Ingress")
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/webhook/github", "Exact")
    assert path["backend"]["service"]["name"] == named(docs, "Service", "ticket")["metadata"]["name"]


def test_scan_cronjobs_never_overlap_and_run_the_scanner() -> None:
    jobs = {j["metadata"]["name"]: j for j in of_kind(render(ci("production")), "CronJob")}
    assert set(jobs) == {"al-alertline-scan-aws", "al-alertline-scan-gcp-inventory"}
    for j in jobs.values():
        assert j["spec"]["concurrencyPolicy"] == "Forbid"
        assert pod_spec(j)["containers"][0]["args"][0] == "scan"
        assert pod_spec(j)["restartPolicy"] == "Never"


def test_autoscaling_beyond_the_partition_count_is_refused() -> None:
    err = render_error(
        ci("minimal"), sets=("services.ticket.autoscaling.enabled=true", "services.ticket.autoscaling.maxReplicas=7")
    )
    assert re.search(r"maxReplicas \(7\) exceeds kafka.partitions \(6\)", err)


def test_missing_required_settings_fail_with_their_name() -> None:
    assert "kafka.bootstrap is required" in render_error(sets=("archive.bucket=b",))
    assert "archive.bucket is required" in render_error(ci("minimal"), sets=("archive.bucket=",))
    assert "GitHub credentials" in render_error(ci("minimal"), sets=("github.tokenSecret.name=",))
    # Shadow mode writes nothing to GitHub, so it needs no write credentials.
    assert render(ci("minimal"), sets=("github.tokenSecret.name=", "ticket.shadow=true"))


def test_a_service_can_run_as_a_statefulset_for_a_stable_instance_id() -> None:
    sets = ("services.ticket.kind=StatefulSet", "services.ticket.autoscaling.enabled=true")
    docs = render(ci("production"), sets=sets)
    (sts,) = of_kind(docs, "StatefulSet")
    assert sts["metadata"]["labels"]["app.kubernetes.io/component"] == "ticket"
    assert "ticket" not in {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in of_kind(docs, "Deployment")}
    # Same pod as the Deployment form but for static membership, which needs the stable names.
    env = pod_template(sts)["spec"]["containers"][0]["env"]
    assert {"name": "ALERTLINE_RUNTIME__STATIC_MEMBERSHIP", "value": "true"} in env
    env.remove({"name": "ALERTLINE_RUNTIME__STATIC_MEMBERSHIP", "value": "true"})
    deployment = pod_template(named(render(ci("production")), "Deployment", "ticket"))
    assert "ALERTLINE_RUNTIME__STATIC_MEMBERSHIP" not in {e["name"] for e in deployment["spec"]["containers"][0]["env"]}
    assert pod_template(sts) == deployment
    assert sts["spec"]["podManagementPolicy"] == "Parallel" and "volumeClaimTemplates" not in sts["spec"]
    hpa = next(
        h for h in of_kind(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    )
    assert hpa["spec"]["scaleTargetRef"]["name"] == sts["metadata"]["name"]
    for doc in (sts, hpa):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
