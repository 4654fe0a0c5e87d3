"""A minimal MaxMind DB writer for tests (IPv4 tree, 24-bit records, maps/strings/uints)."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

META = b"\xab\xcd\xefMaxMind.com"


def _ctrl(kind: int, size: int) -> bytes:
    ext = b""
    if kind > 7:
        ext, kind = bytes([kind - 7]), 0
    if size < 29:
        return bytes([(kind << 5) | size]) + ext
    if size < 285:
        return bytes([(kind << 5) | 29]) + ext + bytes([size - 29])
    return bytes([(kind << 5) | 30]) + ext + struct.pack(">H", size - 285)


class U16(int):
    pass


class U64(int):
    pass


def encode(v: Any) -> bytes:
    if isinstance(v, (U16, U64)):
        b = int(v).to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
        return _ctrl(5 if isinstance(v, U16) else 9, len(b)) + b
    if isinstance(v, str):
        b = v.encode()
        return _ctrl(2, len(b)) + b
    if isinstance(v, bool):
        return _ctrl(14, int(v))
    if isinstance(v, int):
        b = v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
        return _ctrl(6 if v < 2**32 else 9, len(b)) + b
    if isinstance(v, dict):
        return _ctrl(7, len(v)) + b"".join(encode(k) + encode(x) for k, x in v.items())
    if isinstance(v, list):
        return _ctrl(11, len(v)) + b"".join(encode(x) for x in v)
    raise TypeError(type(v))


def write(path: str, networks: dict[str, dict[str, Any]], database_type: str = "GeoLite2-ASN") -> None:
    nodes: list[list[int | None]] = [[None, None]]
    data = b""
    leaves: list[tuple[int, int, int]] = []
    for cidr, rec in networks.items():
        net = ipaddress.IPv4Network(cidr)
        offset = len(data)
        data += encode(rec)
        bits = int(net.network_address)
        node = 0
        for i in range(net.prefixlen):
            bit = (bits >> (31 - i)) & 1
            if i == net.prefixlen - 1:
                leaves.append((node, bit, offset))
                break
            nxt = nodes[node][bit]
            if nxt is None:
                nodes.append([None, None])
                nxt = len(nodes) - 1
                nodes[node][bit] = nxt
            node = nxt
    count = len(nodes)
    for node, bit, offset in leaves:
        nodes[node][bit] = count + 16 + offset
    tree = b"".join((count if r is None else r).to_bytes(3, "big") for pair in nodes for r in pair)
    meta = encode({
        "node_count": count, "record_size": U16(24), "ip_version": U16(4), "database_type": database_type,
        "languages": ["en"], "binary_format_major_version": U16(2), "binary_format_minor_version": U16(0),
        "build_epoch": U64(1795000000), "description": {"en": "test"},
    })  # fmt: skip
    with open(path, "wb") as f:
        f.write(tree + b"\x00" * 16 + data + META + meta)
