"""The normalizer's fast paths give what the general code gives: the internal-address table,
dotted quads recorded without the general parser, the builder's revision hash."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.normalize.common import (
    _INTERNAL_V4,
    Evidence,
    FindingProblem,
    _revision,
    _v4_external,
    parse_ip,
    revision,
)


@given(st.integers(0, (1 << 32) - 1))
@settings(max_examples=3000)
def test_an_ipv4_address_is_internal_exactly_when_a_listed_network_holds_it(n: int) -> None:
    packed = n.to_bytes(4, "big")
    assert _v4_external(packed) == all(not lo <= n <= hi for lo, hi in _INTERNAL_V4)


_EDGES = (
    "100.63.255.255 100.64.0.0 100.127.255.255 100.128.0.0 172.15.255.255 172.16.0.0 172.31.255.255 172.32.0.0 "
    "169.253.255.255 169.254.0.0 169.255.0.0 192.167.255.255 192.168.0.0 192.169.0.0 223.255.255.255 224.0.0.0 "
    "255.255.255.255 1.0.0.0 9.255.255.255 10.0.0.0 11.0.0.0 126.255.255.255 127.0.0.1 128.0.0.0 0.0.0.0"
).split()


@pytest.mark.parametrize("edge", _EDGES)
def test_addresses_at_the_edges_of_internal_networks(edge: str) -> None:
    ip = ipaddress.IPv4Address(edge)
    networks = [ipaddress.IPv4Network((lo, 32 - (hi - lo + 1).bit_length() + 1)) for lo, hi in _INTERNAL_V4]
    assert _v4_external(ip.packed) == (not any(ip in n for n in networks))


def _general(method: str, v: Any) -> tuple[dict[str, Any], str | None]:
    """What the general parser records for ``v`` (or the problem it raises)."""
    ev = Evidence()
    try:
        a = parse_ip(v, "f")
    except FindingProblem as exc:
        return {}, str(exc)
    if a is not None:
        (ev.actor_address if method == "actor_ip" else ev.own_address)(a)
    return ev.indicators() | {"own": ev.own_addresses()}, None


def _fast(method: str, v: Any) -> tuple[dict[str, Any], str | None]:
    ev = Evidence()
    try:
        getattr(ev, method)(v, "f")
    except FindingProblem as exc:
        return {}, str(exc)
    return ev.indicators() | {"own": ev.own_addresses()}, None


_ip_like = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.sampled_from(
        [
            "010.0.0.1",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.4\x00",
            "private",
            "Unknown",
            "",
            "::ffff:10.0.0.1",
            "1.2.3.04",
            "0.0.0.0",
            "१.२.३.४",
        ]
    ),
    st.text(alphabet="0123456789.: abcdef", max_size=20),
    st.integers(),
)


@given(_ip_like, st.sampled_from(["actor_ip", "own_ip"]))
@settings(max_examples=1500)
def test_an_address_field_is_recorded_or_refused_as_the_general_parser_does(v: Any, method: str) -> None:
    assert _fast(method, v) == _general(method, v)


_part = st.one_of(st.none(), st.text(max_size=12), st.floats(allow_nan=True), st.integers(-(10**20), 10**20))


@given(
    st.text(max_size=20),
    _part,
    _part,
    _part,
    _part,
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)
@settings(max_examples=500)
def test_the_builders_revision_is_the_documented_revision(
    identity: str, a: Any, b: Any, c: Any, d: Any, status_raw: dict[str, str]
) -> None:
    assert _revision(identity, a, b, c, d, status_raw) == revision(identity, a, b, c, d, status_raw=status_raw)
