"""The checks' match language: evaluate's syntax, over resource documents."""

from __future__ import annotations

import pytest

from services.scan.match import MatchError, compile_match, parse_path

DOC = {
    "kind": "AwsEc2SecurityGroup",
    "name": "Web-Front",
    "tags": {"team": "payments", "kubernetes.io/role": "elb"},
    "facts": {
        "age_days": 120,
        "enabled": True,
        "rules": [
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "sources": ["0.0.0.0/0", "10.0.0.0/8"]},
            {"protocol": "udp", "from_port": 53, "to_port": 53, "sources": ["10.1.2.3/32"]},
        ],
        "grants": [],
    },
}


def m(spec: object) -> bool:
    return compile_match(spec)(DOC)


def test_equals_and_in_compare_values_and_keep_booleans_apart_from_numbers() -> None:
    assert m({"field": "kind", "equals": "AwsEc2SecurityGroup"})
    assert m({"field": "name", "equals": "web-front", "ignore_case": True})
    assert not m({"field": "name", "equals": "web-front"})
    assert m({"field": "facts.enabled", "equals": True})
    assert not m({"field": "facts.enabled", "equals": 1})
    assert m({"field": "kind", "in": ["AwsS3Bucket", "AwsEc2SecurityGroup"]})


def test_a_path_across_a_list_matches_when_any_element_does_or_every_element_with_every() -> None:
    assert m({"field": "facts.rules.protocol", "equals": "udp"})
    assert m({"field": "facts.rules.sources", "in": ["0.0.0.0/0"]})
    assert not m({"field": "facts.rules.protocol", "equals": "udp", "every": True})
    assert m({"field": "facts.rules.from_port", "gte": 22, "every": True})
    assert not m({"field": "facts.grants", "equals": "x", "every": True}), "every needs a non-empty list"


def test_glob_regex_contains_and_cidr() -> None:
    assert m({"field": "name", "glob": "Web-*"})
    assert not m({"field": "name", "glob": "web-*"})
    assert m({"field": "name", "glob": ["api-*", "web-*"], "ignore_case": True})
    assert m({"field": "name", "regex": "^Web-F"})
    assert m({"field": "name", "contains": "b-F"})
    assert m({"field": "facts.rules.sources", "cidr": "10.0.0.0/8"})
    assert m({"field": "facts.rules.sources", "cidr": ["0.0.0.0/0"]})
    assert not m({"field": "facts.rules.sources", "cidr": "192.168.0.0/16"})


def test_numeric_bounds_combine_and_ignore_non_numbers() -> None:
    assert m({"field": "facts.age_days", "gt": 90, "lte": 120})
    assert not m({"field": "facts.age_days", "gt": 90, "lt": 120})
    assert not m({"field": "name", "gt": 1})
    assert not m({"field": "facts.enabled", "gte": 0}), "booleans are not numbers"


def test_exists_treats_empty_as_absent_and_missing_fields_match_nothing_else() -> None:
    assert m({"field": "facts.age_days", "exists": True})
    assert m({"field": "facts.grants", "exists": False})
    assert m({"field": "nope.deeper", "exists": False})
    assert not m({"field": "nope", "equals": None})
    assert m({"not": {"field": "nope", "equals": "x"}})


def test_all_any_not_and_a_bare_list_compose() -> None:
    assert m({"all": [{"field": "kind", "equals": "AwsEc2SecurityGroup"}, {"not": {"field": "name", "equals": "x"}}]})
    assert m({"any": [{"field": "kind", "equals": "x"}, {"field": "tags.team", "equals": "payments"}]})
    assert m([{"field": "kind", "glob": "Aws*"}, {"field": "facts.age_days", "gt": 1}])
    assert not m({"all": [{"field": "kind", "equals": "AwsEc2SecurityGroup"}, {"field": "name", "equals": "x"}]})


def test_quoted_path_segments_reach_keys_with_dots() -> None:
    assert parse_path('tags["kubernetes.io/role"]') == ("tags", "kubernetes.io/role")
    assert m({"field": 'tags["kubernetes.io/role"]', "equals": "elb"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"field": "kind"}, "exactly one of"),
        ({"field": "kind", "equals": "a", "in": ["b"]}, "exactly one of"),
        ({"field": "kind", "equal": "a"}, "unknown key 'equal'"),
        ({"all": [], "any": []}, "stands alone"),
        ({"all": []}, "non-empty list"),
        ({"field": "kind", "regex": "("}, "bad regex"),
        ({"field": "kind", "cidr": "not-a-net"}, "bad cidr"),
        ({"field": "x", "gt": "ten"}, "takes a number"),
        ({"field": "x", "exists": "yes"}, "true or false"),
        ({"field": "a..b", "equals": 1}, "bad path"),
        ("kind == x", "a condition is a mapping"),
        ({"nothing": 1}, "needs 'field'"),
    ],
)
def test_malformed_conditions_are_rejected_with_where_and_why(spec: object, message: str) -> None:
    with pytest.raises(MatchError, match=message) as exc:
        compile_match(spec)
    assert str(exc.value).startswith("match")
