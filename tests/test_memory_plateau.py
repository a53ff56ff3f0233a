"""The plateau rule for a foreground the probe cannot bound: memory flat for a window, after as long before."""

from __future__ import annotations

from gpupair_search.launcher.pair_runner import memory_plateaued


def trace(mib_at, seconds: float = 40.0, hz: float = 20.0) -> list[tuple[float, float]]:
    return [(i / hz, mib_at(i / hz)) for i in range(int(seconds * hz) + 1)]


def test_memory_that_stopped_growing_is_a_plateau():
    assert memory_plateaued(trace(lambda t: min(t, 10.0) * 100), window_s=15.0)


def test_host_rss_that_jitters_by_a_few_mib_is_still_a_plateau():
    jitter = [0.0, 3.0, -2.0, 5.0, 1.0]
    assert memory_plateaued(trace(lambda t: 2400.0 + jitter[int(t * 20) % 5] + (t > 30) * 4.0), window_s=15.0)


def test_memory_that_keeps_growing_is_not_a_plateau():
    assert not memory_plateaued(trace(lambda t: 1000.0 + 5.0 * t), window_s=15.0)  # 75 MiB a window: 5%
    assert not memory_plateaued(trace(lambda t: 1000.0 + (t > 35) * 256.0), window_s=15.0)  # a late step up


def test_too_short_or_empty_a_trace_is_no_plateau():
    assert not memory_plateaued(trace(lambda t: 500.0, seconds=29.0), window_s=15.0)
    assert not memory_plateaued([], window_s=15.0)
    assert not memory_plateaued(trace(lambda t: 0.0), window_s=15.0)  # no memory seen yet
