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


def test_a_background_whose_memory_moves_with_each_step_is_settled_once_it_stops_rising(monkeypatch):
    """The background's readiness: host memory that swings between 757 and 826 MiB with each step never stays
    within 1% for 2 s, but it stopped rising: its peak is known."""
    from gpupair_search.launcher import pair_runner

    now = [0.0]
    monkeypatch.setattr(pair_runner.time, "monotonic", lambda: now[0])
    swinging, flat, rising = (pair_runner._Plateau(2.0) for _ in range(3))
    settled = {"swinging": None, "flat": None, "rising": None}
    for tick in range(100):  # 10 s at 10 Hz
        now[0] = tick / 10
        values = {"swinging": 757.0 if tick % 3 else 826.0, "flat": 500.0, "rising": 500.0 + 10.0 * tick}
        for name, plateau in (("swinging", swinging), ("flat", flat), ("rising", rising)):
            if plateau.settled(values[name]) and settled[name] is None:
                settled[name] = now[0]
    assert settled["flat"] == 2.0 and settled["swinging"] == 2.0
    assert settled["rising"] is None  # 2% a tick: still growing
