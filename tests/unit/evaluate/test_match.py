"""Declarative match semantics, one operator at a time."""

from __future__ import annotations

from typing import Any

import pytest

from services.evaluate import yamlsrc
from services.evaluate.cases import build_alert
from services.evaluate.lookups import Lookups
from services.evaluate.match import MatchError, compile_match

LK = Lookups({"prod": {"123456789012": {"env": "production"}}, "ports": {"22": {}}})


def matches(match_yaml: str, **alert: Any) -> bool:
    cond = compile_match(yamlsrc.load(match_yaml), 1)
    return cond.test(build_alert(alert), LK)


def test_equals_and_in() -> None:
    assert matches("{field: product, equals: guardduty}", product="guardduty")
    assert not matches("{field: product, equals: guardduty}", product="GuardDuty")
    assert matches("{field: product, equals: GUARDDUTY, ignore_case: true}", product="GuardDuty")
    assert matches("{field: severity.label, in: [high, critical]}", severity={"label": "critical"})
    assert matches("{field: clock_skew, equals: false}")
    assert not matches("{field: clock_skew, equals: 0}"), "booleans never equal numbers"


def test_glob_regex_contains() -> None:
    assert matches('{field: finding_type, glob: "Recon:EC2/*"}', finding_type="Recon:EC2/PortProbeUnprotectedPort")
    assert not matches('{field: finding_type, glob: "Recon:EC2/*"}', finding_type="x Recon:EC2/Port")
    assert matches('{field: title, regex: "EC2\\\\.1[89]"}', title="Control EC2.19 failed")
    assert matches("{field: title, regex: [foo, '^Control']}", title="Control EC2.19 failed")
    assert matches("{field: description, contains: PUBLIC, ignore_case: true}", description="is public")


def test_cidr_on_a_list_of_addresses() -> None:
    m = "{field: indicators.ips, cidr: [10.0.0.0/8, '2001:db8::/32']}"
    assert matches(m, indicators={"ips": ["8.8.8.8", "10.1.2.3"]})
    assert matches(m, indicators={"ips": ["2001:db8::5"]})
    assert not matches(m, indicators={"ips": ["8.8.8.8", "garbage"]})
    assert matches(m + "", indicators={"ips": ["10.0.0.1"]})


def test_every_requires_all_elements_and_at_least_one() -> None:
    m = "{field: indicators.ips, cidr: 10.0.0.0/8, every: true}"
    assert matches(m, indicators={"ips": ["10.0.0.1", "10.9.9.9"]})
    assert not matches(m, indicators={"ips": ["10.0.0.1", "8.8.8.8"]})
    assert not matches(m, indicators={"ips": []})


def test_numeric_comparisons_combine_into_a_range() -> None:
    m = "{field: severity.score, gte: 40, lt: 70}"
    assert matches(m, severity={"label": "medium", "score": 40})
    assert not matches(m, severity={"label": "high", "score": 70})
    assert not matches("{field: title, gt: 1}")
    assert matches("{field: indicators.ports, lte: 1024}", indicators={"ports": [8080, 22]})


def test_exists() -> None:
    assert matches("{field: control_id, exists: false}")
    assert matches("{field: control_id, exists: true}", control_id="EC2.19")
    assert not matches("{field: indicators.ips, exists: true}")
    assert matches("{field: resources.tags.owner, exists: true}", resources=[{"tags": {"owner": "x"}}])


def test_lookup_membership() -> None:
    assert matches("{field: account, in_lookup: prod}", account="123456789012")
    assert not matches("{field: account, in_lookup: prod}", account="999")
    assert matches("{field: indicators.ports, in_lookup: ports}", indicators={"ports": [443, 22]})
    assert not matches("{field: account, in_lookup: no-such-table}", account="123456789012")


def test_all_any_not_and_list_shorthand() -> None:
    m = """
all:
  - {field: product, equals: securityhub}
  - any:
      - {field: control_id, equals: EC2.18}
      - {field: control_id, equals: EC2.19}
  - not: {field: account, in_lookup: prod}
"""
    assert matches(m, control_id="EC2.19", account="1")
    assert not matches(m, control_id="EC2.19", account="123456789012")
    assert not matches(m, control_id="S3.1", account="1")
    assert matches("[{field: product, equals: securityhub}, {expr: 'severity.score >= 50'}]")


@pytest.mark.parametrize(
    ("match_yaml", "message"),
    [
        ("{field: product, equal: x}", "unknown key 'equal'.*did you mean 'equals'"),
        ("{field: prodct, equals: x}", "did you mean 'product'"),
        ("{field: product, equals: x, in: [y]}", "exactly one of"),
        ("{field: product}", "exactly one of"),
        ("{field: title, regex: '(open'}", "bad regex '\\(open'"),
        ("{field: indicators.ips, cidr: 10.0.0.300/8}", "bad CIDR"),
        ("{field: indicators.ips, cidr: 10.0.0.1/8}", "did you mean '10.0.0.0/8'"),
        ("{field: severity.score, gt: high}", "gt takes a number"),
        ("{field: product, equals: x, every: yes please}", "every takes true or false"),
        ("{all: []}", "non-empty list"),
        ("{all: [{field: product, equals: x}], any: [{field: product, equals: y}]}", "stands alone"),
        ("{feild: product, equals: x}", "needs 'field'"),
        ("{expr: 'product =='}", "expr"),
        ("{field: product, in: x}", "in takes a non-empty list"),
        ("{field: product, exists: 1}", "exists takes true or false"),
    ],
)
def test_invalid_conditions_are_rejected_with_a_reason(match_yaml: str, message: str) -> None:
    with pytest.raises(MatchError, match=message):
        compile_match(yamlsrc.load(match_yaml), 1)


def test_explanations_say_what_matched_and_the_value_seen() -> None:
    cond = compile_match(
        yamlsrc.load("{any: [{field: control_id, equals: EC2.18}, {field: indicators.ports, in: [22]}]}"), 1
    )
    a = build_alert({"control_id": "EC2.19", "indicators": {"ports": [22]}})
    assert cond.test(a, LK)
    assert cond.explain(a, LK) == "indicators.ports in [22] (got [22])"
