"""The steady-state window: progress read as it is written, warm-up and evaluation left out, the background's
training share, and energy only over a window long enough for the counter."""

from __future__ import annotations

import pytest

from gpupair_search.launcher.devices.base import DeviceReading
from gpupair_search.launcher.measurement import counter_energy
from gpupair_search.launcher.monitor import Sample
from gpupair_search.launcher.steady_window import (
    ProgressPoint,
    ProgressTail,
    overlap_share,
    samples_within,
    steady_window,
    training_intervals,
)
from gpupair_search.launcher.window_stats import background_warning, window_stats


def points(*pairs: tuple[float, int], batch: int = 4) -> list[ProgressPoint]:
    return [ProgressPoint(t, steps, steps * batch) for t, steps in pairs]


def test_a_tail_reads_only_complete_lines_and_stamps_them_when_read(tmp_path):
    log = tmp_path / "job.log"
    tail = ProgressTail(log, batch_size=8)
    tail.poll(0.0)  # not written yet: nothing, no error
    log.write_text("importing\n[gpupair] progress steps=1 samples=8\n[gpupair] progress st")
    tail.poll(1.0)
    with log.open("a") as fh:
        fh.write("eps=2 samples=16\nEpoch 1 step 2/10 loss 0.1\n")
    tail.poll(2.5)
    assert tail.points == [ProgressPoint(1.0, 1, 8), ProgressPoint(2.5, 2, 16)]  # the Epoch line duplicates


