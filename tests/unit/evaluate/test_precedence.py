"""What a set of rules decides together: precedence, stop, suppressions, expiry, defaults."""

from __future__ import annotations

from datetime import timedelta

from alertline.clock import FixedClock

from .helpers import NOW, decide, evaluator, ids

GUARDDUTY = "{field: product, equals: guardduty}"


def test_no_matching_rule_gives_the_default_ticket_with_priority_from_severity() -> None:
    ev = evaluator("rules: []")
    for label, prio in (("critical", "P1"), ("high", "P2"), ("medium", "P3"), ("low", "P4"), ("informational", "P4")):
        d = decide(ev, severity={"label": label})
        assert (d["action"], d["priority"], d["auto_close"], d["matched"]) == ("ticket", prio, True, [])
        assert d["reason"] is None and d["repository"] is None
    assert decide(ev, severity={"label": "weird"})["priority"] == "P3"


def test_the_first_matching_rule_that_sets_a_field_wins() -> None:
    ev = evaluator(
        f"""
rules:
  - {{id: specific, description: d, owner: o, match: {{field: finding_type, equals: X}}, actions: {{priority: P1}}}}
  - {{id: general, description: d, owner: o, match: {GUARDDUTY}, actions: {{priority: P4, repository: acme/gd}}}}
"""
    )
    d = decide(ev, product="guardduty", finding_type="X")
    assert d["priority"] == "P1" and d["repository"] == "acme/gd"
    assert ids(d) == ["specific", "general"]
    assert "not applied: priority already set by specific" in d["matched"][1]["why"]
    assert decide(ev, product="guardduty", finding_type="Y")["priority"] == "P4"


def test_labels_and_assignees_accumulate_without_duplicates() -> None:
    ev = evaluator(
        """
rules:
  - {id: a, description: d, owner: o, actions: {labels: [x, y], assignees: [alice]}}
  - {id: b, description: d, owner: o, actions: {labels: [y, z], assignees: [bob, alice]}}
"""
    )
    d = decide(ev)
    assert d["labels"] == ["x", "y", "z"] and d["assignees"] == ["alice", "bob"]


def test_stop_ends_evaluation() -> None:
    ev = evaluator(
        f"""
rules:
  - {{id: first, description: d, owner: o, match: {GUARDDUTY}, actions: {{labels: [a]}}, stop: true}}
  - {{id: later, description: d, owner: o, actions: {{labels: [b], priority: P1}}}}
"""
    )
    d = decide(ev, product="guardduty")
    assert ids(d) == ["first"] and d["labels"] == ["a"] and d["priority"] == "P3"
    assert d["matched"][0]["why"].endswith("[stop]")
    assert ids(decide(ev, product="inspector")) == ["later"]


def test_a_drop_records_its_reason_and_a_keep_protects_from_later_drops() -> None:
    ev = evaluator(
        f"""
rules:
  - id: prod-always
    description: d
    owner: o
    match: {{field: account, equals: "111111111111"}}
    actions: {{keep: production accounts are always ticketed}}
  - {{id: noise, description: d, owner: o, match: {GUARDDUTY}, actions: {{drop: "port probes are noise"}}}}
"""
    )
    d = decide(ev, product="guardduty")
    assert d["action"] == "drop" and d["reason"] == "port probes are noise"
    kept = decide(ev, product="guardduty", account="111111111111")
    assert kept["action"] == "ticket" and kept["reason"] == "production accounts are always ticketed"
    assert ids(kept) == ["prod-always", "noise"], "the overridden drop is still recorded as matched"


def test_suppressions_come_first_stop_everything_and_say_who_and_why() -> None:
    ev = evaluator(
        """
rules:
  - {id: p1, description: d, owner: o, actions: {priority: P1, keep: always}}
suppressions:
  - id: pentest
    match: {field: account, equals: "222222222222"}
    until: 2026-12-01T00:00:00Z
    by: alice@example.com
    why: Pentest SEC-42
"""
    )
    d = decide(ev, account="222222222222")
    assert d["action"] == "drop"
    assert d["reason"] == "suppressed by pentest (alice@example.com, until 2026-12-01T00:00:00Z): Pentest SEC-42"
    assert ids(d) == ["pentest"]
    assert "alice@example.com" in d["matched"][0]["why"]
    assert decide(ev, account="3")["action"] == "ticket"


def test_an_expired_suppression_stops_applying_by_itself() -> None:
    ev = evaluator(
        """
suppressions:
  - {id: s, match: {field: account, equals: "2"}, until: 2026-12-01T00:00:00Z, by: a, why: w}
"""
    )
    clock = FixedClock(NOW)
    assert decide(ev, clock(), account="2")["action"] == "drop"
    clock.now = ev.ruleset.rules[0].until - timedelta(milliseconds=1)  # type: ignore[operator]
    assert decide(ev, clock(), account="2")["action"] == "drop"
    clock.advance(0.001)
    d = decide(ev, clock(), account="2")
    assert d["action"] == "ticket" and d["matched"] == [], "at until the suppression is gone"


def test_templates_fill_actions_from_the_alert_and_lookups() -> None:
    ev = evaluator(
        """
rules:
  - id: route
    description: d
    owner: o
    match: {field: account, in_lookup: accounts}
    actions:
      repository: "${lookup('accounts', account).repository}"
      assignees: ["${lookup('accounts', account).owners}"]
      labels: ["team:${lookup('accounts', account).team}", "product:${product}"]
      group_key: "${account}/${control_id}"
  - {id: fallback, description: d, owner: o, actions: {repository: acme/security, group_key: "${control_id}"}}
""",
        lookups={
            "accounts.yaml": """
"123456789012": {team: payments, repository: acme/payments, owners: [bob, carol]}
"999999999999": {team: nobody}
"""
        },
    )
    d = decide(ev, account="123456789012", control_id="EC2.19")
    assert d["repository"] == "acme/payments"
    assert d["assignees"] == ["bob", "carol"]
    assert d["labels"] == ["team:payments", "product:securityhub"]
    assert d["group_key"] == "123456789012/EC2.19"
    partial = decide(ev, account="999999999999")
    assert partial["repository"] == "acme/security", "a template yielding null leaves the field for later rules"
    assert partial["group_key"] is None, "null parts make the whole value unset"
    assert partial["assignees"] == []
