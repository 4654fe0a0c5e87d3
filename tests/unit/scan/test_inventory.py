"""Inventory exports (fixtures written from the official formats, see tests/fixtures/scan/README.md)
read into resource documents, and the findings the shipped checks raise on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.scan.checks import default_dir, load_checks
from services.scan.collectors import azure, gcp
from services.scan.domain import Collected, Unit, evaluate

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "scan"
CHECKS = load_checks([default_dir()])


def read(provider: str, *names: str) -> Collected:
    mod = gcp if provider == "gcp" else azure
    known = {k for c in CHECKS if c.provider == provider for k in c.kinds}
    objects = [(str(FIX / provider / n), (FIX / provider / n).read_bytes()) for n in names]
    return mod.parse_export(Unit(f"x:{provider}", provider), objects, known)


def found(c: Collected) -> set[tuple[str, str, tuple[int, ...]]]:
    return {(f.check.id, str(f.resource["name"]), f.ports) for f in evaluate(c.resources, CHECKS)}


def test_cai_resource_export_raises_open_firewalls_but_not_disabled_deny_egress_or_private_ones() -> None:
    c = read("gcp", "cai-resource-export.jsonl")
    assert c.complete and not c.bad
    assert found(c) == {
        ("gcp-firewall-open-admin-port", "allow-ssh-from-anywhere", (22,)),
        ("gcp-firewall-open-admin-port", "legacy-db-access", (3306, 5432)),
    }
    fw = next(d for d in c.resources if d["name"] == "allow-ssh-from-anywhere")
    assert fw["id"] == "//compute.googleapis.com/projects/shop-prod-4821/global/firewalls/allow-ssh-from-anywhere"
    assert (fw["account"], fw["organization"], fw["region"]) == ("shop-prod-4821", "organizations/730194417255", None)
    assert c.unchecked_kinds == {"storage.googleapis.com/Bucket": 1, "compute.googleapis.com/Instance": 1}


def test_cai_iam_policy_export_raises_buckets_granted_to_all_users_or_all_authenticated_users() -> None:
    c = read("gcp", "cai-iam-policy-export.jsonl")
    assert found(c) == {
        ("gcp-storage-public-bucket", "shop-prod-4821-assets", ()),
        ("gcp-storage-public-bucket", "data-lake-7733-exports", ()),
    }
    assert "storage.googleapis.com/Bucket:iam_policy" in c.covered
    assert "compute.googleapis.com/Firewall" not in c.covered, "an IAM export cannot resolve firewall findings"


def test_cai_rest_field_names_read_like_the_export_field_names() -> None:
    c = read("gcp", "cai-camelcase.jsonl")
    assert found(c) == {("gcp-firewall-open-admin-port", "open-redis", (6379,))}


def test_bad_cai_lines_are_reported_by_line_with_their_bytes_and_the_rest_still_read() -> None:
    c = read("gcp", "cai-bad.jsonl")
    assert not c.complete
    assert [(b.position, b.message.split(":")[0]) for b in c.bad] == [
        (2, "malformed JSON"),
        (3, "expected a JSON object (an Asset), got list"),
        (4, "no asset name"),
        (6, "asset //compute.googleapis.com/projects/p/global/firewalls/nodata"),
    ]
    assert c.bad[0].value.startswith(
        b'{"name": "//compute.googleapis.com/projects/shop-prod-4821/global/firewalls/half"'
    )
    assert c.unchecked_kinds == {"example.googleapis.com/Thing": 1}, "an unknown asset type is counted, not an error"
    assert found(c) == {("gcp-firewall-open-admin-port", "allow-ssh-from-anywhere", (22,))}


def test_resource_graph_rest_response_raises_open_nsgs_and_public_blob_accounts() -> None:
    c = read("azure", "arg-rest-response.json")
    assert c.complete
    f = found(c)
    assert ("azure-nsg-open-admin-port", "web-nsg", (22,)) in f
    assert ("azure-nsg-open-admin-port", "db-nsg", (1433, 3306)) in f
    assert ("azure-storage-blob-public-access", "shopassets01", ()) in f
    jump = next(x for x in f if x[1] == "jump-nsg")
    assert {22, 3389, 5432} <= set(jump[2]), "an any-any allow rule exposes every admin port"
    assert len(f) == 4, "office-only RDP, a deny rule, HTTPS, a private storage account raise nothing"
    web = next(d for d in c.resources if d["name"] == "web-nsg")
    assert web["key"] == web["id"].lower() and web["account"] == "6f1d2c3b-8a47-4e5e-9a10-2b7c4d8e9f01"
    assert (web["region"], web["tags"]) == ("westeurope", {"env": "prod"})
    assert c.unchecked_kinds == {"microsoft.compute/virtualmachines": 1}


def test_az_cli_output_reads_like_the_rest_response() -> None:
    c = read("azure", "arg-cli-output.json")
    assert c.complete and found(c) == {("azure-storage-blob-public-access", "shopassets01", ())}


def test_one_page_of_a_larger_resource_graph_result_is_incomplete() -> None:
    c = read("azure", "arg-first-page.json")
    assert not c.complete and "skip token=yes" in c.incomplete[0]
    assert len(found(c)) == 2, "what the page holds is still raised"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("arg-bad-rows.jsonl", [(2, "malformed JSON"), (3, "row has no id"), (4, "row /subscriptions/x")]),
        ("arg-not-json.json", [(0, "malformed JSON")]),
    ],
)
def test_bad_resource_graph_input_is_reported_and_does_not_stop_the_good_rows(
    name: str, expected: list[tuple[int, str]]
) -> None:
    c = read("azure", name)
    assert not c.complete
    assert [(b.position, b.message[: len(m)]) for b, (_, m) in zip(c.bad, expected, strict=True)] == expected
    if name.endswith(".jsonl"):
        assert {x[1] for x in found(c)} == {"web-nsg", "shopassets01"}


def test_a_gcp_ingress_rule_without_any_source_counts_as_open_to_everyone() -> None:
    rules = gcp.firewall_rules(
        {"name": "x", "direction": "INGRESS", "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}
    )
    assert rules[0]["sources"] == ["0.0.0.0/0"]
    tagged = gcp.firewall_rules(
        {"name": "y", "direction": "INGRESS", "sourceTags": ["bastion"], "allowed": [{"IPProtocol": "tcp"}]}
    )
    assert tagged[0]["sources"] == [] and (tagged[0]["from_port"], tagged[0]["to_port"]) == (0, 65535)
