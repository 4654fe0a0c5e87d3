"""In-memory IP lists with fast lookup: sorted, merged integer ranges searched with bisect.

IPv4 and IPv6 are kept apart (each family its own integer space). Parsers accept the Tor
Project's bulk exit list (one address per line), its ``exit-addresses`` document
(``ExitAddress 1.2.3.4 2026-11-23 10:00:00`` lines) and plain IP/CIDR block lists with ``#``
(or ``;``) comments. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress:
    """An address, with IPv4-mapped IPv6 (``::ffff:1.2.3.4``) folded to IPv4."""
    ip = ipaddress.ip_address(text.strip().strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class _Ranges:
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def build(cls, nets: Iterable[IPNetwork]) -> _Ranges:
        spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets)
        starts: list[int] = []
        ends: list[int] = []
        for s, e in spans:
            if starts and s <= ends[-1] + 1:
                ends[-1] = max(ends[-1], e)
            else:
                starts.append(s)
                ends.append(e)
        return cls(tuple(starts), tuple(ends))

    def __contains__(self, value: int) -> bool:
        i = bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]

    def __len__(self) -> int:
        return len(self.starts)


class IpSet:
    """An immutable set of networks with O(log n) membership."""

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        nets = list(networks)
        self.entries = len(nets)
        self._v4 = _Ranges.build(n for n in nets if n.version == 4)
        self._v6 = _Ranges.build(n for n in nets if n.version == 6)

    def __contains__(self, ip: object) -> bool:
        if isinstance(ip, str):
            try:
                ip = parse_ip(ip)
            except ValueError:
                return False
        if isinstance(ip, ipaddress.IPv4Address):
            return int(ip) in self._v4
        if isinstance(ip, ipaddress.IPv6Address):
            return int(ip) in self._v6
        return False

    def __len__(self) -> int:
        return self.entries

    @property
    def ranges(self) -> int:
        return len(self._v4) + len(self._v6)


@dataclass(frozen=True)
class Parsed:
    networks: list[IPNetwork]
    rejected: list[str]


def _network(token: str) -> IPNetwork:
    net = ipaddress.ip_network(token.strip().strip("[]"), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
    return net


def parse_list(text: str) -> Parsed:
    """Parse a plain list, a Tor bulk exit list or a Tor ``exit-addresses`` document.

    Unparseable lines are returned in ``rejected`` (a feed that changed format shows up as
    many rejects rather than as an empty list that silently says "not listed").
    """
    nets: list[IPNetwork] = []
    rejected: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if parts[0] == "ExitAddress" and len(parts) >= 2:
            token = parts[1]
        elif parts[0] in ("ExitNode", "Published", "LastStatus"):
            continue  # exit-addresses metadata lines
        else:
            token = parts[0]
        try:
            nets.append(_network(token))
        except ValueError:
            rejected.append(raw.strip()[:200])
    return Parsed(nets, rejected)
