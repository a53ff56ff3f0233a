"""The trial record reads what earlier versions stored, through migrate() alone, and refuses what it cannot judge."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.search.record.trial_record import SERIAL, TrialRecord

#: a pair trial as an early version stored it: no ``measurement`` (packing did not exist), memory without the
#: sampler's rate and gaps, and a memory field that no longer exists
EARLY = {
    "pair_key": "g01:r/fg+r/bg",
    "group": 1,
    "phase": "initial",
    "note": "",
    "outcome": "oom_background",
    "peak_mib": 9100.5,
    "memory": {
        "foreground_peak_mib": 3000.0,
        "background_peak_mib": 6000.0,
        "concurrent_peak_mib": 8800.0,
        "sum_of_peaks_mib": 9000.0,
        "device_peak_used_mib": 8900.0,
        "background_tried_to_allocate_mib": 100.5,
        "retired_field_mib": 1.0,
    },
    "foreground": {"repo": "r", "model": "fg", "hyperparameters": {"batch_size": 8}},
    "background": {"repo": "r", "model": "bg", "hyperparameters": {"batch_size": 4}},
}


def test_a_trial_stored_before_packing_and_the_sampler_figures_reads_as_measured_alone():
    record = TrialRecord.from_attrs(EARLY)
    assert record.mode(TrialState.COMPLETE) == SERIAL
    measured = record.measured
    assert measured.outcome is Outcome.OOM_BACKGROUND and measured.peak_mib == 9100.5
    assert measured.memory.background_tried_to_allocate_mib == 100.5 and measured.memory.max_gap_ms == 0.0
    assert measured.background.key == "r/bg" and measured.window is None
    assert TrialRecord.from_attrs(record.to_attrs()) == record


def test_a_trial_whose_runner_died_before_recording_is_not_measured():
    queued_only = TrialRecord.from_attrs(
        {"pair_key": "g01", "phase": "extension", "extends": "g01", "extension_step": 2}
    )
    assert queued_only.measured is None and not queued_only.is_measured(TrialState.FAIL)
    assert queued_only.queued.extension_step == 2
    no_reason = TrialRecord.from_attrs({**EARLY, "outcome": "crash_foreground"})
    assert not no_reason.is_measured(TrialState.FAIL)  # fail_reason is written last
    assert TrialRecord.from_attrs({**EARLY, "outcome": "crash_foreground", "fail_reason": "x"}).is_measured(
        TrialState.FAIL
    )


def test_an_outcome_this_version_does_not_know_is_refused_with_what_to_do():
    with pytest.raises(UserError, match="'melted'.*read the study with the version that measured it"):
        TrialRecord.from_attrs({**EARLY, "outcome": "melted"})


def test_how_a_trial_was_probed_and_its_time_outside_the_jobs_read_typed_and_are_absent_from_earlier_trials():
    probe = {
        "foreground": {"rule": "plateau", "evaluation": "not reached"},
        "background": {"rule": "bounded steps", "evaluation": "reached"},
    }
    now = TrialRecord.from_attrs(
        {**EARLY, "probe": probe, "jobs_s": 9.5, "outside_jobs_s": 0.75, "background_ready_by": "a training step"}
    ).measured
    assert now.probe == probe and now.outside_jobs_s == 0.75 and now.jobs_s == 9.5
    assert now.background_ready_by == "a training step"
    assert now.probe_label == "probe: plateau (background: probe: bounded steps), evaluation not reached"
    assert TrialRecord.from_attrs(now.to_attrs()).measured == now
    early = TrialRecord.from_attrs(EARLY).measured
    assert early.probe == {} and early.probe_label == "" and early.outside_jobs_s is None
