"""Lookup tables: files, the live topic view, and how they combine."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluate.diagnostics import Problem
from services.evaluate.lookups import LiveTables, Lookups, load_tables

from .helpers import decide, evaluator


def tables(**files: str) -> dict[str, dict[str, object]]:
    problems: list[Problem] = []
    out = load_tables([(Path(name), text) for name, text in files.items()], problems)
    assert problems == []
    return out


def test_yaml_rows_yaml_key_lists_and_csv_rows() -> None:
    t = tables(
        **{
            "accounts.yaml": '"123": {team: a, env: prod}\n"456":\n',
            "goodips.yml": '- "10.0.0.1"\n- "10.0.0.2"\n',
            "assets.csv": "id, owner ,env\ni-1,bob,prod\ni-2,carol,\n",
        }
    )
    assert t["accounts"] == {"123": {"team": "a", "env": "prod"}, "456": {}}
    assert t["goodips"] == {"10.0.0.1": {}, "10.0.0.2": {}}
    assert t["assets"] == {"i-1": {"owner": "bob", "env": "prod"}, "i-2": {"owner": "carol", "env": ""}}


def test_topic_rows_override_file_rows_and_a_tombstone_uncovers_the_file_row() -> None:
    live = LiveTables()
    lk = Lookups({"accounts": {"1": {"team": "file"}}}, live)
    assert lk.get("accounts", "1") == {"team": "file"}
    live.apply("accounts/1", {"team": "topic"})
    live.apply("accounts/2", {"team": "new"})
    assert lk.get("accounts", "1") == {"team": "topic"} and lk.get("accounts", "2") == {"team": "new"}
    live.apply("accounts/1", None)
    live.apply("accounts/2", None)
    assert lk.get("accounts", "1") == {"team": "file"} and lk.get("accounts", "2") is None
    assert live.rows() == 0


def test_topic_keys_split_at_the_first_slash_only() -> None:
    live = LiveTables()
    live.apply("assets/arn:aws:s3:::bucket/path", {"x": 1})
    assert live.tables == {"assets": {"arn:aws:s3:::bucket/path": {"x": 1}}}
    for bad in ("no-slash", "/key", "table/"):
        with pytest.raises(ValueError, match="<table>/<key>"):
            live.apply(bad, {})


def test_a_live_update_changes_the_next_decision() -> None:
    live = LiveTables()
    ev = evaluator(
        """
rules:
  - {id: tor, description: d, owner: o, match: {field: indicators.ips, in_lookup: tor-exits}, actions: {priority: P1}}
""",
        live=live,
    )
    alert = {"indicators": {"ips": ["198.51.100.7"]}}
    assert decide(ev, **alert)["priority"] == "P3"
    live.apply("tor-exits/198.51.100.7", {"source": "feed"})
    assert decide(ev, **alert)["priority"] == "P1"
    live.apply("tor-exits/198.51.100.7", None)
    assert decide(ev, **alert)["priority"] == "P3"


def test_a_test_case_overlay_adds_rows_without_touching_the_original() -> None:
    base = Lookups({"a": {"1": {}}})
    over = base.overlay({"a": {"2": {}}, "b": {"x": {"y": 1}}})
    assert over.get("a", "1") == {} and over.get("a", "2") == {} and over.get("b", "x") == {"y": 1}
    assert base.get("a", "2") is None