def test_epoch_lines_count_steps_across_epochs_and_samples_from_the_batch_size(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("Epoch 1 step 10/10 loss 1\nEpoch 2 step 5/10 loss 1\n")
    tail = ProgressTail(log, batch_size=32)
    tail.poll(3.0)
    assert [(p.steps, p.samples) for p in tail.points] == [(10, 320), (15, 480)]


def test_an_external_script_reports_progress_through_its_progress_steps_pattern(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("iteration 7 done\nloss 3\n")
    tail = ProgressTail(log, batch_size=2, steps_pattern=r"^iteration (\d+) done")
    tail.poll(1.0)
    assert tail.points == [ProgressPoint(1.0, 7, 14)]


def test_a_tail_learns_the_device_a_built_in_names_in_its_config_line(tmp_path):
    log = tmp_path / "job.log"
    tail = ProgressTail(log)
    log.write_text("loading data\n")
    tail.poll(0.5)
    assert tail.declared_device is None  # not said yet: nothing assumed
    with log.open("a") as fh:
        fh.write("[gpupair] config workload=bug-localization-by-dnn-and-rvsm model=default device=cpu kfold=10\n")
    tail.poll(1.0)
    assert tail.declared_device == "cpu" and tail.points == []


def test_the_window_starts_after_warm_up_and_ends_at_the_last_training_step():
    window = steady_window(points((1.0, 1), (1.5, 2), (2.0, 3), (3.0, 5), (4.0, 7)), warmup_steps=3)
    assert (window.start_t, window.end_t, window.steps, window.samples) == (2.0, 4.0, 4, 16)
    assert window.samples_per_second == pytest.approx(8.0)
    assert steady_window(points((1.0, 1), (2.0, 2)), warmup_steps=3) is None
    assert steady_window([], warmup_steps=0) is None


def test_a_window_can_be_capped_at_a_number_of_steps():
    window = steady_window(points((0.0, 3), (1.0, 5), (2.0, 7), (3.0, 9)), warmup_steps=3, max_steps=4)
    assert (window.end_t, window.steps) == (2.0, 4)


def test_the_background_training_share_leaves_out_its_start_up():
    runs = [points((2.0, 1), (2.5, 3)), points((5.0, 1), (5.5, 3)), points((8.0, 1), (8.5, 3))]
    assert training_intervals(runs) == [(2.0, 2.5), (5.0, 5.5), (8.0, 8.5)]
    assert overlap_share(training_intervals(runs), 0.0, 10.0) == pytest.approx(0.15)
    assert overlap_share([(0.0, 20.0)], 5.0, 10.0) == 1.0


def test_samples_within_a_window_spread_each_interval_evenly():
    run = points((0.0, 0), (2.0, 10))  # 40 samples over 2 s
    assert samples_within([run], 1.0, 1.5) == pytest.approx(10.0)
    assert samples_within([[ProgressPoint(0.0, 0, None), ProgressPoint(1.0, 5, None)]], 0, 1) is None


def sample(t: float, energy_mj: float | None, fg_cpu: float = 90.0) -> Sample:
    return Sample(t, {}, DeviceReading(power_w=100.0, energy_mj=energy_mj), {"foreground": fg_cpu}, {}, 50.0)


def test_window_energy_is_a_number_only_over_one_second_of_counter():
    fg = points((0.0, 3), (2.0, 13))
    long = [sample(t / 10, 10_000.0 * t) for t in range(0, 21)]  # 100 J/s (100,000 mJ/s) over 2 s
    stats = window_stats(fg, [], long, solo=True)
    assert stats.energy_reliable and stats.gpu_energy_j == pytest.approx(200.0)
    assert stats.gpu_energy_per_foreground_sample_j == pytest.approx(200.0 / 40)
    assert stats.foreground_cpu_pct == 90.0 and stats.host_cpu_pct == 50.0
    short = window_stats(points((0.0, 3), (0.8, 13)), [], long, solo=True)
    assert not short.energy_reliable and short.gpu_energy_j is None
    assert short.energy_note.startswith("unreliable: 0.80 s of energy counter")
    no_counter = window_stats(fg, [], [sample(t / 10, None) for t in range(21)], solo=True)
    assert no_counter.gpu_energy_j is None and no_counter.energy_note.startswith("unavailable")


def test_no_progress_means_no_window_and_says_why():
    stats = window_stats([], [], [], solo=True)
    assert not stats.reliable and "progress_steps" in stats.note


def test_the_window_stays_within_one_epoch_so_no_evaluation_pass_is_inside():
    def at(t, steps, epoch):
        return ProgressPoint(t, steps, 4 * steps, epoch)

    run = [at(0.0, 1, 1), at(1.0, 5, 1), at(3.0, 15, 1), at(9.0, 16, 2), at(10.0, 20, 2)]  # 6 s of evaluation
    window = steady_window(run, warmup_steps=3)
    assert (window.start_t, window.end_t, window.steps) == (1.0, 3.0, 10)
    assert training_intervals([run]) == [(0.0, 3.0), (9.0, 10.0)]
    assert samples_within([run], 0.0, 10.0) == pytest.approx(4 * (15 - 1) + 4 * (20 - 16))


def test_machine_lines_carry_their_epoch(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("[gpupair] progress steps=7 samples=28 epoch=2\n")
    tail = ProgressTail(log)
    tail.poll(1.0)
    assert tail.points == [ProgressPoint(1.0, 7, 28, 2)]


def test_a_stamped_line_is_placed_when_the_job_printed_it_not_when_it_was_read(tmp_path):
    log = tmp_path / "job.log"
    origin = 1000.0  # the monotonic time that is 0 on the monitor's clock
    log.write_text(
        "[gpupair] progress steps=3 samples=12 epoch=1 t=1001.2000\n"
        "[gpupair] progress steps=4 samples=16 epoch=1 t=1001.2400\n"
    )
    tail = ProgressTail(log, clock_origin=origin)
    tail.poll(1.25)  # both lines read at one tick: only the stamps tell them apart
    assert [p.t for p in tail.points] == pytest.approx([1.2, 1.24])


def test_a_stamp_from_another_clock_falls_back_to_the_read_time_and_time_never_goes_back(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(
        "[gpupair] progress steps=1 samples=4 t=5.0000\n"  # far before the origin: not our clock
        "[gpupair] progress steps=2 samples=8 t=99999.0\n"  # after the moment it was read
        "[gpupair] progress steps=3 samples=12 t=1001.0\n"
    )  # ours, but before the accepted read time
    tail = ProgressTail(log, clock_origin=1000.0)
    tail.poll(2.0)
    assert [p.t for p in tail.points] == [2.0, 2.0, 2.0]


def test_without_a_clock_origin_stamps_are_ignored(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("[gpupair] progress steps=7 samples=28 epoch=2 t=1.5\n")
    tail = ProgressTail(log)
    tail.poll(3.0)
    assert tail.points == [ProgressPoint(3.0, 7, 28, 2)]


def test_window_energy_interpolates_the_counter_between_reads_a_few_times_a_second():
    # The counter is read every 0.25 s (None on the samples between), 100 J/s; the window's edges fall between reads.
    samples = [sample(t / 20, 5_000.0 * t if t % 5 == 0 else None) for t in range(0, 61)]
    energy, covered = counter_energy(samples, 0.33, 2.41)
    assert energy == pytest.approx(100.0 * 2.08) and covered == pytest.approx(2.08)
    stats = window_stats(points((0.33, 3), (2.41, 13)), [], samples, solo=True)
    assert stats.energy_reliable and stats.gpu_energy_j == pytest.approx(208.0)


def test_a_window_past_the_last_counter_read_gets_the_covered_seconds_at_their_mean_power():
    samples = [sample(t / 4, 25_000.0 * t) for t in range(0, 9)]  # reads up to 2.0 s, 100 J/s
    energy, covered = counter_energy(samples, 0.5, 2.2)
    assert covered == pytest.approx(1.5) and energy == pytest.approx(150.0)
    stats = window_stats(points((0.5, 3), (2.2, 13)), [], samples, solo=True)
    assert stats.gpu_energy_j == pytest.approx(170.0) and stats.energy_counter_s == pytest.approx(1.5)
    assert counter_energy(samples[:1], 0.0, 1.0) == (None, 0.0)


def test_a_window_cpu_share_comes_from_the_counter_not_from_shares_that_lag_a_walk():
    # A job starts at 0.05 s and then uses its whole core; the tree is walked at 0.05 s and every 0.5 s after.
    # Each sample's cpu_pct is the share over the walk interval before it (2% until the walk at 0.55 s).
    walks = {0.05: 0.0, 0.55: 0.5, 1.05: 1.0, 1.55: 1.5}
    samples = []
    for tick in range(1, 33):
        t = tick / 20
        last_walk = max(w for w in walks if w <= t + 1e-9)
        at_walk = abs(t - last_walk) < 1e-9
        samples.append(
            Sample(
                t,
                {},
                DeviceReading(),
                {"foreground": 2.0 if last_walk < 0.55 else 100.0},
                {},
                None,
                {"foreground": walks[last_walk]} if at_walk else {},
                None,
            )
        )
    stats = window_stats(points((0.1, 3), (1.1, 60)), [], samples, solo=True)
    assert stats.foreground_cpu_pct == pytest.approx(100.0)
    lagging = [s.cpu_pct["foreground"] for s in samples if 0.1 <= s.t <= 1.1]
    assert sum(lagging) / len(lagging) < 60.0  # what the window read before


def test_a_background_that_reports_no_progress_has_no_training_share_and_no_start_up_warning():
    fg = points((0.0, 3), (4.0, 23))
    unseen = window_stats(fg, [[], []], [], solo=False)  # two runs, no progress pattern to read them by
    assert unseen.background_training_share is None and background_warning(unseen, 2) is None
    late = window_stats(fg, [points((3.5, 1), (4.0, 3))], [], solo=False)  # it trained for the window's last 0.5 s
    assert late.background_training_share is not None and late.background_training_share < 0.5
    assert "this is no co-location" in background_warning(late, 1)


def test_a_missing_window_says_whether_progress_was_seen_at_all():
    none = window_stats([], [], [], solo=True)
    assert not none.reliable and "'progress_steps' log pattern" in none.note
    few = window_stats(points((0.0, 1), (0.5, 2)), [], [], solo=True)
    assert not few.reliable and "reported 2 progress point(s), too few" in few.note and "progress_steps" not in few.note
