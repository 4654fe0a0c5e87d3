"""Normalization output is pinned: every fixture, and every fixture with each leaf replaced by
awkward values, gives exactly the recorded alerts, Avro bytes, errors and refusals
(goldens recorded before the throughput work; see golden.py)."""

from __future__ import annotations

import json

import pytest

from alertline.avro import SingleObjectCodec
from tests.unit.ingest import golden

# An intended change of behaviour (or a new fixture) means new goldens: regenerate them with
# `.venv/bin/python -m tests.unit.ingest.golden` and say why in the commit.
REGENERATE = "intended? regenerate: .venv/bin/python -m tests.unit.ingest.golden"


def _golden(file: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (golden.GOLDEN / file).read_text().splitlines()]


def test_every_fixture_normalizes_and_encodes_exactly_as_recorded(codec: SingleObjectCodec) -> None:
    expected = {r["fixture"]: r for r in _golden("fixtures.jsonl")}
    actual = {r["fixture"]: json.loads(golden._dumps(r)) for r in golden.fixture_outcomes(codec)}
    assert actual.keys() == expected.keys(), REGENERATE
    for name, row in actual.items():
        assert row == expected[name], f"{name}: {REGENERATE}"


@pytest.mark.parametrize("index", range(len(golden.VALUES)))
def test_fixtures_with_any_leaf_replaced_by_an_awkward_value_normalize_as_recorded(
    codec: SingleObjectCodec, index: int
) -> None:
    expected = {(r["fixture"], r["value"]): r for r in _golden("mutations.jsonl") if r["value"] == index}
    actual = {(r["fixture"], r["value"]): r for r in golden.mutation_digests(codec, [index])}
    assert actual.keys() == expected.keys(), REGENERATE
    for key, row in actual.items():
        assert row == expected[key], f"{key[0]} with every leaf replaced by {golden.VALUES[index]!r:.60}; {REGENERATE}"
