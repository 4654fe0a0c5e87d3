"""The runtime tunes Python's garbage collector once per process when its stage starts."""

from __future__ import annotations

import gc

import pytest

from alertline.kafka import runtime


@pytest.fixture
def fake_gc(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    monkeypatch.setattr(runtime, "_gc_tuned", False)
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "get_threshold", lambda: (700, 10, 10))
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    return calls


def test_startup_heap_is_frozen_and_young_collections_are_rarer(fake_gc: list[object]) -> None:
    runtime._tune_gc(10_000)
    runtime._tune_gc(50)  # a second stage in the same process changes nothing
    assert fake_gc == ["collect", "freeze", (10_000, 10, 10)]


def test_zero_keeps_pythons_defaults(fake_gc: list[object]) -> None:
    runtime._tune_gc(0)
    assert fake_gc == []
