"""The prober's SSRF guard: which addresses a scanner may touch.

Refused unless an allow-list entry covers them: unspecified, loopback, link-local,
multicast, private, shared (CGNAT), reserved and every other non-global address. Cloud
metadata endpoints are refused even inside a broad allow-list entry; only an entry naming
the address exactly (/32, /128) opens them. A DNS name is resolved here, every address it
resolves to must pass, and the caller connects to the checked address (never the name again),
so a rebinding resolver cannot swap in another address between check and connect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from services.enrich.iplists import IPAddress, IPNetwork, parse_ip

Resolver = Callable[[str], Sequence[str]]

METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",
        "100.100.100.200",  # Alibaba Cloud
    )
)
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


class Refused(Exception):
    """The guard refused a target; ``reason`` says why in one line."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason


def classify(ip: IPAddress) -> str | None:
    """Why an address is not a public internet address, or None when it is."""
    if ip in METADATA:
        return "cloud metadata address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "shared address space (CGNAT 100.64.0.0/10)"
    if ip.is_reserved:
        return "reserved address"
    if ip.is_private:
        return "private address"
    if isinstance(ip, ipaddress.IPv6Address) and (ip.sixtofour is not None or ip.teredo is not None):
        return "IPv6 transition address (6to4/Teredo) that may tunnel to an internal host"
    if not ip.is_global:
        return "not a global address"
    return None


def system_resolver(timeout_s: float = 5.0) -> Resolver:
    """``getaddrinfo`` with a deadline (it has none of its own)."""
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")

    def resolve(host: str) -> list[str]:
        fut = pool.submit(socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM)
        try:
            infos = fut.result(timeout=timeout_s)
        except FutureTimeout:
            raise Refused(host, f"DNS lookup timed out after {timeout_s}s") from None
        except socket.gaierror as exc:
            raise Refused(host, f"DNS lookup failed: {exc.strerror or exc}") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    return resolve


@dataclass(frozen=True)
class Checked:
    """A host the guard passed, with the addresses it may connect to."""

    host: str
    addresses: tuple[IPAddress, ...]

    @property
    def address(self) -> IPAddress:
        return self.addresses[0]


class Guard:
    def __init__(
        self,
        allow: Iterable[str | IPNetwork] = (),
        resolver: Resolver | None = None,
        only: Iterable[str | IPNetwork] = (),
    ) -> None:
        self.allow: tuple[IPNetwork, ...] = tuple(
            a if not isinstance(a, str) else ipaddress.ip_network(a, strict=False) for a in allow
        )
        # A confinement (labs, the demo, tests): when set, nothing outside these ranges is touched,
        # public addresses included.
        self.only: tuple[IPNetwork, ...] = tuple(
            a if not isinstance(a, str) else ipaddress.ip_network(a, strict=False) for a in only
        )
        self._resolver = resolver or system_resolver()

    def check_ip(self, ip: IPAddress) -> str | None:
        """The refusal reason for one address, or None when it may be probed."""
        if self.only and not any(ip.version == n.version and ip in n for n in self.only):
            return f"outside the configured scope {ip} (probe.only)"
        reason = classify(ip)
        if reason is None:
            return None
        for net in self.allow:
            if ip.version != net.version or ip not in net:
                continue
            if ip in METADATA and net.num_addresses != 1:
                continue  # metadata needs an entry naming it exactly
            return None
        return f"{reason} {ip} (not in the allow-list)"

    def check(self, host: str) -> Checked:
        """Resolve ``host`` (a name or literal) and check every address; raise ``Refused``."""
        host = host.strip().strip("[]")
        if not host:
            raise Refused(host, "empty host")
        try:
            literal: IPAddress | None = parse_ip(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                raw = self._resolver(host.rstrip(".").lower())
            except Refused:
                raise
            except OSError as exc:
                raise Refused(host, f"DNS lookup failed: {exc}") from exc
            addresses = []
            for a in raw:
                try:
                    addresses.append(parse_ip(a))
                except ValueError:
                    raise Refused(host, f"resolver returned a non-address {a!r}") from None
            if not addresses:
                raise Refused(host, "DNS name resolves to no address")
        for ip in addresses:
            reason = self.check_ip(ip)
            if reason is not None:
                via = "" if literal is not None else "resolves to "
                raise Refused(host, f"{via}{reason}")
        return Checked(host, tuple(addresses))
