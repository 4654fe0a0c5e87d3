"""The expression language: what it means, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from services.evaluate.cases import build_alert
from services.evaluate.expr import MAX_DEPTH, MAX_LENGTH, ExprError, compile_condition, compile_value
from services.evaluate.lookups import Lookups

LK = Lookups(
    {
        "accounts": {"123456789012": {"team": "payments", "env": "production", "owners": ["bob", "carol"]}},
        "tor": {"198.51.100.7": {}},
    }
)


def holds(src: str, **alert: Any) -> bool:
    return bool(compile_condition(src).fn(build_alert(alert), LK))


def value(src: str, **alert: Any) -> Any:
    return compile_value(src).fn(build_alert(alert), LK)


# ------------------------------------------------------------------------------ meaning
def test_comparisons_and_boolean_logic() -> None:
    assert holds('product == "guardduty" and severity.score >= 70', product="guardduty", severity={"label": "high"})
    assert not holds('product == "guardduty" and severity.score >= 70', product="guardduty")
    assert holds('product == "x" or not (severity.label == "low")')
    assert holds("severity.score > 10 and severity.score < 60")
    assert holds('product != "guardduty"')
    assert holds('title == "it\'s \\"quoted\\""', title='it\'s "quoted"')


def test_a_list_field_matches_when_any_element_does() -> None:
    assert holds("22 in indicators.ports", indicators={"ports": [80, 22]})
    assert holds("indicators.ports == 22", indicators={"ports": [80, 22]})
    assert not holds("indicators.ports != 22", indicators={"ports": [80, 22]})
    assert holds('resources.type == "AwsS3Bucket"', resources=[{"type": "AwsEc2Instance"}, {"type": "AwsS3Bucket"}])
    assert holds('resources.tags.team in ["payments", "web"]', resources=[{"tags": {"team": "web"}}])
    assert holds("indicators.ports in [22, 3389]", indicators={"ports": [3389]})
    assert not holds("indicators.ports in [22, 3389]", indicators={"ports": [443]})


def test_missing_fields_and_type_mismatches_are_false_not_errors() -> None:
    assert not holds('control_id == "EC2.19"')
    assert not holds('severity.score > "high"')
    assert not holds('attributes.nothing == "x"')
    assert holds("not exists(control_id)")
    assert not holds("resources[3].id == 'x'")
    assert holds('status_raw["Workflow.Status"] == "NEW"', status_raw={"Workflow.Status": "NEW"})


def test_in_works_on_text_lists_and_lookup_rows() -> None:
    assert holds('"Tor" in title', title="Connection from a Tor exit node")
    assert holds('account in ["1", "123456789012"]', account="123456789012")
    assert holds('account not in ["1"]', account="123456789012")
    assert holds('"team" in lookup("accounts", account)', account="123456789012")


def test_functions() -> None:
    assert holds('lower(title) == "hello"', title="HeLLo")
    assert holds('startswith(finding_type, "Recon:")', finding_type="Recon:EC2/PortProbeUnprotectedPort")
    assert holds('endswith(resources.id, "-prod")', resources=[{"id": "db-prod"}])
    assert holds('contains(description, "public")', description="bucket is public")
    assert holds('matches(title, "^EC2\\.1[89]\\b")', title="EC2.19 security group open")
    tor = "UnauthorizedAccess:IAMUser/TorIPCaller"
    assert holds('glob(finding_type, "UnauthorizedAccess:*/TorIPCaller")', finding_type=tor)
    ips = {"ips": ["8.8.8.8", "2001:db8::1"]}
    assert holds('cidr(indicators.ips, ["10.0.0.0/8", "2001:db8::/32"])', indicators=ips)
    assert not holds('cidr(indicators.ips, "10.0.0.0/8")', indicators={"ips": ["not-an-ip"]})
    assert holds("len(indicators.ips) == 2", indicators={"ips": ["a", "b"]})
    assert holds('in_lookup("tor", indicators.ips)', indicators={"ips": ["203.0.113.1", "198.51.100.7"]})
    assert value('lookup("accounts", account).team', account="123456789012") == "payments"
    assert value('lookup("accounts", account).team', account="999") is None
    assert value("coalesce(account_name, account)", account="42") == "42"
    assert value('lookup("accounts", account)["owners"][1]', account="123456789012") == "carol"


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    "src",
    [
        "__import__('os').system('id')",
        "_x == 1",
        "product.__class__ == 1",
        "product.__class__.__mro__",
        'lookup("a", account).__dict__ == 1',
        "().__class__",
        "eval('1') == 1",
        "exec('x') == 1",
        "open('/etc/passwd') == 1",
        "getattr(product, 'upper') == 1",
        "lambda: 1",
        "[x for x in indicators.ips]",
        "product if true else 1",
        "1 + 1 == 2",
        "product; 1",
        "product == 'a' = 1",
        "f'{product}' == 1",
        "product @ 1",
        "`product`",
    ],
)
def test_anything_outside_the_grammar_is_refused(src: str) -> None:
    with pytest.raises(ExprError):
        compile_condition(src)


def test_unknown_fields_and_functions_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ExprError, match="did you mean 'product'"):
        compile_condition('produt == "x"')
    with pytest.raises(ExprError, match="did you mean 'lower'"):
        compile_condition('lowr(title) == "x"')
    with pytest.raises(ExprError, match="has no field"):
        compile_condition('severity.colour == "red"')


def test_huge_and_deep_inputs_are_refused_before_parsing() -> None:
    with pytest.raises(ExprError, match="limit"):
        compile_condition("product == 'x' or " * (MAX_LENGTH // 10) + "true")
    with pytest.raises(ExprError, match="nests deeper"):
        compile_condition("(" * (MAX_DEPTH + 5) + "true" + ")" * (MAX_DEPTH + 5))
    with pytest.raises(ExprError, match="nests deeper"):
        compile_condition("not " * (MAX_DEPTH + 5) + "true")
    with pytest.raises(ExprError, match="too long"):
        compile_condition("severity.score == " + "9" * 100)


def test_a_condition_must_be_boolean_at_the_top() -> None:
    with pytest.raises(ExprError, match="must be a condition"):
        compile_condition("product")
    with pytest.raises(ExprError, match="must be a condition"):
        compile_condition('lookup("accounts", account)')


def test_function_arguments_are_checked_when_compiling() -> None:
    with pytest.raises(ExprError, match="takes 2 arguments"):
        compile_condition("startswith(title)")
    with pytest.raises(ExprError, match="must be a literal"):
        compile_condition("matches(title, description)")
    with pytest.raises(ExprError, match="bad regular expression"):
        compile_condition('matches(title, "(unclosed")')
    with pytest.raises(ExprError, match=r"did you mean '10\.0\.0\.0/8'"):
        compile_condition('cidr(indicators.ips, "10.0.0.1/8")')
    with pytest.raises(ExprError, match="chain"):
        compile_condition("1 < severity.score < 5")


def test_errors_name_the_column() -> None:
    with pytest.raises(ExprError, match=r"column 12"):
        compile_condition("product == $x")
