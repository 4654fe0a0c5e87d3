"""The Avro codec: round trips, schema evolution both ways, clear errors on corrupt input."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from alertline.avro import MAGIC, SingleObjectCodec, fingerprint_of, load_sources
from alertline.errors import DecodeError
from alertline.testing.samples import alert
from tests.conftest import REPO


@pytest.fixture(scope="module")
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()


def test_alert_round_trips_through_single_object_encoding(codec: SingleObjectCodec) -> None:
    a = alert(7)
    data = codec.encode("alert", a)
    assert data[:2] == MAGIC
    assert data[2:10] == fingerprint_of(load_sources(REPO / "schemas")["alert"])
    assert codec.decode("alert", data) == a


def test_every_contract_round_trips(codec: SingleObjectCodec) -> None:
    a = alert(1)
    decision = {
        "action": "ticket", "priority": "P2", "reason": None, "repository": "acme/security", "assignees": [],
        "labels": ["x"], "auto_close": True, "group_key": None, "matched": [{"rule_id": "r1", "why": "product"}],
        "ruleset": "abc", "evaluated_at": a["received_at"],
    }  # fmt: skip
    values = {
        "decision": {"alert": a, "decision": decision},
        "enrichment": {
            "kind": "alert", "alert": a, "decision": decision, "enrichments": [], "enriched_at": a["received_at"],
        },
        "ticket_state": {
            "identity": "i", "repository": "acme/sec", "issue_number": 3, "state": "open", "close_reason": None,
            "occurrences": 2, "last_revision": "r", "alert_status": "active", "first_seen": a["received_at"],
            "last_seen": a["received_at"], "last_comment_at": None, "closed_at": None, "comment_fingerprints": ["f"],
            "labels": ["sev:high"], "group_key": None, "product": "guardduty", "auto_close": True,
            "updated_at": a["received_at"], "record_type": "page", "generation": 1, "previous_issue": 2,
            "gh_updated_at": a["received_at"], "removed_labels": ["x"], "title": "t", "page": 1,
            "members": [{"identity": "m", "line": "l", "resolved": True, "shown_resolved": False,
                         "updated_at": a["received_at"]}],
            "dirty_since": None, "flushed_at": a["received_at"], "overflow": 0, "overflow_resolved": 0,
        },
        "ticket_event": {
            "kind": "human", "key": "i", "repository": "acme/sec", "issue_number": 3, "generation": 0, "page": 0,
            "action": "closed", "issue_state": "closed", "state_reason": "not_planned", "labels": ["a"],
            "actor": "octo", "observed_at": a["received_at"], "delivery_id": "d", "seen_at": None,
            "group_key": None, "group_title": None, "member": None,
        },
        "dead_letter": {
            "service": "ingest", "source": "sqs://q", "partition": None, "offset": None, "key": None,
            "value": b"\x00\xff raw", "headers": {"h": b"v"}, "error_class": "E", "error_message": "m",
            "raw_uri": "s3://b/k", "failed_at": a["received_at"],
        },
    }  # fmt: skip
    for name, value in values.items():
        assert codec.decode(name, codec.encode(name, value)) == value, name


def _evolved_schemas(tmp_path: Path, change: str) -> Path:
    """A copy of schemas/ where the alert schema gained (new) or lost (old) an optional field."""
    d = tmp_path / change
    shutil.copytree(REPO / "schemas", d, ignore=shutil.ignore_patterns("released"))
    schema = json.loads((d / "alert.avsc").read_text())
    if change == "newer":
        schema["fields"].append({"name": "ticket_hint", "type": ["null", "string"], "default": None})
    else:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "console_url"]
    (d / "alert.avsc").write_text(json.dumps(schema))
    return d


def _published(*dirs: Path):  # type: ignore[no-untyped-def]
    """What writers publish to the schemas topic: fingerprint -> schema JSON."""
    table = {}
    for d in dirs:
        table.update(SingleObjectCodec(d).writer_schemas())
    return lambda fp: table.get(fp.hex())


def test_newer_reader_reads_records_of_an_older_writer(tmp_path: Path) -> None:
    old_dir, new_dir = _evolved_schemas(tmp_path, "older"), _evolved_schemas(tmp_path, "newer")
    old = SingleObjectCodec(old_dir)
    new = SingleObjectCodec(new_dir, lookup=_published(old_dir))
    a = alert(3)
    del a["console_url"]
    got = new.decode("alert", old.encode("alert", a))
    assert got["ticket_hint"] is None  # filled from the default
    assert got["console_url"] is None
    assert got["identity"] == a["identity"]


def test_older_reader_reads_records_of_a_newer_writer(tmp_path: Path) -> None:
    old_dir, new_dir = _evolved_schemas(tmp_path, "older"), _evolved_schemas(tmp_path, "newer")
    old = SingleObjectCodec(old_dir, lookup=_published(new_dir))
    new = SingleObjectCodec(new_dir)
    a = alert(4) | {"ticket_hint": "x"}
    got = old.decode("alert", new.encode("alert", a))
    assert "ticket_hint" not in got and "console_url" not in got
    assert got["title"] == a["title"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"", "not Avro single-object encoding"),
        (lambda b: b"{" + b[1:], "not Avro single-object encoding"),
        (lambda b: b[:2] + bytes(8) + b[10:], "unknown writer schema fingerprint"),
        (lambda b: b[: len(b) // 2], "corrupt 'alert' payload"),
        (lambda b: b + b"\x00\x01", "trailing bytes"),
    ],
    ids=["empty", "json", "unknown-fingerprint", "truncated", "trailing"],
)
def test_corrupted_payload_gives_a_clear_error(codec: SingleObjectCodec, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = mutate(codec.encode("alert", alert(1)))
    with pytest.raises(DecodeError, match=message):
        codec.decode("alert", data)


def test_an_unknown_writer_without_a_published_schema_is_rejected_clearly(tmp_path: Path) -> None:
    old = SingleObjectCodec(_evolved_schemas(tmp_path, "older"))
    new = SingleObjectCodec(_evolved_schemas(tmp_path, "newer"))
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint"):
        old.decode("alert", new.encode("alert", alert(1) | {"ticket_hint": None}))


def test_a_record_of_another_contract_is_rejected(codec: SingleObjectCodec) -> None:
    data = codec.encode("alert", alert(1))
    with pytest.raises(DecodeError, match="cannot be read as 'ticket_state'"):
        codec.decode("ticket_state", data)


def test_encoding_rejects_a_record_missing_required_fields(codec: SingleObjectCodec) -> None:
    a = copy.deepcopy(alert(1))
    del a["identity"]
    with pytest.raises((ValueError, TypeError, KeyError)):
        codec.encode("alert", a)
