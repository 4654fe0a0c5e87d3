"""PartitionState: record, batch and committed layers; committed values kept packed."""

from __future__ import annotations

import json
from typing import Any

from alertline.stage import PartitionState


class Counting:
    def __init__(self) -> None:
        self.unpacked = 0

    def pack(self, v: Any) -> bytes:
        return json.dumps(v).encode()

    def unpack(self, b: bytes) -> Any:
        self.unpacked += 1
        return json.loads(b)


def test_committed_values_are_kept_packed_and_decoded_once_while_hot() -> None:
    c = Counting()
    st = PartitionState(pack=c.pack, unpack=c.unpack)
    st.set("a", {"n": 1})
    st.end_record(ok=True)
    assert st.get("a") == {"n": 1} and c.unpacked == 0, "uncommitted values are read as they are"
    st.commit_batch()
    assert st.committed["a"] == b'{"n": 1}'
    assert st.get("a") == {"n": 1} and st.get("a") == {"n": 1} and c.unpacked == 1, "a hot key is decoded once"
    st.set("a", {"n": 2})
    st.end_record(ok=True)
    st.commit_batch()
    assert st.get("a") == {"n": 2}, "a new committed value replaces the decoded one"
    assert st.get("missing", "dflt") == "dflt"


def test_keys_do_not_unpack_and_honour_deletes_in_every_layer() -> None:
    c = Counting()
    st = PartitionState(pack=c.pack, unpack=c.unpack)
    for k in ("a", "b", "c"):
        st.set(k, {"k": k})
    st.end_record(ok=True)
    st.commit_batch()
    st.delete("b")
    st.end_record(ok=True)
    st.delete("c")
    assert sorted(st.keys()) == ["a"] and c.unpacked == 0
    st.end_record(ok=False)  # the record failed: its delete of c is undone
    assert sorted(st.keys()) == ["a", "c"]
    st.abort_batch()
    assert sorted(st.keys()) == ["a", "b", "c"]


def test_without_a_codec_values_are_kept_as_they_are() -> None:
    st = PartitionState()
    v = {"n": 1}
    st.set("a", v)
    st.end_record(ok=True)
    st.commit_batch()
    assert st.committed["a"] is v and st.get("a") is v
