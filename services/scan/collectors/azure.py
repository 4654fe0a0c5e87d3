"""Azure from Resource Graph query output: the REST ``resources`` response
(``{"totalRecords", "count", "resultTruncated", "$skipToken", "data": [...]}``), the Azure CLI's
``az graph query`` output (``{"count", "data", "skip_token", "total_records"}``), a bare JSON array
of rows, or JSON lines (one row per line). A row is the ``Resources`` table's shape: ``id``,
``name``, ``type`` (lower case), ``location``, ``subscriptionId``, ``tenantId``,
``resourceGroup``, ``tags``, ``properties``.

A page that says more rows exist (``resultTruncated``, a skip token, or fewer rows than the
total) is incomplete: its findings are published but nothing resolves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from services.scan.collectors.common import ALL_PORTS, NO_PORTS, port_range, protocol, rule
from services.scan.domain import BadRecord, Collected, ResourceDoc, Unit

NSG = "microsoft.network/networksecuritygroups"
MAX_ROW = 4 * 1024 * 1024
ERROR_CLASS = "services.scan.collectors.azure.RowError"


class RowError(ValueError):
    pass


def nsg_rules(properties: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in ("securityRules", "defaultSecurityRules"):
        for r in properties.get(key) or []:
            if not isinstance(r, dict):
                continue
            inner = r.get("properties")
            p: dict[str, Any] = inner if isinstance(inner, dict) else r
            direction = "ingress" if str(p.get("direction", "")).lower() == "inbound" else "egress"
            action = "allow" if str(p.get("access", "")).lower() == "allow" else "deny"
            proto = protocol(p.get("protocol"))
            prefixes = [p.get("sourceAddressPrefix"), *(p.get("sourceAddressPrefixes") or [])]
            sources = [str(s) for s in prefixes if s]
            ranges_raw = [p.get("destinationPortRange"), *(p.get("destinationPortRanges") or [])]
            ranges: list[tuple[int, int]]
            if proto in ("tcp", "udp", "all"):
                ranges = [x for x in (port_range(v) for v in ranges_raw if v) if x is not None] or [ALL_PORTS]
            else:
                ranges = [NO_PORTS]
            prio = p.get("priority")
            for rg in ranges:
                out.append(
                    rule(
                        name=r.get("name"),
                        direction=direction,
                        action=action,
                        proto=proto,
                        ports=rg,
                        sources=sources,
                        priority=prio if isinstance(prio, int) else None,
                    )
                )
    return out


def row_doc(row: dict[str, Any]) -> ResourceDoc:
    rid, rtype = row.get("id"), row.get("type")
    if not isinstance(rid, str) or not rid:
        raise RowError("row has no id")
    if not isinstance(rtype, str) or not rtype:
        raise RowError(f"row {rid}: no type")
    kind = rtype.lower()
    props = row.get("properties")
    if props is not None and not isinstance(props, dict):
        raise RowError(f"row {rid}: properties is not an object")
    tags = row.get("tags")
    doc: ResourceDoc = {
        "provider": "azure",
        "kind": kind,
        "type": kind,
        "id": rid,
        # ARM ids are case-insensitive and Resource Graph does not always keep their case.
        "key": rid.lower(),
        "name": row.get("name") if isinstance(row.get("name"), str) else rid.rsplit("/", 1)[-1],
        "account": str(row.get("subscriptionId") or _segment(rid, "subscriptions") or "unknown"),
        "account_name": None,
        "organization": row.get("tenantId") if isinstance(row.get("tenantId"), str) else None,
        "region": row.get("location") if isinstance(row.get("location"), str) else None,
        "tags": {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        "addresses": [],
        "console_url": f"https://portal.azure.com/#resource{rid}",
        "config": row,
        "facts": {},
    }
    if kind == NSG:
        doc["facts"] = {"rules": nsg_rules(props or {})}
    return doc


def _segment(rid: str, name: str) -> str | None:
    parts = rid.strip("/").split("/")
    for i, p in enumerate(parts[:-1]):
        if p.lower() == name:
            return parts[i + 1]
    return None


def _rows(where: str, body: bytes, oi: int, out: Collected) -> list[tuple[int, Any]]:
    """The rows of one object, by position; the document's own paging fields checked."""
    text = body.lstrip()
    if text.startswith(b"{") or text.startswith(b"["):
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if text.startswith(b"{") and b"\n{" in body:
                return _lines(where, body, oi, out)  # JSON lines, one row per line
            out.bad.append(BadRecord(where, 0, body[:65536], ERROR_CLASS, f"malformed JSON: {exc}", oi))
            return []
        if isinstance(doc, list):
            return list(enumerate(doc, start=1))
        if isinstance(doc, dict) and isinstance(doc.get("data"), list):
            rows = doc["data"]
            truncated = str(doc.get("resultTruncated", "false")).lower() == "true"
            token = doc.get("$skipToken") or doc.get("skipToken") or doc.get("skip_token")
            total = doc.get("totalRecords", doc.get("total_records"))
            if truncated or token or (isinstance(total, int) and total > len(rows)):
                out.incomplete.append(
                    f"{where}: one page of a larger result (truncated={truncated}, "
                    f"skip token={'yes' if token else 'no'}, {len(rows)} of {total} rows); export every page"
                )
            if isinstance(doc["data"], list) and doc["data"] and not isinstance(doc["data"][0], dict):
                out.bad.append(
                    BadRecord(where, 0, body[:65536], ERROR_CLASS, "data is in table format; use objectArray", oi)
                )
                return []
            return list(enumerate(rows, start=1))
        if isinstance(doc, dict) and "id" in doc:
            return [(1, doc)]
        out.bad.append(
            BadRecord(
                where, 0, body[:65536], ERROR_CLASS, "expected rows: an array, an object with data, or JSON lines", oi
            )
        )
        return []
    out.bad.append(BadRecord(where, 0, body[:65536], ERROR_CLASS, "not JSON", oi))
    return []


def _lines(where: str, body: bytes, oi: int, out: Collected) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    for li, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_ROW:
                raise RowError(f"line longer than {MAX_ROW} bytes")
            rows.append((li, json.loads(line)))
        except (json.JSONDecodeError, UnicodeDecodeError, RowError) as exc:
            out.bad.append(BadRecord(where, li, line[:65536], ERROR_CLASS, f"malformed JSON: {exc}", oi))
    return rows


def parse_export(
    unit: Unit, objects: list[tuple[str, bytes]], known_kinds: Iterable[str], covers: Iterable[str] = ()
) -> Collected:
    out = Collected(unit)
    known = set(known_kinds)
    for oi, (where, body) in enumerate(objects):
        out.raw_objects.append(body)
        for pos, row in _rows(where, body, oi, out):
            try:
                if not isinstance(row, dict):
                    raise RowError(f"expected a row object, got {type(row).__name__}")
                d = row_doc(row)
            except RowError as exc:
                value = json.dumps(row, default=str).encode()[:65536]
                out.bad.append(BadRecord(where, pos, value, ERROR_CLASS, str(exc), oi))
                continue
            out.covered.add(d["kind"])
            if d["kind"] in known:
                d["raw"] = [oi, pos]
                out.resources.append(d)
            else:
                out.unchecked_kinds[d["kind"]] = out.unchecked_kinds.get(d["kind"], 0) + 1
    out.covered.update(covers)
    return out
