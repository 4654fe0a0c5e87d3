"""Google Cloud from a Cloud Asset Inventory export (``exportAssets`` to Cloud Storage): newline-
delimited JSON, one ``google.cloud.asset.v1.Asset`` per line.

Exports written by the API use the proto field names (``asset_type``, ``iam_policy``,
``update_time``); ``gcloud``/REST output uses JSON names (``assetType``, ``iamPolicy``). Both
are read. A ``RESOURCE`` export gives ``resource.data`` (the resource as its own API returns
it); an ``IAM_POLICY`` export gives ``iam_policy``. Each becomes its own resource document,
kinds ``<asset_type>`` and ``<asset_type>:iam_policy``, so a check on IAM policies never
"resolves" because it was fed a resource-content export.

Malformed lines become ``BadRecord``s (the export is then incomplete: nothing resolves);
asset types no check reads are counted, not errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from services.scan.collectors.common import ALL_PORTS, NO_PORTS, port_range, protocol, rule
from services.scan.domain import BadRecord, Collected, ResourceDoc, Unit

FIREWALL = "compute.googleapis.com/Firewall"
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
MAX_LINE = 4 * 1024 * 1024


class LineError(ValueError):
    pass


def _snake(key: str) -> str:
    return _SNAKE.sub("_", key).lower()


def normalize_asset(a: dict[str, Any]) -> dict[str, Any]:
    """Top-level and ``resource`` keys in proto (snake_case) form; ``resource.data`` and the
    IAM policy untouched (they are the services' own JSON)."""
    out = {_snake(k): v for k, v in a.items()}
    res = out.get("resource")
    if isinstance(res, dict):
        out["resource"] = {(_snake(k) if k != "data" else k): v for k, v in res.items()}
    return out


def project_of(name: str, ancestors: list[Any]) -> str | None:
    m = re.search(r"/projects/([^/]+)", name)
    if m:
        return m.group(1)
    for a in ancestors:
        if isinstance(a, str) and a.startswith("projects/"):
            return a.split("/", 1)[1]
    return None


def organization_of(ancestors: list[Any]) -> str | None:
    for a in ancestors:
        if isinstance(a, str) and a.startswith("organizations/"):
            return a
    return None


def firewall_rules(data: dict[str, Any]) -> list[dict[str, Any]]:
    direction = "egress" if str(data.get("direction", "INGRESS")).upper() == "EGRESS" else "ingress"
    sources = [str(s) for s in (data.get("sourceRanges") or [])]
    if direction == "ingress" and not (sources or data.get("sourceTags") or data.get("sourceServiceAccounts")):
        # An ingress rule naming no source at all applies to every source.
        sources = ["0.0.0.0/0"]
    if direction == "egress":
        sources = [str(s) for s in (data.get("destinationRanges") or [])]
    disabled = bool(data.get("disabled", False))
    out = []
    for action, key in (("allow", "allowed"), ("deny", "denied")):
        for entry in data.get(key) or []:
            if not isinstance(entry, dict):
                continue
            proto = protocol(entry.get("IPProtocol"))
            ranges: list[tuple[int, int]]
            if proto in ("tcp", "udp", "sctp", "all"):
                ports = entry.get("ports")
                if not ports:
                    ranges = [ALL_PORTS]
                else:
                    ranges = [r for r in (port_range(p) for p in ports) if r is not None]
            else:
                ranges = [NO_PORTS]
            for r in ranges:
                out.append(
                    rule(
                        name=data.get("name"),
                        direction=direction,
                        action=action,
                        proto=proto,
                        ports=r,
                        sources=sources,
                        priority=data.get("priority") if isinstance(data.get("priority"), int) else None,
                        disabled=disabled,
                    )
                )
    return out


def asset_docs(asset: dict[str, Any]) -> list[ResourceDoc]:
    """One Asset line -> its resource documents (content and/or IAM policy)."""
    a = normalize_asset(asset)
    name, atype = a.get("name"), a.get("asset_type")
    if not isinstance(name, str) or not name:
        raise LineError("no asset name")
    if not isinstance(atype, str) or not atype:
        raise LineError(f"asset {name}: no asset_type")
    raw_anc = a.get("ancestors")
    ancestors: list[Any] = raw_anc if isinstance(raw_anc, list) else []
    project = project_of(name, ancestors)
    base: ResourceDoc = {
        "provider": "gcp",
        "type": atype,
        "id": name,
        "key": name,
        "name": name.rstrip("/").rsplit("/", 1)[-1],
        "account": project or "unknown",
        "account_name": None,
        "organization": organization_of(ancestors),
        "region": None,
        "tags": {},
        "addresses": [],
        "console_url": None,
    }
    docs: list[ResourceDoc] = []
    res = a.get("resource")
    if isinstance(res, dict):
        data = res.get("data")
        if not isinstance(data, dict):
            raise LineError(f"asset {name}: resource.data is not an object")
        loc = res.get("location")
        doc: ResourceDoc = {**base, "kind": atype}
        doc["region"] = loc if isinstance(loc, str) and loc != "global" else None
        labels = data.get("labels")
        doc["tags"] = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
        doc["config"] = a
        facts: dict[str, Any] = {}
        if atype == FIREWALL:
            facts = {
                "rules": firewall_rules(data),
                "network": data.get("network"),
                "target_tags": data.get("targetTags") or [],
            }
            if project:
                doc["console_url"] = (
                    f"https://console.cloud.google.com/net-security/firewall-manager/firewall-policies/details/"
                    f"{doc['name']}?project={project}"
                )
        doc["facts"] = facts
        docs.append(doc)
    policy = a.get("iam_policy")
    if isinstance(policy, dict):
        pdoc: ResourceDoc = {**base, "kind": f"{atype}:iam_policy"}
        pdoc["config"] = a
        pdoc["facts"] = {}
        docs.append(pdoc)
    if not docs:
        raise LineError(f"asset {name}: neither resource nor iam_policy content")
    return docs


def parse_export(
    unit: Unit, objects: list[tuple[str, bytes]], known_kinds: Iterable[str], covers: Iterable[str] = ()
) -> Collected:
    """Read a CAI export (one or more objects, each JSON lines) into one unit's collection."""
    out = Collected(unit)
    known = set(known_kinds)
    for oi, (where, body) in enumerate(objects):
        out.raw_objects.append(body)
        for li, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                if len(line) > MAX_LINE:
                    raise LineError(f"line longer than {MAX_LINE} bytes")
                try:
                    asset = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise LineError(f"malformed JSON: {exc}") from exc
                if not isinstance(asset, dict):
                    raise LineError(f"expected a JSON object (an Asset), got {type(asset).__name__}")
                docs = asset_docs(asset)
            except LineError as exc:
                out.bad.append(
                    BadRecord(where, li, line[:65536], "services.scan.collectors.gcp.LineError", str(exc), oi)
                )
                continue
            for d in docs:
                out.covered.add(d["kind"])
                if d["kind"] in known:
                    d["raw"] = [oi, li]
                    out.resources.append(d)
                else:
                    out.unchecked_kinds[d["kind"]] = out.unchecked_kinds.get(d["kind"], 0) + 1
    out.covered.update(covers)
    return out
