"""The rule index never changes a decision: it only skips rules that cannot match."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.evaluate.cases import build_alert
from services.evaluate.domain import RuleSet, decide

from .helpers import NOW, loaded

RULES = """
rules:
  - {id: c1, description: d, owner: o, match: {field: control_id, in: [EC2.18, EC2.19]}, actions: {priority: P1}}
  - {id: c2, description: d, owner: o, match: {all: [{field: product, equals: securityhub}, {field: control_id, equals: S3.1}]}, actions: {labels: [s3]}}
  - {id: f1, description: d, owner: o, match: {field: finding_type, glob: "Recon:*"}, actions: {drop: noise}}
  - {id: f2, description: d, owner: o, match: {any: [{field: finding_type, equals: A}, {field: finding_type, equals: B}]}, actions: {labels: [ab]}}
  - {id: p1, description: d, owner: o, expr: 'product == "guardduty" and severity.score >= 50', actions: {priority: P2}}
  - {id: p2, description: d, owner: o, expr: 'provider in ["gcp", "azure"] or product == "scan"', actions: {labels: [cloud]}}
  - {id: n1, description: d, owner: o, match: {all: [{field: product, equals: guardduty}, {field: product, equals: scc}]}, actions: {labels: [never]}}
  - {id: x1, description: d, owner: o, match: {not: {field: product, equals: guardduty}}, actions: {labels: [not-gd]}, stop: false}
  - {id: s1, description: d, owner: o, match: {field: control_id, equals: EC2.19}, actions: {labels: [stop]}, stop: true}
  - {id: t1, description: d, owner: o, match: {field: resources.tags.env, equals: prod}, actions: {labels: [prod]}}
  - {id: a1, description: d, owner: o, expr: 'account in ["1", "2"] and severity.score > 60', actions: {priority: P1}}
  - {id: a2, description: d, owner: o, match: {any: [{field: account, equals: "2"}, {field: account, equals: "3"}]}, actions: {labels: [a2]}}
  - {id: z1, description: d, owner: o, actions: {labels: [last]}}
"""  # noqa: E501 - one rule per line reads best here


class FullScan(RuleSet):
    def candidates(self, alert: Any) -> tuple[Any, ...]:
        return self.rules


alerts = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["aws", "gcp", "azure", "alertline"]),
        "product": st.sampled_from(["securityhub", "guardduty", "scc", "scan", "inspector"]),
        "control_id": st.sampled_from([None, "EC2.18", "EC2.19", "S3.1", "IAM.1"]),
        "finding_type": st.sampled_from([None, "A", "B", "Recon:EC2/PortProbe", "Other"]),
        "severity": st.sampled_from([{"label": "low"}, {"label": "high"}, {"label": "medium"}]),
        "account": st.sampled_from(["1", "2", "3", "4"]),
        "resources": st.lists(
            st.fixed_dictionaries({"tags": st.sampled_from([{}, {"env": "prod"}, {"env": "dev"}])}), max_size=3
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(alerts)
def test_indexed_decisions_equal_a_full_scan(over: dict[str, Any]) -> None:
    rules = loaded(RULES)
    indexed, full = RuleSet(rules), FullScan(rules)
    a = build_alert(over)
    assert decide(indexed, a, indexed.tables, NOW) == decide(full, a, full.tables, NOW)  # type: ignore[arg-type]


def test_most_rules_are_indexed_and_contradictions_are_known() -> None:
    rs = RuleSet(loaded(RULES))
    assert [r.id for r in rs.never] == ["n1"]
    assert rs.indexed == 9
    cands = [r.id for r in rs.candidates(build_alert({"product": "inspector"}))]
    assert cands == ["f1", "p2", "x1", "z1"], "globs, or-expressions and negations meet every alert"
    tagged = build_alert({"product": "inspector", "account": "2", "resources": [{}, {"tags": {"env": "prod"}}]})
    assert [r.id for r in rs.candidates(tagged)] == ["f1", "p2", "x1", "t1", "a1", "a2", "z1"]
