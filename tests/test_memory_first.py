"""The main command answers the seed design's question, which pairs fit in memory, first: the named studies and a
settings file measure memory verdicts only by default, ``feasibility-cost`` measures slowdown and energy on the same
pairs, the flags opt in on any study, and a study stored under the old GPU default goes on with its own figures."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from gpupair_search.search.engine.fixed_definition import DEFINITION_KEY, DefinitionChanged, FixedDefinition
from gpupair_search.search.engine.session import fixed_definition, open_study, resolve_inputs
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.settings import bundled
from gpupair_search.studies import get_study


def new_study_definition(study: str | None, settings: Path | None = None, **flags) -> FixedDefinition:
    """What a new GPU study would store for ``run --study STUDY`` (or ``--settings``) with ``flags``."""
    inputs = resolve_inputs(study, settings, None, None, False, None, None)
    return fixed_definition(inputs, inputs.name, ExtensionOptions(), "gpu", True, **flags).for_new_study()


@pytest.mark.parametrize(
    "study, settings", [("feasibility", None), ("matrix", None), (None, bundled("parallel_feasibility_test.json"))]
)
def test_a_gpu_study_measures_memory_only_by_default(study, settings):
    definition = new_study_definition(study, settings)
    assert (definition.baselines, definition.min_window_s) == (False, 0.0)


def test_feasibility_cost_is_the_feasibility_pairs_with_baselines_and_a_window():
    memory, cost = get_study("feasibility"), get_study("feasibility-cost")
    assert (cost.settings, cost.card_mib, cost.safe_limit_mib, cost.defaults.probe_steps) == (
        memory.settings,
        memory.card_mib,
        memory.safe_limit_mib,
        memory.defaults.probe_steps,
    )
    measured = new_study_definition("feasibility-cost")
    assert (measured.baselines, measured.min_window_s) == (True, 2.0)
    assert measured.pairs == new_study_definition("feasibility").pairs and measured.name == "feasibility-cost"


def test_the_flags_opt_in_or_out_on_any_study():
    asked = new_study_definition("feasibility", baselines=True, min_window_s=2.0)
    assert (asked.baselines, asked.min_window_s) == (True, 2.0)
    declined = new_study_definition("feasibility-cost", baselines=False, min_window_s=0.0)
    assert (declined.baselines, declined.min_window_s) == (False, 0.0)


def _open(tmp_path: Path, **flags):
    inputs = resolve_inputs("feasibility", None, None, None, False, None, None)
    return open_study(inputs, f"sqlite:///{tmp_path / 'study.db'}", tmp_path, ExtensionOptions(), "gpu", **flags)


def _stored(tmp_path: Path) -> dict:
    return optuna.load_study(study_name="feasibility", storage=f"sqlite:///{tmp_path / 'study.db'}").user_attrs


def test_a_study_stored_with_baselines_under_the_old_gpu_default_goes_on_with_them(tmp_path):
    """``run --study feasibility`` used to store baselines and a 2 s window on a GPU. Run again as typed, the study
    goes on as it was made (a changed default must not stop it); a flag that asks otherwise is a changed definition,
    refused before anything is written."""
    made = _open(tmp_path, baselines=True, min_window_s=2.0)
    assert made.wants_baselines and made.definition.min_window_s == 2.0
    before = _stored(tmp_path)
    again = _open(tmp_path)
    assert again.wants_baselines and again.definition.min_window_s == 2.0
    for flags, said in (
        ({"baselines": False}, "baselines: stored True, now False"),
        ({"min_window_s": 0.0}, "min_window_s: stored 2, now 0"),
    ):
        with pytest.raises(DefinitionChanged) as refused:
            _open(tmp_path, **flags)
        assert said in str(refused.value) and "--name" in str(refused.value)
    assert _stored(tmp_path) == before


def test_a_new_study_run_as_typed_stores_memory_only(tmp_path):
    fs = _open(tmp_path)
    assert not fs.wants_baselines and fs.definition.min_window_s == 0.0
    stored = _stored(tmp_path)[DEFINITION_KEY]
    assert (stored["baselines"], stored["min_window_s"]) == (False, 0.0)


@pytest.mark.parametrize(
    "kind, resumed_with", [("gpu", (True, 2.0)), ("cpu", (False, 0.0)), ("simulated", (False, 0.0))]
)
def test_a_study_stored_before_baselines_were_kept_resumes_with_the_default_of_its_time(kind, resumed_with):
    stored = new_study_definition("feasibility").to_json()
    stored["device_kind"] = kind
    del stored["baselines"], stored["min_window_s"]
    definition = FixedDefinition.from_json(stored)
    assert (definition.baselines, definition.min_window_s) == resumed_with
