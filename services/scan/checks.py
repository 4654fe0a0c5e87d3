"""Declarative checks: one YAML file per check, compiled once at start.

id: aws-sg-open-admin-port          # stable: it is part of every alert identity
title: Security group open to the internet on an admin or database port
severity: high                      # informational | low | medium | high | critical
score: 80                           # optional, inside the label's band
provider: aws                       # aws | gcp | azure
resource_type: AwsEc2SecurityGroup  # the resource kind(s) the check binds to
category: network-exposure          # becomes the alert's finding_type
description: ...
remediation: ...                    # required: every alert tells what to do
references: [https://...]
each: facts.rules                   # optional: test each element of this list
ports: [22, 3389]                   # optional (with each): elements must expose one
match: {all: [...]}                 # see match.py
evidence: {status: config.Status}   # optional: fields copied into the alert
labels: {team: security}            # optional: initial alert labels
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from alertline.errors import ConfigError
from services.scan.domain import SEVERITY_BANDS, Check, severity_of
from services.scan.match import MatchError, compile_match, path_getter

PROVIDERS = ("aws", "gcp", "azure")
KEYS = {
    "id", "title", "severity", "score", "provider", "resource_type", "category", "description", "remediation",
    "references", "each", "ports", "match", "evidence", "labels",
}  # fmt: skip
REQUIRED = ("id", "title", "severity", "provider", "resource_type", "remediation", "match")


class CheckError(ConfigError):
    """A check file is invalid; the message names the file and the field."""


def default_dir() -> Path:
    return Path(__file__).resolve().parent / "checks"


def parse_check(spec: Any, source: str = "<check>") -> Check:
    def fail(msg: str) -> CheckError:
        return CheckError(f"{source}: {msg}")

    if not isinstance(spec, dict):
        raise fail(f"a check is a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    missing = [k for k in REQUIRED if spec.get(k) in (None, "", [])]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    cid = _text(spec, "id", fail)
    if not all(ch.isalnum() or ch in "-_." for ch in cid):
        raise fail(f"id {cid!r} may hold letters, digits, '-', '_' and '.' only")
    provider = _text(spec, "provider", fail)
    if provider not in PROVIDERS:
        raise fail(f"provider is one of {', '.join(PROVIDERS)}, got {provider!r}")
    label = _text(spec, "severity", fail)
    if label not in SEVERITY_BANDS:
        raise fail(f"severity is one of {', '.join(SEVERITY_BANDS)}, got {label!r}")
    score = spec.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int)):
        raise fail(f"score is a whole number, got {score!r}")
    try:
        label, score = severity_of(label, score)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    kinds_raw = spec["resource_type"]
    kinds = (kinds_raw,) if isinstance(kinds_raw, str) else tuple(kinds_raw) if isinstance(kinds_raw, list) else ()
    if not kinds or not all(isinstance(k, str) and k for k in kinds):
        raise fail("resource_type is a type name or a list of them")
    try:
        match = compile_match(spec["match"])
    except MatchError as exc:
        raise fail(str(exc)) from exc
    each_path = spec.get("each")
    each = None
    if each_path is not None:
        try:
            each = path_getter(_text(spec, "each", fail))
        except ValueError as exc:
            raise fail(f"each: {exc}") from exc
    ports_raw = spec.get("ports") or []
    if ports_raw and each is None:
        raise fail("ports needs each: (the list whose elements carry from_port/to_port)")
    if not isinstance(ports_raw, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 65535 for p in ports_raw
    ):
        raise fail("ports is a list of port numbers 0-65535")
    evidence_raw = spec.get("evidence") or {}
    if not isinstance(evidence_raw, dict):
        raise fail("evidence maps a name to a field path")
    evidence = []
    for name, path in evidence_raw.items():
        try:
            evidence.append((str(name), path_getter(path)))
        except ValueError as exc:
            raise fail(f"evidence.{name}: {exc}") from exc
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict):
        raise fail("labels maps text to text")
    refs = spec.get("references") or []
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise fail("references is a list of URLs")
    category = spec.get("category")
    return Check(
        id=cid,
        title=_text(spec, "title", fail),
        severity=label,
        score=score,
        provider=provider,
        kinds=kinds,
        description=str(spec.get("description") or ""),
        remediation=_text(spec, "remediation", fail),
        category=str(category) if category else None,
        match=match,
        each=each,
        each_path=each_path,
        ports=tuple(sorted(set(ports_raw))),
        evidence=tuple(evidence),
        labels={str(k): str(v) for k, v in labels.items()},
        references=tuple(refs),
        source=source,
    )


def _text(spec: Mapping[str, Any], key: str, fail: Any) -> str:
    v = spec.get(key)
    if not isinstance(v, str) or not v.strip():
        raise fail(f"{key} is text, got {type(v).__name__}")
    return v.strip()


def load_checks(directories: Iterable[Path]) -> list[Check]:
    """Every ``*.yaml``/``*.yml`` file under the directories, one check each; ids must be unique.
    All problems are collected and reported together."""
    checks: list[Check] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for d in directories:
        if not d.is_dir():
            problems.append(f"{d}: not a directory")
            continue
        for path in sorted([*d.rglob("*.yaml"), *d.rglob("*.yml")]):
            try:
                spec = yaml.safe_load(path.read_text(encoding="utf-8"))
                c = parse_check(spec, str(path))
            except yaml.YAMLError as exc:
                problems.append(f"{path}: not valid YAML: {exc}")
                continue
            except CheckError as exc:
                problems.append(str(exc))
                continue
            if c.id in seen:
                problems.append(f"{path}: duplicate id {c.id!r} (also in {seen[c.id]})")
                continue
            seen[c.id] = str(path)
            checks.append(c)
    if problems:
        raise CheckError("invalid checks:\n  " + "\n  ".join(problems))
    if not checks:
        raise CheckError(f"no checks found in {', '.join(map(str, directories))}")
    return checks
