"""The SSRF guard: what a careful scanner refuses, and why."""

from __future__ import annotations

import pytest

from services.enrich.guard import Guard, Refused
from services.enrich.iplists import parse_ip


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("fc00::1", "private address"),
        ("169.254.10.10", "link-local address"),
        ("fe80::1", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("100.64.1.1", "shared address space (CGNAT 100.64.0.0/10)"),
        ("240.0.0.1", "reserved address"),
        ("192.0.2.10", "private address"),
        ("2002:7f00:1::1", "IPv6 transition address"),
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    with pytest.raises(Refused) as exc:
        Guard().check(address)
    assert exc.value.reason.startswith(reason), exc.value.reason
    assert "not in the allow-list" in exc.value.reason


def test_public_addresses_pass() -> None:
    assert str(Guard().check("8.8.8.8").address) == "8.8.8.8"
    assert str(Guard().check("[2606:4700:4700::1111]").address) == "2606:4700:4700::1111"


def test_allow_list_opens_loopback_explicitly() -> None:
    assert str(Guard(["127.0.0.0/8"]).check("127.0.0.1").address) == "127.0.0.1"
    with pytest.raises(Refused):
        Guard(["127.0.0.0/8"]).check("10.0.0.1")


def test_metadata_needs_an_allow_list_entry_naming_it_exactly() -> None:
    with pytest.raises(Refused, match="cloud metadata"):
        Guard(["169.254.0.0/16"]).check("169.254.169.254")
    assert Guard(["169.254.0.0/16"]).check("169.254.1.1")
    assert Guard(["169.254.169.254/32"]).check("169.254.169.254")


def test_dns_name_resolving_into_a_private_range_is_refused() -> None:
    g = Guard(resolver=lambda host: ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(Refused) as exc:
        g.check("mixed.example")
    assert exc.value.reason == "resolves to private address 10.0.0.7 (not in the allow-list)"


def test_localhost_name_is_refused_through_the_system_resolver() -> None:
    with pytest.raises(Refused, match="resolves to loopback address"):
        Guard().check("localhost")


def test_dns_name_resolving_to_metadata_is_refused() -> None:
    with pytest.raises(Refused, match=r"resolves to cloud metadata address 169\.254\.169\.254"):
        Guard(resolver=lambda h: ["169.254.169.254"]).check("metadata.attacker.example")


def test_unresolvable_name_is_refused_with_the_lookup_error() -> None:
    def fail(host: str) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(Refused, match="DNS lookup failed"):
        Guard(resolver=fail).check("nx.example")
    with pytest.raises(Refused, match="resolves to no address"):
        Guard(resolver=lambda h: []).check("empty.example")


def test_checked_addresses_are_the_ones_to_connect_to() -> None:
    c = Guard(resolver=lambda h: ["93.184.216.34", "2606:2800:220:1::1"]).check("example.com")
    assert [str(a) for a in c.addresses] == ["93.184.216.34", "2606:2800:220:1::1"]
    assert c.address == parse_ip("93.184.216.34")


def test_a_configured_scope_refuses_public_addresses_outside_it() -> None:
    import ipaddress

    from services.enrich.guard import Guard

    g = Guard(allow=["127.0.0.0/8"], only=["127.0.0.0/8"])
    assert g.check_ip(ipaddress.ip_address("127.0.0.1")) is None
    reason = g.check_ip(ipaddress.ip_address("8.8.8.8"))
    assert reason is not None and "outside the configured scope" in reason
