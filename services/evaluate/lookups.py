"""Lookup tables: outside data joined with alerts (account -> owner, known-good IPs, assets).

Two sources, one view:
- files in the lookups directory, one table per file, named by the file's stem:
  ``accounts.yaml`` (a mapping key -> row, or a list of keys) or ``accounts.csv`` (a header
  row; the first column is the key). Reloaded together with the rules.
- the compacted lookups topic: key ``<table>/<key>``, value a JSON row; a tombstone (or a JSON
  ``null``) deletes the row. Followed live on every replica.

A topic row overrides a file row with the same table and key; deleting the topic row lets the
file row show again. Keys are text: quote account ids in YAML so leading zeros survive.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.evaluate import yamlsrc
from services.evaluate.diagnostics import Problem

TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LOOKUP_SUFFIXES = (".yaml", ".yml", ".csv")

Table = dict[str, Any]


class LiveTables:
    """Rows from the lookups topic, by table; fed by a TableReader's ``on_change``."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}

    def apply(self, key: str, value: Any | None) -> None:
        table, sep, row_key = key.partition("/")
        if not sep or not table or not row_key:
            raise ValueError(f"lookup key must be '<table>/<key>', got {key!r}")
        if value is None:
            t = self.tables.get(table)
            if t is not None:
                t.pop(row_key, None)
            return
        self.tables.setdefault(table, {})[row_key] = value

    def rows(self) -> int:
        return sum(len(t) for t in self.tables.values())


class Lookups:
    """What rules see: ``get(table, key)`` -> row or None; topic rows before file rows."""

    __slots__ = ("files", "live")

    def __init__(self, files: Mapping[str, Mapping[str, Any]], live: LiveTables | None = None) -> None:
        self.files = files
        self.live = live

    def get(self, table: str, key: str) -> Any:
        live = self.live
        if live is not None:
            t = live.tables.get(table)
            if t is not None:
                v = t.get(key)
                if v is not None:
                    return v
        f = self.files.get(table)
        return None if f is None else f.get(key)

    def table_names(self) -> set[str]:
        names = set(self.files)
        if self.live is not None:
            names |= set(self.live.tables)
        return names

    def overlay(self, extra: Mapping[str, Mapping[str, Any]]) -> Lookups:
        """A copy with ``extra`` rows on top of the file rows (rule test cases use this)."""
        files: dict[str, dict[str, Any]] = {t: dict(rows) for t, rows in self.files.items()}
        for t, rows in extra.items():
            files.setdefault(t, {}).update(rows)
        return Lookups(files, self.live)


def lookup_files(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in LOOKUP_SUFFIXES and not p.name.startswith("."))


def load_tables(files: list[tuple[Path, str]], problems: list[Problem]) -> dict[str, Table]:
    """Parse lookup files (path, text); problems are appended with file:line."""
    tables: dict[str, Table] = {}
    origin: dict[str, Path] = {}
    for path, text in files:
        name = path.stem
        if not TABLE_NAME.match(name):
            problems.append(Problem(str(path), 1, f"table name {name!r} must be letters, digits, '_', '.', '-'"))
            continue
        if name in tables:
            problems.append(Problem(str(path), 1, f"table {name!r} is also defined by {origin[name]}"))
            continue
        rows = _parse_csv(path, text, problems) if path.suffix == ".csv" else _parse_yaml(path, text, problems)
        if rows is not None:
            tables[name] = rows
            origin[name] = path
    return tables


def _parse_yaml(path: Path, text: str, problems: list[Problem]) -> Table | None:
    try:
        doc = yamlsrc.load(text)
    except yamlsrc.YamlProblem as exc:
        problems.append(Problem(str(path), exc.line, exc.message))
        return None
    if doc is None:
        return {}
    out: Table = {}
    if isinstance(doc, list):
        for i, k in enumerate(doc):
            line = doc.line_of(i) if isinstance(doc, yamlsrc.LocatedList) else 1
            if not isinstance(k, str) or not k:
                problems.append(Problem(str(path), line, f"a key must be quoted text, got {k!r}"))
                continue
            out[k] = {}
        return out
    if not isinstance(doc, dict):
        problems.append(Problem(str(path), 1, "a lookup file holds a mapping (key: row) or a list of keys"))
        return None
    for k, row in doc.items():
        line = doc.line_of(k) if isinstance(doc, yamlsrc.LocatedDict) else 1
        if isinstance(doc, yamlsrc.LocatedDict) and k in doc.nonstr_keys:
            problems.append(Problem(str(path), line, f"key {k} is not text; quote it ('{k}') so it stays exact"))
            continue
        out[k] = {} if row is None else _plain(row)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _parse_csv(path: Path, text: str, problems: list[Problem]) -> Table | None:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return {}
    except csv.Error as exc:
        problems.append(Problem(str(path), 1, f"CSV: {exc}"))
        return None
    header = [h.strip() for h in header]
    if not header or not header[0]:
        problems.append(Problem(str(path), 1, "CSV needs a header row; the first column is the key"))
        return None
    out: Table = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) > len(header):
                problems.append(Problem(str(path), line, f"{len(row)} columns but the header has {len(header)}"))
                continue
            key = row[0].strip()
            if not key:
                problems.append(Problem(str(path), line, "empty key"))
                continue
            if key in out:
                problems.append(Problem(str(path), line, f"duplicate key {key!r}"))
                continue
            out[key] = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header) if i > 0}
    except csv.Error as exc:
        problems.append(Problem(str(path), reader.line_num, f"CSV: {exc}"))
        return None
    return out
