"""Where change happens (docs/architecture.md, "Where a change goes"): a new device kind, search policy, outcome
class, trial record field or view is one module's change. These tests add one of each the way a contributor
would, and check that every caller picks it up."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from dataclasses import dataclass

import optuna
import pytest

from gpupair_search.launcher.devices import Device, DeviceRequest, factory, open_device
from gpupair_search.launcher.devices.simulated import SimulatedDevice
from gpupair_search.launcher.experiments import Experiment
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import PairResult
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.search.cli import options as cli_options
from gpupair_search.search.engine.executors import DeviceExecutor
from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings
from gpupair_search.search.policy import extension
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.record import trial_record
from gpupair_search.search.record.trial_record import TrialRecord, record_result, view
from tests.conftest import queued_study
from tests.test_record_keys import offending_lines


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
    fs = FeasibilityStudy.open(
        optuna.storages.InMemoryStorage(),
        StudySettings("t", 8192.0, 5000.0, ExtensionOptions(policy="halve")),
        Experiment(fixture_registry.file, "t", "", [pair]),
        fixture_registry,
    )
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


def _simulated_study(registry) -> FeasibilityStudy:
    """Two pairs on a simulated 8 GiB card: one fits, one is extended to smaller batches."""
    pairs = [
        PairSpec(1, JobConfig("fixture", "ok", {"batch_size": 4}), JobConfig("fixture", "ok", {"batch_size": 8})),
        PairSpec(2, JobConfig("fixture", "ok", {"batch_size": 4}), JobConfig("fixture", "crash", {"batch_size": 64})),
    ]
    fs = queued_study(registry, pairs)
    fs.run(DeviceExecutor(registry, SimulatedDevice(lambda job, b: 100.0 * (b or 0), 8192.0, registry)))
    return fs


def test_a_new_trial_field_is_one_line_in_the_record_and_reaches_the_views(fixture_registry, monkeypatch):
    """A field the launcher measures (here ``probe_kind``) is a field of PairResult where it is measured, and one
    line in the trial record: the runner stores it, every view reads it typed, and a trial stored before it
    existed reads its default. No writer, reader or migration is edited."""

    @dataclass(frozen=True)
    class MeasuredWithProbeKind(trial_record.Measured):
        probe_kind: str | None = None  # the one line added to search/record/trial_record.py

    @dataclass
    class ResultWithProbeKind(PairResult):
        probe_kind: str | None = None  # launcher/pair_runner.py, where it is measured

    monkeypatch.setattr(trial_record, "Measured", MeasuredWithProbeKind)
    pair = PairSpec(1, JobConfig("fixture", "ok", {"batch_size": 4}), JobConfig("fixture", "ok", {"batch_size": 8}))
    plain = SimulatedDevice(lambda job, b: 100.0 * (b or 0), 8192.0, fixture_registry).simulate(pair)
    result = ResultWithProbeKind(
        **{f.name: getattr(plain, f.name) for f in dataclasses.fields(PairResult)}, probe_kind="steps"
    )
    study = optuna.create_study()
    trial = study.ask()
    state, value = record_result(trial, result, safe_limit_mib=5000.0)
    study.tell(trial, value, state=state)

    [stored] = study.trials
    assert view(stored).record.measured.probe_kind == "steps"
    assert TrialRecord.from_attrs(view(stored).record.to_attrs()) == view(stored).record  # the round trip
    before = {k: v for k, v in stored.user_attrs.items() if k != "probe_kind"}
    assert TrialRecord.from_attrs(before).measured.probe_kind is None


#: A view a contributor adds: a function of TrialViews, reading the typed record only.
NEW_VIEW = textwrap.dedent('''
    def foreground_peaks(views):
        """Each measured trial's foreground peak (MiB), by trial number."""
        return {v.number: v.record.measured.memory.foreground_peak_mib for v in views
                if v.measured and v.record.measured.memory is not None}
    ''')


def test_a_new_view_reads_the_typed_record_and_passes_the_key_guard(fixture_registry, tmp_path):
    """A new view is one module under search/: it reads TrialViews (FeasibilityStudy.views()), and the guard of
    tests/test_record_keys.py finds no attribute read by string key in it."""
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "foreground_peaks.py").write_text(NEW_VIEW, encoding="utf-8")
    assert offending_lines(tmp_path) == []
    namespace: dict = {}
    exec(compile(NEW_VIEW, "foreground_peaks.py", "exec"), namespace)  # noqa: S102 - the module's text, as written

    fs = _simulated_study(fixture_registry)
    peaks = namespace["foreground_peaks"](fs.views())
    assert set(peaks) == {v.number for v in fs.views() if v.measured} and len(peaks) >= 3  # two pairs, extended
    assert all(peak == 100.0 * v.fg_batch for v in fs.views() if v.number in peaks for peak in [peaks[v.number]])


def test_a_new_run_option_is_defined_once_and_reaches_the_command_and_its_workers(monkeypatch):
    """A run option is one flag in search/cli/options.py, with its default, and one RunRequest field made from it
    (run_study._flag): ``run`` and ``worker`` take it, its default is the flag's, and ``run --gpus`` hands it to
    its workers. (Where the study stores it, fixed_definition.py; where it is used, that module.)"""
    import typer
    from typer.testing import CliRunner

    from gpupair_search.search.cli import app as cli
    from gpupair_search.search.cli import run_study

    warmup = typer.Option(3, "--warmup-steps", help="Steps before the window opens.")  # the flag, defined once
    request_type = dataclasses.make_dataclass(
        "WithWarmup", [("warmup_steps", int, run_study._flag(warmup))], bases=(run_study.RunRequest,), frozen=True
    )  # its one field
    monkeypatch.setattr(cli, "RunRequest", request_type)
    app, seen = typer.Typer(), []

    @app.command()
    @cli.with_run_request()
    def run(request) -> None:
        seen.append(request)

    assert CliRunner().invoke(app, ["--warmup-steps", "7"]).exit_code == 0
    assert CliRunner().invoke(app, []).exit_code == 0
    assert [r.warmup_steps for r in seen] == [7, 3]
    argv = seen[0].worker_options("cuda:1")
    assert argv[argv.index("--warmup-steps") + 1] == "7"
