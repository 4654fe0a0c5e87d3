"""IP lists: Tor formats, block lists, CIDR lookup in both families."""

from __future__ import annotations

import ipaddress
import random

from services.enrich.iplists import IpSet, parse_list

TOR_BULK = "185.220.101.1\n185.220.101.2\n2a0b:f4c2::1\n"
TOR_EXIT_ADDRESSES = """ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E
Published 2026-11-22 20:53:46
LastStatus 2026-11-22 22:00:00
ExitAddress 162.247.74.201 2026-11-22 22:04:19
ExitNode 00197F8E9D5E0D1A4A2E1B1B0B0B0B0B0B0B0B0B
ExitAddress 171.25.193.77 2026-11-22 21:10:00
"""
BLOCKLIST = """# spamhaus-style drop list
1.10.16.0/20 ; SBL256894
  # indented comment
223.254.0.0/16
2001:db8:dead::/48   # v6 range
not-an-address
"""


def test_tor_bulk_exit_list_is_one_address_per_line() -> None:
    p = parse_list(TOR_BULK)
    ips = IpSet(p.networks)
    assert "185.220.101.2" in ips and "2a0b:f4c2::1" in ips
    assert "185.220.101.3" not in ips
    assert p.rejected == []


def test_tor_exit_addresses_format_reads_exit_address_lines_only() -> None:
    p = parse_list(TOR_EXIT_ADDRESSES)
    assert [str(n) for n in p.networks] == ["162.247.74.201/32", "171.25.193.77/32"]
    assert p.rejected == []


def test_block_list_with_comments_and_cidrs() -> None:
    p = parse_list(BLOCKLIST)
    ips = IpSet(p.networks)
    assert "1.10.16.1" in ips and "1.10.31.255" in ips and "1.10.32.0" not in ips
    assert "223.254.200.9" in ips
    assert "2001:db8:dead:beef::1" in ips and "2001:db8:deae::1" not in ips
    assert p.rejected == ["not-an-address"]


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4() -> None:
    ips = IpSet(parse_list("203.0.113.7\n").networks)
    assert "::ffff:203.0.113.7" in ips


def test_overlapping_and_adjacent_ranges_are_merged() -> None:
    ips = IpSet(parse_list("10.0.0.0/25\n10.0.0.128/25\n10.0.0.5\n10.0.1.0/24\n").networks)
    assert ips.ranges == 1
    assert "10.0.1.255" in ips and "10.0.2.0" not in ips


def test_lookup_agrees_with_ipaddress_on_random_networks() -> None:
    rng = random.Random(5)
    nets = [
        ipaddress.ip_network(f"{rng.randrange(1, 223)}.{rng.randrange(256)}.0.0/{rng.randrange(12, 25)}", strict=False)
        for _ in range(300)
    ]
    ips = IpSet(nets)
    for _ in range(3000):
        a = ipaddress.ip_address(rng.getrandbits(32))
        assert (a in ips) == any(a in n for n in nets)


def test_garbage_is_not_contained() -> None:
    assert "nope" not in IpSet(parse_list("1.2.3.4").networks)
