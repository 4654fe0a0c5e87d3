"""Per-target politeness: bounded connections to one address, spaced starts; others unaffected."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from services.enrich.probe import Politeness


def _hammer(p: Politeness, address: str, n: int, hold: float, starts: list[float], peak: list[int]) -> None:
    lock = threading.Lock()
    live = [0]

    def one() -> None:
        with p.slot(address, time.monotonic() + 10):
            with lock:
                starts.append(time.monotonic())
                live[0] += 1
                peak[0] = max(peak[0], live[0])
            time.sleep(hold)
            with lock:
                live[0] -= 1

    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_one_address_gets_limited_spaced_connections() -> None:
    p = Politeness(limit=2, delay_s=0.1)
    starts: list[float] = []
    peak = [0]
    _hammer(p, "203.0.113.5", 6, 0.05, starts, peak)
    starts.sort()
    assert peak[0] <= 2
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.09, gaps


def test_different_addresses_do_not_wait_for_each_other() -> None:
    p = Politeness(limit=1, delay_s=0.5)
    t0 = time.monotonic()
    threads = [threading.Thread(target=lambda a=a: p.slot(a, t0 + 5).__enter__()) for a in ("192.0.2.1", "192.0.2.2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - t0 < 0.3


def test_waiting_longer_than_the_deadline_fails() -> None:
    p = Politeness(limit=1, delay_s=0)
    held = p.slot("192.0.2.9", time.monotonic() + 5)
    held.__enter__()
    with pytest.raises(TimeoutError, match="polite slot"), p.slot("192.0.2.9", time.monotonic() + 0.1):
        pass
    held.__exit__(None, None, None)
