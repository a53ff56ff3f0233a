"""``--study matrix``: every ordered pair of the 11 built-in models and each model alone, at their defaults.

The shipped settings file is what the generator makes of the models file; the queue runs the solos first and
then the pairs largest predicted peak first, from what the solos measured; and on the simulated device the
whole matrix gets a verdict per pair, which status, the report and the export all show.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest

from gpupair_search.launcher.devices.simulated import SimulatedDevice
from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.search.engine.executors import DeviceExecutor
from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings
from gpupair_search.search.engine.work_order import likely_failures_first, predicted_peak_mib
from gpupair_search.search.policy.planner import ExtensionOptions, PairPlan, fit_models
from gpupair_search.search.policy.profiles import load_profiles, profile_observations
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.views.matrix_view import MARKS, matrix_text, pair_grid
from gpupair_search.settings import bundled
from gpupair_search.studies import get_study
from gpupair_search.studies.matrix import MATRIX_MODELS, bundled_registry, matrix_settings, render
from gpupair_search.studies.write_matrix import main as write_matrix
from tests.conftest import run_cli

CARD, LIMIT = 8192.0, 7500.0


# -- the settings file ------------------------------------------------------------------------------------
def test_the_shipped_matrix_settings_are_what_the_generator_makes_of_the_models_file():
    assert bundled("matrix.json").read_text(encoding="utf-8") == render(matrix_settings(bundled_registry()))
    assert write_matrix(["--check"]) == 0


def test_the_matrix_holds_each_model_alone_then_every_ordered_pair_at_its_defaults():
    registry = bundled_registry()
    pairs = load_experiment(bundled("matrix.json"), registry).pairs
    assert len(MATRIX_MODELS) == 11 and len(pairs) == 121
    solos, parallel = pairs[:11], pairs[11:]
    assert [p.foreground.key for p in solos] == list(MATRIX_MODELS) and all(p.background is None for p in solos)
    assert sorted((p.foreground.key, p.background.key) for p in parallel) == sorted(
        (fg, bg) for fg in MATRIX_MODELS for bg in MATRIX_MODELS if fg != bg
    )
    by_key = {p.foreground.key: p.foreground for p in solos}
    assert registry.batch_size(by_key["Person_reID_baseline_pytorch/pcb"]) == 32  # the model's own default
    assert registry.batch_size(by_key["VulBERTa/mlp"]) == 2
    assert by_key["pytorch_resnet_cifar10/resnet20"].hyperparameters["epochs"] == 200  # the models file's default
    assert all("max_steps" not in p.foreground.hyperparameters for p in solos)  # probe mode sets it
    for pair in parallel:  # both jobs of a pair exactly as they run alone
        assert pair.foreground == by_key[pair.foreground.key] and pair.background == by_key[pair.background.key]
        assert pair.note == f"Matrix: fg {pair.foreground.key} + bg {pair.background.key}"


def test_a_model_the_models_file_lacks_is_one_clear_error():
    with pytest.raises(UserError) as caught:
        matrix_settings(bundled_registry(), ("examples/mnist", "examples/nope"))
    message = str(caught.value)
    assert "models.json" in message and "'examples/nope'" in message and "MATRIX_MODELS" in message


def test_the_matrix_study_is_registered_on_the_feasibility_card():
    study = get_study("matrix")
    assert (study.settings, study.card_mib, study.safe_limit_mib) == (bundled("matrix.json"), CARD, LIMIT)
    assert study.defaults.likely_failures_first and not get_study("feasibility").defaults.likely_failures_first


def test_a_gpu_matrix_measures_memory_only_unless_the_flags_ask_for_baselines_and_a_window():
    from gpupair_search.search.engine.session import fixed_definition, resolve_inputs

    def definition(study: str, **flags):
        inputs = resolve_inputs(study, None, None, None, False, None, None)
        return fixed_definition(inputs, study, ExtensionOptions(), "gpu", True, **flags).for_new_study()

    matrix = definition("matrix")
    assert (matrix.baselines, matrix.min_window_s) == (False, 0.0)  # its solos are its solo runs
    asked = definition("matrix", baselines=True, min_window_s=3.0)
    assert (asked.baselines, asked.min_window_s) == (True, 3.0)


# -- the work order ---------------------------------------------------------------------------------------
SMALL = ("examples/mnist_ff", "Person_reID_baseline_pytorch/pcb", "VulBERTa/mlp")
INFLATED = "examples/mnist_ff"  # on the "card" below it needs 4000 MiB more than its profile says


class _Recording:
    """The real executor, noting the order in which the pairs ran."""

    def __init__(self, inner) -> None:
        self.inner, self.order = inner, []

    def run(self, pair, trial_number):
        self.order.append(pair.key)
        return self.inner.run(pair, trial_number)


def _small_matrix(tmp_path: Path, storage) -> tuple[FeasibilityStudy, SimulatedDevice]:
    registry = bundled_registry()
    settings = tmp_path / "small_matrix.json"
    settings.write_text(render(matrix_settings(registry, SMALL)))
    experiment = load_experiment(settings, registry)
    profile = profile_observations(load_profiles())
    models = fit_models([], profile)
    device = SimulatedDevice(
        lambda job, b: models[job.key].predict(b) + (4000.0 if job.key == INFLATED else 0.0), CARD, registry
    )
    fs = FeasibilityStudy.open(
        storage, StudySettings("small", CARD, LIMIT, ExtensionOptions()), experiment, registry, profile
    )
    fs.likely_failures_first = True
    return fs, device


def _jobs(key: str) -> set[str]:
    return set(key.split(":", 1)[1].split("+"))


def test_solos_run_first_then_pairs_by_the_peak_their_solo_measurements_predict(tmp_path):
    fs, device = _small_matrix(tmp_path, optuna.storages.InMemoryStorage())
    assert fs.enqueue_initial() == 9
    queued = [t.user_attrs["pair_key"] for t in fs.study.get_trials(states=(optuna.trial.TrialState.WAITING,))]
    assert all(k.endswith("+solo") for k in queued[:3])
    profile_models = fit_models([], fs.profile_obs)
    peaks = [predicted_peak_mib(fs.pairs[k], fs.original_config(fs.pairs[k]), profile_models) for k in queued[3:]]
    assert peaks == sorted(peaks, reverse=True)  # queued from the profiles: pcb and mlp first
    assert _jobs(queued[3]) == {"Person_reID_baseline_pytorch/pcb", "VulBERTa/mlp"}

    executor = _Recording(DeviceExecutor(fs.registry, device))
    fs.run(executor)
    initial = executor.order[:9]
    assert all(k.endswith("+solo") for k in initial[:3])
    # the solos measured mnist_ff 4000 MiB above its profile: its pairs with mlp are now the likely failures
    assert _jobs(initial[3]) == _jobs(initial[4]) == {INFLATED, "VulBERTa/mlp"}
    assert sorted(initial) == sorted(fs.pairs)  # ordering skips nothing: every pair measured once first
    assert all(plan.verdict is not Verdict.PENDING for plan in fs.plans())


def test_a_second_worker_takes_the_trial_the_first_would_take(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    first, device = _small_matrix(tmp_path, storage)
    first.enqueue_initial()
    executor = DeviceExecutor(first.registry, device)
    for _ in range(3):  # the solos
        first.run_trial(first.pop_trial(), executor)
    second, _ = _small_matrix(tmp_path, storage)  # nothing in memory but what the storage holds
    taken = [second.pop_trial(), first.pop_trial()]
    keys = [second.pair_for(t).key for t in taken]
    # the same order from the same storage: the tie of the two orders of one pair goes to the settings order
    assert keys == ["g05:examples/mnist_ff+VulBERTa/mlp", "g08:VulBERTa/mlp+examples/mnist_ff"]


def test_extension_trials_keep_their_queue_place_after_every_first_trial():
    registry = bundled_registry()
    pairs = {p.key: p for p in load_experiment(bundled("matrix.json"), registry).pairs}
    queue = [
        ("extension", "g12:examples/mnist+examples/mnist_rnn"),
        ("initial", "g13:examples/mnist+examples/mnist_ff"),
        ("extension", "g03:examples/mnist_ff+solo"),
        ("initial", "g01:examples/mnist+solo"),
        ("initial", "g79:Person_reID_baseline_pytorch/hrnet18+VulBERTa/mlp"),
    ]

    def located(item):
        phase, key = item
        return None if phase == "extension" else (pairs[key], registry.batch_sizes(pairs[key]))

    ordered = likely_failures_first(queue, located, fit_models([], profile_observations(load_profiles())))
    assert ordered == [queue[3], queue[4], queue[1], queue[0], queue[2]]  # solo, larger pair, smaller; then as queued


# -- the matrix view --------------------------------------------------------------------------------------
def _pending_plans(settings: Path, lenient: bool = False) -> list[PairPlan]:
    registry = bundled_registry()
    return [PairPlan(p, registry.batch_sizes(p)) for p in load_experiment(settings, registry, lenient).pairs]


def test_only_a_full_matrix_of_pairs_is_shown_as_one():
    plans = _pending_plans(bundled("matrix.json"))
    grid = pair_grid(plans)
    assert grid is not None and grid.jobs == MATRIX_MODELS
    assert grid.plan("VulBERTa/mlp", "VulBERTa/mlp").pair.background is None  # the diagonal: the job alone
    assert pair_grid(plans[:-1]) is None  # a cell missing
    assert pair_grid(plans + plans[-1:]) is None  # a cell twice
    assert pair_grid(_pending_plans(bundled("parallel_feasibility_test.json"), lenient=True)) is None


def test_every_verdict_has_a_mark_in_the_text_matrix():
    assert set(MARKS) == set(Verdict) and len({mark for mark, _ in MARKS.values()}) == len(Verdict)
    text = matrix_text(pair_grid(_pending_plans(bundled("matrix.json"))))
    rows = [line for line in text.splitlines() if re.match(r"\s*\d+ \S", line)]
    assert len(rows) == 11 and all(line.split()[2:] == ["."] * 11 for line in rows)
    assert "  . not measured yet: 121" in text.splitlines()
    assert max(len(line) for line in text.splitlines()) <= 80  # a terminal's width, for 121 pairs


# -- the whole matrix on the simulated device -----------------------------------------------------------
@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def matrix_run(tmp_path_factory) -> tuple[list[str], subprocess.CompletedProcess, Path]:
    root = tmp_path_factory.mktemp("matrix")
    common = ["--study", "matrix", "--storage", f"sqlite:///{root}/x.db", "--results", str(root / "r")]
    done = run_cli("run", *common, "--device", "sim", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return common, done, root


@pytest.mark.slow
def test_the_simulated_matrix_runs_solos_first_then_largest_predicted_first(matrix_run):
    _, done, _ = matrix_run
    assert "121 pairs" in done.stderr and "121 trial(s) queued" in done.stderr
    assert "pair matrix: foreground (rows) × background (columns" in done.stdout  # run ends with it, as status
    ran = re.findall(r"^\[trial \d+ g(\d+) ", done.stderr, re.M)
    pairs = load_experiment(bundled("matrix.json"), bundled_registry()).pairs
    first = [pairs[int(group) - 1] for group in ran[:121]]  # each pair once, before any extension trial
    assert sorted(p.group for p in first) == list(range(1, 122))
    assert all(p.background is None for p in first[:11])
    models = fit_models([], profile_observations(load_profiles()))  # what the simulated solos measure, too
    peaks = [predicted_peak_mib(p, bundled_registry().batch_sizes(p), models) for p in first[11:]]
    assert all(a >= b - 0.01 for a, b in zip(peaks, peaks[1:])), peaks


@pytest.mark.slow
def test_status_gives_a_verdict_for_every_pair_and_the_matrix(matrix_run):
    common, _, _ = matrix_run
    status = run_cli("status", *common)
    assert status.returncode == 0, status.stderr
    rows = [line for line in status.stdout.splitlines() if re.match(r"\d+\s{2,}\S+/", line)]
    assert len(rows) == 121
    assert not [r for r in rows if re.search(r"\b(pending|searching)\b", r)]
    text = status.stdout.split("pair matrix:", 1)[1]
    marks = [line.split()[2:] for line in text.splitlines() if re.match(r"\s*\d+ \S", line)]
    assert len(marks) == 11 and all(len(row) == 11 and set(row) <= {"F", "R", "X", "N", "I", "!"} for row in marks)
    counts = [int(n) for n in re.findall(r"^  \S .+: (\d+)$", text, re.M)]
    assert sum(counts) == 121


@pytest.mark.slow
def test_the_report_draws_the_matrix_with_safe_batch_sizes(matrix_run):
    common, _, root = matrix_run
    out = root / "report.html"
    made = run_cli("report", *common, "-o", str(out))
    assert made.returncode == 0, made.stderr
    page = out.read_text(encoding="utf-8")
    title = "SIMULATED \u2014 Every pair: verdict and safe batch sizes"  # plotly's JSON writer may escape the dash
    assert 'id="every-pair"' in page and any(f'"{t}"' in page for t in (title, title.replace("\u2014", "\\u2014")))
    assert '"type":"heatmap"' in page
    from gpupair_search.search.engine.stored_study import open_results
    from gpupair_search.search.views import plots

    fs = open_results("matrix", None, common[3], root / "r", None, None, None, False)
    with sqlite3.connect(root / "x.db") as db:  # run stored it for optuna-dashboard, too
        keys = [k for (k,) in db.execute("SELECT key FROM study_system_attributes")]
    assert any(key.startswith("dashboard:plot_data:gpupair-verdict-matrix") for key in keys), keys
    [figure] = plots.verdict_matrix_figures(fs.plans(), LIMIT, CARD, simulated=True)
    assert "predicted to stay under the safe limit" in figure.layout.title.subtitle.text  # simulated: not "verified"
    cells = figure.data[0]
    assert len(cells.z) == 11 and all(len(row) == 11 for row in cells.z)
    grid = pair_grid(fs.plans())
    for i, fg in enumerate(grid.jobs):
        for j, bg in enumerate(grid.jobs):
            plan = grid.plan(fg, bg)
            if plan.recommended is None:
                assert cells.text[i][j] == MARKS[plan.verdict][1]
            else:  # the safe batch sizes: fg/bg for a pair, one size for a job alone
                assert cells.text[i][j] == (
                    "/".join(map(str, plan.recommended)) if i != j else str(plan.recommended[0])
                )


@pytest.mark.slow
def test_export_writes_the_safe_pairs_of_the_matrix_in_seed_format(matrix_run, tmp_path):
    common, _, _ = matrix_run
    out = tmp_path / "safe.json"
    done = run_cli("export", *common, "-o", str(out))
    assert done.returncode == 0, done.stderr
    exported = json.loads(out.read_text())
    entries = exported["experiments"]
    assert len(entries) + len(exported["_unsafe_pairs"]) == 121
    assert sum(e["mode"] == "default" for e in entries) == 11  # the solos, as solo entries
    assert all("Matrix: " in e["note"] for e in entries)
    again = load_experiment(out, bundled_registry())  # seed format, by our strict loader
    assert len(again.pairs) == len(entries)
