"""Lazy values: the header is checked at once, the body decoded on first read, and only a value
nobody read keeps its original bytes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from alertline.avro import LazyValue, SingleObjectCodec
from alertline.errors import DecodeError
from alertline.testing.samples import alert
from tests.unit.shared.test_avro_codec import _evolved_schemas, _published


@pytest.fixture(scope="module")
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()


def test_an_unread_value_written_back_keeps_its_bytes(codec: SingleObjectCodec) -> None:
    data = codec.encode("alert", alert(1))
    lazy = codec.lazy("alert", data)
    assert "not decoded" in repr(lazy)
    assert codec.encode("alert", lazy) is data


def test_a_read_value_is_a_full_mapping_and_is_encoded_again(codec: SingleObjectCodec) -> None:
    a = alert(2)
    data = codec.encode("alert", a)
    lazy = codec.lazy("alert", data)
    assert lazy["title"] == a["title"]
    assert lazy == a and dict(lazy) == a and {**lazy} == a and lazy.copy() == a
    assert not lazy != a and not a != lazy and lazy != a | {"title": "x"}
    assert len(lazy) == len(a) and "identity" in lazy and lazy.get("nope", 1) == 1
    assert lazy | {"title": "x"} == a | {"title": "x"} and {"title": "x"} | lazy == a
    out = codec.encode("alert", lazy)
    assert out == data and out is not data


def test_a_nested_change_after_a_read_is_written_not_lost(codec: SingleObjectCodec) -> None:
    lazy = codec.lazy("alert", codec.encode("alert", alert(3)))
    lazy["labels"]["added"] = "yes"  # nested values are plain dicts once read
    assert codec.decode("alert", codec.encode("alert", lazy))["labels"]["added"] == "yes"


def test_a_copy_is_a_plain_dict(codec: SingleObjectCodec) -> None:
    lazy = codec.lazy("alert", codec.encode("alert", alert(4)))
    assert type(copy.deepcopy(lazy)) is dict and type(copy.copy(lazy)) is dict


def test_a_bad_header_is_rejected_before_any_handler_sees_the_value(codec: SingleObjectCodec) -> None:
    with pytest.raises(DecodeError, match="not Avro single-object"):
        codec.lazy("alert", b"\x00not avro at all")
    with pytest.raises(DecodeError, match="unknown writer schema"):
        codec.lazy("alert", b"\xc3\x01" + b"\x00" * 8 + b"body")


def test_a_corrupt_body_fails_on_first_read_and_its_bytes_are_never_reused(codec: SingleObjectCodec) -> None:
    data = codec.encode("alert", alert(5))
    corrupt = data[:10] + b"\xff" * (len(data) - 10)
    lazy = codec.lazy("alert", corrupt)  # the header is fine
    with pytest.raises(DecodeError, match="corrupt 'alert' payload"):
        lazy["title"]
    assert lazy.unread_bytes("alert") is None
    with pytest.raises(DecodeError):
        codec.encode("alert", lazy)


def test_bytes_are_reused_only_under_the_same_schema(codec: SingleObjectCodec) -> None:
    lazy = codec.lazy("alert", codec.encode("alert", alert(6)))
    assert lazy.unread_bytes("decision") is None
    assert lazy.unread_bytes("alert") is not None


def test_an_older_writers_bytes_are_upgraded_not_forwarded(tmp_path: Path) -> None:
    old_dir = _evolved_schemas(tmp_path, "older")
    old = SingleObjectCodec(old_dir)
    new = SingleObjectCodec(lookup=_published(old_dir))
    a = alert(7)
    del a["console_url"]
    lazy = new.lazy("alert", old.encode("alert", a))
    assert isinstance(lazy, LazyValue)
    out = new.encode("alert", lazy)
    assert out[:10] == new.encode("alert", alert(7))[:10]  # this build's writer schema
    assert new.decode("alert", out)["console_url"] is None
