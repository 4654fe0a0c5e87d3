"""CI guard: every schema change stays backward AND forward compatible with the previous
committed version of that schema and with every released copy in schemas/released/."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many

from alertline.avro import SCHEMA_NAMES, expand_all, load_sources
from tests.conftest import REPO

CURRENT = load_sources(REPO / "schemas")


def _previous_committed() -> dict[str, Any]:
    """The expanded schemas as of HEAD (the previous committed version of each)."""
    try:
        names = subprocess.run(
            ["git", "ls-tree", "--name-only", "HEAD", "schemas/"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        raw = {}
        for path in names:
            if path.endswith(".avsc"):
                text = subprocess.run(
                    ["git", "show", f"HEAD:{path}"], cwd=REPO, capture_output=True, text=True, check=True
                )
                raw[Path(path).stem] = json.loads(text.stdout)
        return expand_all(raw)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {}


def _released() -> list[tuple[str, str, Any]]:
    out = []
    for p in sorted((REPO / "schemas" / "released").glob("*.avsc")):
        out.append((p.name.split(".", 1)[0], p.name, json.loads(p.read_text())))
    return out


PAIRS: list[tuple[str, str, Any]] = [(n, f"HEAD:{n}", s) for n, s in _previous_committed().items()] + _released()


def _can_read(writer: Any, reader: Any, samples: int = 50) -> None:
    w, r = fastavro.parse_schema(writer, _force=True), fastavro.parse_schema(reader, _force=True)
    for record in generate_many(w, samples):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, w, record)
        buf.seek(0)
        fastavro.schemaless_reader(buf, w, r)


def _defaults_for_new_fields(old: Any, new: Any, path: str = "") -> list[str]:
    """Fields a reader has that the writer lacks must carry defaults (checked recursively)."""
    problems: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict) and old.get("type") == new.get("type") == "record":
        old_fields = {f["name"]: f for f in old["fields"]}
        for f in new["fields"]:
            if f["name"] not in old_fields:
                if "default" not in f:
                    problems.append(f"{path}{new['name']}.{f['name']} added without a default")
            else:
                problems += _defaults_for_new_fields(old_fields[f["name"]]["type"], f["type"], f"{path}{new['name']}.")
    return problems


def test_every_contract_is_shipped_and_released() -> None:
    assert set(SCHEMA_NAMES) <= set(CURRENT)
    assert {n for n, _, _ in _released()} >= set(SCHEMA_NAMES)


@pytest.mark.parametrize(("name", "label", "previous"), PAIRS, ids=[label for _, label, _ in PAIRS])
def test_schema_is_backward_and_forward_compatible(name: str, label: str, previous: Any) -> None:
    current = CURRENT.get(name)
    assert current is not None, f"schema {name} was removed; released versions must stay readable"
    assert not _defaults_for_new_fields(previous, current), "backward: new reader fields need defaults"
    assert not _defaults_for_new_fields(current, previous), "forward: removed fields need defaults in the old schema"
    _can_read(previous, current)  # backward: new reader, old data
    _can_read(current, previous)  # forward: old reader, new data
