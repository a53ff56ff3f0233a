"""Where change happens: a new device kind, search policy or outcome class is one module's change. These
tests add one of each the way a contributor would, and check that every caller picks it up."""
from __future__ import annotations

import re

import optuna
import pytest

from gpupair_search.launcher.devices import Device, DeviceRequest, factory, open_device
from gpupair_search.launcher.devices.simulated import SimulatedDevice
from gpupair_search.launcher.experiments import Experiment
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.search import cli_options, extension
from gpupair_search.search.executors import DeviceExecutor
from gpupair_search.search.planner import ExtensionOptions
from gpupair_search.search.study import FeasibilityStudy, StudySettings
from gpupair_search.search.verdict import Verdict


class _ToyDevice(Device):
    """A device kind nobody ships: it only has to name its choice and open itself."""

    kind = "toy"
    choice = r"toy:(\w+)"
    choice_help = "a toy device for this test"
    study_kind = "cpu"

    def __init__(self, label: str) -> None:
        self.name = f"toy {label}"

    @classmethod
    def open(cls, match: re.Match[str], request: DeviceRequest) -> _ToyDevice:
        return cls(match.group(1))

    def job_env(self) -> dict[str, str]:
        return {}

    def memory_by_pid(self, pids: set[int]) -> dict[int, float]:
        return {}


def test_a_new_device_class_is_found_by_the_factory_and_listed_in_the_choices():
    factory.device_classes.cache_clear()
    try:
        assert open_device("toy:one").name == "toy one"
        assert factory.study_kind("toy:x") == "cpu"
        assert "a toy device for this test" in factory.describe_choices()
    finally:
        factory.device_classes.cache_clear()


def test_every_shipped_device_kind_is_in_the_cli_help():
    for kind in ("cpu", "cuda:N", "sim"):
        assert f"{kind}:" in cli_options.DEVICE.help


def test_a_new_search_policy_is_used_by_the_planner_when_named(fixture_registry, monkeypatch):
    class HalveEachTime:
        name = "halve"

        def path(self, original, floor):
            fg, bg = original
            out = []
            while bg > floor:
                bg = max(floor, bg // 2)
                out.append((fg, bg))
            return out

        def budget(self, path_length):
            return path_length

        def next_position(self, path_length, results, predicted_first_feasible, distrust):
            return None if any(results.values()) or len(results) >= path_length else len(results) + 1

        def answer(self, path_length, results):
            return min((p for p, ok in results.items() if ok), default=None)

    monkeypatch.setitem(extension.POLICIES, "halve", HalveEachTime())
    pair = PairSpec(1, JobConfig("fixture", "ok", {"batch_size": 4}), JobConfig("fixture", "crash", {"batch_size": 64}))
    device = SimulatedDevice(lambda job, b: 100.0 * (b or 0), 8192.0, fixture_registry)
    fs = FeasibilityStudy.open(optuna.storages.InMemoryStorage(),
                               StudySettings("t", 8192.0, 5000.0, ExtensionOptions(policy="halve")),
                               Experiment(fixture_registry.file, "t", "", [pair]), fixture_registry)
    fs.enqueue_initial()
    fs.run(DeviceExecutor(fixture_registry, device))
    [plan] = fs.plans()
    assert plan.path == [(4, 32), (4, 16), (4, 8), (4, 4), (4, 2), (4, 1)]
    assert plan.verdict is Verdict.FITS_REDUCED and plan.recommended == (4, 32)


def test_outcomes_carry_their_meaning_so_callers_need_no_list_of_names():
    for outcome in Outcome:
        assert outcome.is_memory_verdict == (outcome is Outcome.OK or outcome.is_oom)
        assert outcome.oom_role in (None, "foreground", "background")
    assert Outcome.OOM_BACKGROUND.oom_role == "background" and not Outcome.OOM_BACKGROUND.peak_is_exact


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_has_a_label_and_a_colour(verdict):
    assert verdict.label and re.fullmatch(r"#[0-9a-f]{6}", verdict.colour)
