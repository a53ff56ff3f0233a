"""Shipped memory profiles seed predictions, including the word that a job holds no GPU memory at all."""

from __future__ import annotations

from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.search.policy.memory_model import Observation
from gpupair_search.search.policy.planner import fit_models, predict_pair
from gpupair_search.search.policy.profiles import load_profiles, profile_observations

PCB = JobConfig("Person_reID_baseline_pytorch", "pcb", {})
BUG_LOCALIZATION = JobConfig("bug-localization-by-dnn-and-rvsm", "default", {})


def test_a_pair_with_a_job_the_profile_found_on_the_cpu_is_predicted_as_the_other_job_alone():
    """g11 (pcb + bug-localization) had no prediction, so a packed study ran it packed first and then again alone
    on the card, time spent before any serial trial; the profile says bug-localization held 0 MiB."""
    profiles = load_profiles()
    assert any(BUG_LOCALIZATION.key in p.cpu_only for p in profiles)
    models = fit_models([], profile_observations(profiles))
    assert models[BUG_LOCALIZATION.key].predict(None) == 0.0
    pair = PairSpec(11, PCB, BUG_LOCALIZATION)
    assert predict_pair(pair, (32, None), models) == models[PCB.key].predict(32) > 0


def test_the_studys_own_measurement_of_a_cpu_only_job_outweighs_the_profile():
    observations = profile_observations(load_profiles())
    measured = [Observation(8, 900.0), Observation(16, 1300.0)]  # this user's version uses the GPU after all
    observations[BUG_LOCALIZATION.key] = observations[BUG_LOCALIZATION.key] + measured
    model = fit_models([], observations)[BUG_LOCALIZATION.key]
    assert model.predict(16) == 1300.0 and model.predict(8) == 900.0
