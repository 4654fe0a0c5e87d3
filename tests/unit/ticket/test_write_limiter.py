"""Our write limiter: never more than N writes in any window, and it says how long to wait."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ticket.limiter import WriteLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_defaults_allow_80_a_minute_then_ask_to_wait() -> None:
    c = Clock()
    lim = WriteLimiter([(80, 60), (500, 3600)], clock=c)
    assert all(lim.try_acquire() == 0 for _ in range(80))
    wait = lim.try_acquire()
    assert 59.9 < wait <= 60
    c.t += wait
    assert lim.try_acquire() == 0


def test_the_hourly_window_caps_a_long_burst_at_500() -> None:
    c = Clock()
    lim = WriteLimiter([(80, 60), (500, 3600)], clock=c)
    done = 0
    while c.t < 1000 + 3600 - 1:
        w = lim.try_acquire()
        if w == 0:
            done += 1
        else:
            c.t += w
    assert done == 500


def test_retry_after_blocks_every_write_until_it_passes() -> None:
    c = Clock()
    lim = WriteLimiter([(80, 60)], clock=c)
    lim.block_for(42)
    assert lim.try_acquire() == 42
    assert lim.wait_time() == 42
    c.t += 42
    assert lim.try_acquire() == 0


def test_available_reports_what_is_left_per_window() -> None:
    lim = WriteLimiter([(80, 60), (500, 3600)], clock=Clock())
    for _ in range(5):
        lim.try_acquire()
    assert lim.available() == {"60s": 75, "3600s": 495}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=400))
def test_no_window_ever_holds_more_than_its_limit(gaps: list[float]) -> None:
    c = Clock()
    windows = [(7, 10.0), (20, 60.0)]
    lim = WriteLimiter(windows, clock=c)
    taken: list[float] = []
    for g in gaps:
        c.t += g
        if lim.try_acquire() == 0:
            taken.append(c.t)
    for limit, secs in windows:
        for i, t in enumerate(taken):
            assert sum(1 for u in taken[i:] if u < t + secs) <= limit
