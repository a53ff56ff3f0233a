"""Shared helpers, and the split of the suite into two layers.

``unit``: tests that start no process (no CLI, no job, no server); they run in seconds and are what
``pytest -m unit`` runs while working. ``e2e``: everything else, real subprocesses on the CPU and simulated
devices, PostgreSQL and Slurm where CI starts them. A test is ``unit`` when its file is in :data:`UNIT_FILES`,
its name in :data:`UNIT_TESTS`, or it is marked ``@pytest.mark.unit``; all others are ``e2e``. The unit layer is checked, not trusted: a
unit test that starts a process fails with a message saying so (an audit hook on process creation).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gpupair_search.launcher.registry import Registry

#: Files whose every test starts no process (see the module docstring); the rest of the suite is e2e.
UNIT_FILES = frozenset(
    {
        "test_cli_entry_points.py",
        "test_extension_search.py",
        "test_imports.py",
        "test_interference.py",
        "test_interference_view.py",
        "test_log_reading.py",
        "test_memory_plateau.py",
        "test_memory_profiles.py",
        "test_seams.py",
        "test_settings_fuzz.py",
        "test_steady_window.py",
        "test_storage_concurrency.py",
        "test_workloads_common.py",
    }
)
#: Tests that start no process, in files that also hold e2e tests (by function name: a renamed test becomes
#: e2e, the safe direction; a test listed here that starts a process fails, the other one).
UNIT_TESTS = {
    "test_bad_inputs.py": {
        "test_a_bad_file_gives_a_short_error_naming_the_file_and_the_place",
        "test_a_byte_order_mark_is_not_a_mistake",
        "test_a_misspelled_experiments_key_is_one_message",
        "test_a_misspelled_top_level_key_is_an_error_naming_the_key_it_resembles",
        "test_a_solo_entry_has_no_background_to_accumulate",
        "test_a_string_no_argv_can_carry_is_an_error_not_a_crash_at_launch",
        "test_the_cli_prints_the_same_short_error_without_a_traceback",
        "test_every_bad_gradient_accumulation_step_is_reported_at_once",
        "test_gradient_accumulation_as_export_writes_it_is_valid",
        "test_gradient_accumulation_is_checked_with_its_path",
        "test_shell_metacharacters_in_a_numeric_hyperparameter_are_a_type_error",
        "test_the_base_files_are_valid",
        "test_the_corpus_is_complete",
        "test_the_seed_models_fixture_is_the_seed_file_unchanged",
    },
    "test_builtin_bounds.py": {
        "test_a_models_file_without_bounds_reads_as_before",
        "test_each_built_in_hyperparameter_accepts_exactly_what_its_script_accepts",
        "test_every_numeric_built_in_hyperparameter_declares_its_bounds",
    },
    "test_input_bounds.py": {
        "test_a_decimal_unit_is_refused_as_ambiguous_with_both_readings_given",
        "test_a_device_is_refused_and_a_huge_file_is_cut_at_the_cap",
        "test_a_loop_of_symbolic_links_says_so_not_to_check_permissions",
        "test_a_pair_directory_is_always_a_child_of_the_run_directory",
        "test_a_sanitised_name_is_one_harmless_path_component",
        "test_a_size_with_a_unit_parses",
        "test_a_size_without_a_unit_or_out_of_range_is_refused",
        "test_printable_escapes_controls_and_keeps_text",
    },
    "test_accumulation_plans.py": {
        "test_accumulation_of_a_reduced_recommendation_per_job_and_in_words",
        "test_an_unknown_grid_is_one_clear_error",
        "test_background_first_on_divisors_halves_the_background_then_the_foreground",
        "test_batch_grid_any_reproduces_the_unit_path",
        "test_divisor_accumulation_is_exact_and_any_accumulation_is_the_ceiling",
        "test_divisor_candidates_are_the_divisors_below_the_configured_batch_down_to_the_floor",
        "test_every_policy_on_divisors_walks_a_shrinking_chain_of_divisors",
        "test_no_trial_is_spent_on_a_candidate_that_cannot_change_the_recommendation",
        "test_the_baselines_walk_the_same_divisor_path",
        "test_the_g07_case_needs_one_trial_on_divisors_where_the_unit_search_needed_four",
    },
    "test_runner_shapes.py": {
        "test_a_mutation_job_is_checked_at_the_top_of_its_memory_ranges",
        "test_each_shape_loads_leniently_with_the_runners_meaning_and_one_warning_per_divergence",
        "test_repeats_are_one_pair_per_distinct_configuration_with_the_runners_counts",
        "test_strict_mode_keeps_unknown_repositories_and_differing_duplicates_as_errors",
        "test_a_number_of_the_wrong_json_type_is_what_the_runner_makes_of_it_with_lenient_and_an_error_without",
        "test_a_mutation_entry_runs_at_most_as_often_as_there_are_different_draws_and_strict_asks_for_a_list",
        "test_a_mode_of_null_or_a_number_is_the_runners_mutation_with_lenient_and_an_error_without",
        "test_with_lenient_an_experiment_the_runner_fails_on_is_skipped_with_the_reason_and_the_rest_runs",
        "test_values_reach_the_command_line_as_the_runner_writes_them",
        "test_where_the_runner_would_mutate_an_unmarked_job_lenient_mode_says_so",
    },
    "test_matrix_study.py": {
        "test_a_gpu_matrix_measures_memory_only_unless_the_flags_ask_for_baselines_and_a_window",
        "test_a_model_the_models_file_lacks_is_one_clear_error",
        "test_a_second_worker_takes_the_trial_the_first_would_take",
        "test_every_verdict_has_a_mark_in_the_text_matrix",
        "test_extension_trials_keep_their_queue_place_after_every_first_trial",
        "test_only_a_full_matrix_of_pairs_is_shown_as_one",
        "test_solos_run_first_then_pairs_by_the_peak_their_solo_measurements_predict",
        "test_the_matrix_holds_each_model_alone_then_every_ordered_pair_at_its_defaults",
        "test_the_matrix_study_is_registered_on_the_feasibility_card",
        "test_the_shipped_matrix_settings_are_what_the_generator_makes_of_the_models_file",
    },
    "test_cpu_share.py": {
        "test_a_malformed_cpu_list_is_a_user_error_naming_the_option",
        "test_cores_are_split_into_contiguous_slices_that_differ_by_at_most_one",
        "test_cpu_lists_read_and_write_the_kernel_notation",
        "test_two_workers_on_one_host_get_disjoint_shares_that_cover_every_core",
        "test_with_fewer_cores_than_workers_each_worker_still_gets_one",
    },
    "test_slurm_script.py": {
        "test_a_gpu_that_is_not_visible_is_refused_with_what_is",
        "test_a_uuid_or_a_unique_prefix_of_one_finds_its_nvml_index",
        "test_cuda_n_is_the_n_th_visible_gpu_by_index_or_uuid",
        "test_the_placement_names_the_slurm_node_job_task_and_gpu",
    },
    "test_reference_files.py": {
        "test_a_batchsize_for_pcb_is_an_error_not_silently_ignored",
        "test_lenient_loading_runs_all_twelve_pairs_and_records_the_dropped_hyperparameter",
        "test_strict_loading_names_the_unknown_hyperparameter_and_what_is_known",
        "test_the_argv_is_the_one_the_seed_runner_builds",
        "test_the_fixtures_are_the_seed_files_unchanged",
    },
    "test_never_started.py": {
        "test_a_crash_after_training_started_is_still_a_crash",
        "test_a_failed_workers_reason_is_its_last_error_line",
        "test_the_first_lines_of_a_job_that_never_ran_make_the_outcome",
    },
    "test_packing.py": {
        "test_a_serial_measurement_replaces_the_packed_one_of_its_configuration",
        "test_a_trial_whose_packed_result_could_not_stand_waits_for_the_card",
        "test_auto_packs_as_many_cards_as_fit_with_a_core_for_each_job",
        "test_near_limits_lets_a_clear_packed_fit_stand_and_still_confirms_one_near_the_limit",
        "test_only_packed_results_clearly_away_from_the_card_and_the_limit_are_trusted",
    },
}
#: Audit events of process creation: ``subprocess``, ``os.fork``/``exec``/``spawn``. (``multiprocessing``'s
#: spawn and forkserver start processes without one: a test that uses them is marked e2e by hand.)
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile"}
)
_NO_PROCESSES: list[str] = []  # the unit test running now, if any


def _refuse_processes(event: str, args: tuple) -> None:
    if _NO_PROCESSES and event in _PROCESS_EVENTS:
        raise RuntimeError(
            f"{_NO_PROCESSES[0]} is a unit test and started a process ({event}): make it a "
            "function call, or mark it e2e (tests/conftest.py says how)"
        )


sys.addaudithook(_refuse_processes)


#: Files whose tests must not run at the same time as each other under ``pytest -n``: they share one resource.
SERIAL_FILES = {
    "test_slurm_cluster.py": "slurm-cluster",  # one node of 3 CPUs: two 3-task arrays at once would queue
}


@pytest.hookimpl(tryfirst=True)  # before xdist's worker turns each item's group into its node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("unit") is None and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.unit if _is_unit(item) else pytest.mark.e2e)
        group = SERIAL_FILES.get(item.path.name) or _shared_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _shared_fixture_group(item: pytest.Item) -> str | None:
    """The tests that use one of our module- or session-scoped fixtures (a study run once, a server) go to one
    xdist worker together: split over workers, each worker would build the fixture again."""
    info = getattr(item, "_fixtureinfo", None)
    for name in sorted(info.name2fixturedefs if info else ()):
        for fixture in info.name2fixturedefs[name]:
            source = Path(inspect.getsourcefile(fixture.func) or "")
            if fixture.scope in ("module", "session") and source.parent == Path(__file__).parent:
                return f"{source.name}::{name}"
    return None


def _is_unit(item: pytest.Item) -> bool:
    name = getattr(item, "originalname", item.name)
    return item.path.name in UNIT_FILES or name in UNIT_TESTS.get(item.path.name, ())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """A unit test's setup, fixtures of any scope included, and its call start no process."""
    with _processes_refused(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _processes_refused(item):
        yield


@contextlib.contextmanager
def _processes_refused(item: pytest.Item):
    if item.get_closest_marker("unit") is None:
        yield
        return
    _NO_PROCESSES.append(item.nodeid)
    try:
        yield
    finally:
        _NO_PROCESSES.clear()


FIXTURES = Path(__file__).parent / "fixtures"
#: The user's project layout for the seed's models file: ``repos/<name>/`` of each repository (its paths must exist).
SEED_PROJECT = FIXTURES / "seed_project"
#: The fixture models file on the CPU device, as a 400 MiB card with a 250 MiB safe limit: the tests' small study.
CPU_CARD_ARGS = [
    "--models",
    str(FIXTURES / "models.json"),
    "--repos-root",
    str(FIXTURES),
    "--device",
    "cpu",
    "--gpu-memory",
    "400MiB",
    "--safe-limit",
    "250MiB",
]
#: The user's own reference files (their models file, settings file and runner), where a checkout has them: the
#: fixtures copied from them are checked against them.
REFERENCE_VAR = "GPUPAIR_REFERENCE_DIR"


@pytest.fixture
def fixture_registry() -> Registry:
    return Registry.load(FIXTURES / "models.json", base_dir=FIXTURES)


@pytest.fixture
def reference_dir() -> Path:
    folder = os.environ.get(REFERENCE_VAR)
    if not folder or not Path(folder).is_dir():
        pytest.skip(f"no folder of the seed's reference files: set {REFERENCE_VAR}")
    return Path(folder)


def queued_study(registry: Registry, pairs: list):
    """A study of ``pairs`` on an 8 GiB card with a 5,000 MiB safe limit, in memory, its first trials queued."""
    import optuna

    from gpupair_search.launcher.experiments import Experiment
    from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings

    fs = FeasibilityStudy.open(
        optuna.storages.InMemoryStorage(),
        StudySettings("t", 8192.0, 5000.0),
        Experiment(registry.file, "t", "", pairs),
        registry,
    )
    fs.enqueue_initial()
    return fs


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_until(predicate, timeout: float = 20.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_cli(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``gpupair-search ARGS`` as a real subprocess of this Python, output captured; ``env``: variables to add
    or replace in its environment; ``cwd``: where the user types it (relative paths resolve there)."""
    return subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.app", *args],
        env={**cli_env(), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def default_sigint() -> None:
    """``preexec_fn`` for a runner a test will Ctrl-C: the signal must reach it even when the tests run as a
    background job (``nohup ... &``), whose children start with SIGINT ignored, which Python then keeps
    ignoring (two local CI runs under nohup timed out on exactly this)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
