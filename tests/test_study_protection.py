"""A finished study can't be falsified or lost by an ordinary slip: a changed definition stops the run before it
writes anything, read-only commands write nothing, and outputs never overwrite what the command reads. Each
check compares checksums of the study's database and result files before and after (real CLI subprocesses,
the simulated device: the numbers don't matter here, the files do). Names that try to climb out of
``--results`` run on the CPU device, with the fixture's fake training job."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from gpupair_search.launcher.jsonfile import json_path
from gpupair_search.settings import bundled
from tests.conftest import FIXTURES, run_cli


def snapshot(results: Path) -> dict[str, str]:
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished simulated study of a copy of the bundled 12-group settings file."""
    work = tmp_path_factory.mktemp("finished")
    settings = work / "settings.json"
    shutil.copy(bundled("parallel_feasibility_test.json"), settings)
    done = run_cli(
        "run", "--settings", str(settings), "--device", "sim", "--lenient", "--results", str(work / "results")
    )
    assert done.returncode == 0, done.stderr
    return work, settings


def copy_of(finished, tmp_path) -> tuple[Path, Path]:
    work, settings = finished
    shutil.copytree(work / "results", tmp_path / "results")
    shutil.copy(settings, tmp_path / "settings.json")
    return tmp_path / "results", tmp_path / "settings.json"


@pytest.mark.parametrize(
    "change, stored_vs_now",
    [
        (["--gpu-memory", "6GiB"], "card_mib: stored 8,192, now 6,144"),
        (["--safe-limit", "7000MiB"], "safe_limit_mib: stored 7,500, now 7,000"),
        (["--policy", "proportional"], "policy: stored 'background-first', now 'proportional'"),
        (["--floor", "2"], "floor: stored 1, now 2"),
        (["--full-epoch"], "probe: stored True, now False"),
        (["--no-extend"], "extend: stored True, now False"),
        (["--batch-grid", "any"], "batch_grid: stored 'divisors', now 'any'"),
        (["--probe-steps", "7"], "probe_steps: stored 30, now 7"),
        (["--confirm", "near-limits"], "confirm: stored 'recommended', now 'near-limits'"),
        (["--baselines"], "baselines: stored False, now True"),
        (["--min-window-s", "1"], "min_window_s: stored 0, now 1"),
    ],
)
def test_rerunning_a_finished_study_with_another_definition_stops_and_changes_nothing(
    finished, tmp_path, change, stored_vs_now
):
    results, settings = copy_of(finished, tmp_path)
    before = snapshot(results)
    done = run_cli(
        "run", "--settings", str(settings), "--device", "sim", "--lenient", "--results", str(results), *change
    )
    assert done.returncode != 0
    assert stored_vs_now in done.stderr and "--name" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(results) == before


def test_a_study_from_before_probe_steps_were_kept_goes_on_with_the_30_it_ran(finished, tmp_path):
    """The default went from 30 probe steps to 5: a study stored without the field ran 30, and a run that does not
    ask for a number resumes it as it is; asking for another is a changed definition."""
    import optuna

    results, settings = copy_of(finished, tmp_path)
    url = f"sqlite:///{results / 'gpupair.db'}"
    [name] = optuna.get_all_study_names(url)
    study = optuna.load_study(study_name=name, storage=url)
    old = {k: v for k, v in study.user_attrs["definition"].items() if k != "probe_steps"}
    study.set_user_attr("definition", old)
    before = snapshot(results)
    again = run_cli("run", "--settings", str(settings), "--device", "sim", "--lenient", "--results", str(results))
    assert again.returncode == 0, again.stderr
    assert "probe_steps" not in optuna.load_study(study_name=name, storage=url).user_attrs["definition"]
    other = run_cli(
        "run",
        "--settings",
        str(settings),
        "--device",
        "sim",
        "--lenient",
        "--results",
        str(results),
        "--probe-steps",
        "5",
    )
    assert other.returncode != 0 and "probe_steps: stored 30, now 5" in other.stderr
    assert {k: v for k, v in snapshot(results).items() if "gpupair.db" not in k} == {
        k: v for k, v in before.items() if "gpupair.db" not in k
    }


def test_an_edited_settings_file_stops_the_run_with_each_changed_pair_named(finished, tmp_path):
    results, settings = copy_of(finished, tmp_path)
    body = json.loads(settings.read_text())
    body["experiments"][0]["foreground"]["hyperparameters"]["batch_size"] = 7
    settings.write_text(json.dumps(body))
    before = snapshot(results)
    done = run_cli("run", "--settings", str(settings), "--device", "sim", "--lenient", "--results", str(results))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "settings_sha256: stored" in done.stderr and "pair g01:" in done.stderr
    assert snapshot(results) == before
    renamed = run_cli(
        "run",
        "--settings",
        str(settings),
        "--device",
        "sim",
        "--lenient",
        "--results",
        str(results),
        "--name",
        "edited",
    )
    assert renamed.returncode == 0, renamed.stderr  # the way on: a study of its own


def test_read_only_commands_leave_a_finished_study_byte_identical(finished, tmp_path):
    results, settings = copy_of(finished, tmp_path)
    before = snapshot(results)
    common = ["--settings", str(settings), "--lenient", "--results", str(results)]
    status = run_cli("status", *common)
    assert status.returncode == 0 and "SIMULATED" in status.stdout, status.stderr  # found without --simulated
    assert run_cli("report", *common, "-o", str(tmp_path / "report.html")).returncode == 0
    assert run_cli("export", *common, "-o", str(tmp_path / "safe.json")).returncode == 0
    assert run_cli("plan", "--gpu-memory", "6GiB", "--settings", str(settings), "--lenient").returncode == 0
    assert snapshot(results) == before


def test_asking_for_a_kind_of_study_that_is_not_there_names_the_kind_that_is(finished, tmp_path):
    results, settings = copy_of(finished, tmp_path)
    done = run_cli(
        "status", "--settings", str(settings), "--results", str(results), "--kind", "gpu"
    )  # no --lenient: reading needs none
    assert done.returncode != 0 and "no gpu study of these settings" in done.stderr
    assert "choose it with --kind simulated" in done.stderr and "Traceback" not in done.stderr


def test_an_edit_to_comments_and_the_description_alone_resumes_the_study(finished, tmp_path):
    """The file's digest changed, its pairs did not: no measurement depends on a comment."""
    results, settings = copy_of(finished, tmp_path)
    body = json.loads(settings.read_text())
    body["description"] = "the same 12 groups, described again"
    body["_comment"] = "checked on 2026-12-07"
    settings.write_text(json.dumps(body, indent=4))
    done = run_cli("run", "--settings", str(settings), "--device", "sim", "--lenient", "--results", str(results))
    assert done.returncode == 0 and "another definition" not in done.stderr, done.stderr
    assert "0 trial(s) queued" in done.stdout + done.stderr


def test_status_reads_the_stored_pairs_not_an_edited_settings_file(finished, tmp_path):
    results, settings = copy_of(finished, tmp_path)
    body = json.loads(settings.read_text())
    body["experiments"] = body["experiments"][:3]
    settings.write_text(json.dumps(body))
    status = run_cli("status", "--settings", str(settings), "--lenient", "--results", str(results))
    assert status.returncode == 0, status.stderr
    assert sum(1 for line in status.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()) == 12


@pytest.mark.parametrize("target", ["database", "settings", "a hard link to the database"])
def test_an_output_pointed_at_an_input_is_refused_and_the_input_kept(finished, tmp_path, target):
    results, settings = copy_of(finished, tmp_path)
    paths = {"database": results / "gpupair.db", "settings": settings}
    if target.startswith("a hard link"):
        (tmp_path / "link.db").hardlink_to(results / "gpupair.db")
        paths[target] = tmp_path / "link.db"
    before, settings_before = snapshot(results), settings.read_bytes()
    for command in ("report", "export"):
        done = run_cli(
            command, "--settings", str(settings), "--lenient", "--results", str(results), "-o", str(paths[target])
        )
        assert done.returncode != 0 and "which this command reads" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(results) == before and settings.read_bytes() == settings_before


def _measured_files(results: Path) -> list[Path]:
    """One of each kind of file a simulated study records: its summary, a trial's record, a stored artifact."""
    run_dir = next(results.glob("run_*"))
    return [
        run_dir / "summary.csv",
        next(run_dir.rglob("experiment.json")),
        next(p for p in (results / "artifacts").rglob("*") if p.is_file()),
    ]


def test_an_output_pointed_at_a_measured_file_is_refused_and_the_results_kept(finished, tmp_path):
    results, settings = copy_of(finished, tmp_path)
    before = snapshot(results)
    for target in _measured_files(results):
        for command in ("report", "export"):
            done = run_cli(
                command, "--settings", str(settings), "--lenient", "--results", str(results), "-o", str(target)
            )
            assert done.returncode != 0 and "holds what a study recorded" in done.stderr, (target, done.stderr)
            assert "Traceback" not in done.stderr
    assert snapshot(results) == before
    new_file = results / "report.html"  # a new file beside the results replaces nothing: allowed
    assert (
        run_cli(
            "report", "--settings", str(settings), "--lenient", "--results", str(results), "-o", str(new_file)
        ).returncode
        == 0
        and new_file.is_file()
    )


@pytest.mark.parametrize("output_of", [lambda models: models, lambda models: models.with_name("safe.json")])
def test_export_never_writes_over_the_models_file_it_is_for(finished, tmp_path, output_of):
    """Neither the exported settings file nor its ``.models_additions.json`` companion may be ``--models``."""
    results, settings = copy_of(finished, tmp_path)
    models = tmp_path / "safe.models_additions.json"  # the name the companion of -o safe.json would take
    shutil.copy(FIXTURES / "seed_models_config.json", models)
    models_before = models.read_bytes()
    done = run_cli(
        "export",
        "--settings",
        str(settings),
        "--lenient",
        "--results",
        str(results),
        "--models",
        str(models),
        "-o",
        str(output_of(models)),
    )
    assert done.returncode != 0 and "--models" in done.stderr and "Traceback" not in done.stderr
    assert models.read_bytes() == models_before


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--monitor-hz", "0"], "--monitor-hz"),
        (["--monitor-hz", "-5"], "--monitor-hz"),
        (["--monitor-hz", "nan"], "--monitor-hz"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "inf"], "--timeout"),
        (["--cpu-memory", "lots"], "--cpu-memory"),
        (["--results", ""], "--results"),
        (["--floor", "0"], "--floor"),
        (["--gpu-memory", "eight"], "--gpu-memory"),
        (["--batch-grid", "powers"], "--batch-grid"),
        (["--name", ""], "--name"),
        (["--name", "  "], "--name"),
    ],
)
def test_every_flag_is_checked_before_anything_starts(tmp_path, args, flag):
    done = run_cli("run", "--device", "sim", "--results", str(tmp_path / "results"), *args)
    assert done.returncode == 2 and flag in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--device", "sim", "--gpus", "0,1"], "--gpus with --device sim"),
        (["--device", "sim", "--cpu-memory", "2GiB"], "it is the budget of --device cpu"),
        (["--device", "cpu", "--gpu-memory", "2GiB", "--cpu-memory", "3GiB"], "both name the host-memory budget"),
        (
            ["--device", "sim", "--study", "matrix", "--settings", str(bundled("parallel_feasibility_test.json"))],
            "name two different studies",
        ),
        (["--device", "sim", "--gpu-memory", "8GB"], "'8GB' is ambiguous"),
    ],
)
def test_flags_that_would_be_ignored_or_contradict_each_other_are_refused_before_anything_is_written(
    tmp_path, args, words
):
    done = run_cli("run", "--results", str(tmp_path / "results"), *args)
    assert done.returncode != 0 and words in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "storage, words",
    [
        ("sqlite:///", "names no file"),
        ("results.db", "not a storage URL"),
        ("", "--storage"),
        ("sqlite:////nonexistent_dir_for_gpupair/x.db", "does not exist"),
    ],
)
def test_a_storage_that_would_write_nowhere_or_elsewhere_is_refused(tmp_path, storage, words):
    done = run_cli("run", "--device", "sim", "--results", str(tmp_path / "results"), "--storage", storage)
    assert done.returncode != 0 and words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, said",
    [
        (["--fg", "examples/mnsit"], "command line: --fg (model): unknown model 'mnsit'"),
        (
            ["--fg", "examples/mnist", "--bg", "exampls/mnist"],
            "command line: --bg (repo): unknown repository 'exampls'",
        ),
        (
            ["--fg", "examples/mnist", "--fg-param", "batch_size=abc"],
            "command line: --fg-param batch_size: string 'abc'",
        ),
    ],
)
def test_a_job_given_on_the_command_line_is_faulted_by_the_flag_that_gave_it(tmp_path, args, said):
    done = run_cli("pair", *args, "--device", "cpu", "--results", str(tmp_path / "results"))
    assert done.returncode != 0 and said in done.stderr and "settings file" not in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()


def test_port_out_of_range_and_repeated_or_orphaned_job_parameters_are_refused(tmp_path):
    assert run_cli("dashboard", "--port", "99999").returncode == 2
    repeated = run_cli(
        "pair",
        "--fg",
        "examples/mnist",
        "--fg-param",
        "batch_size=8",
        "--fg-param",
        "batch_size=9",
        "--device",
        "cpu",
        "--results",
        str(tmp_path),
    )
    assert repeated.returncode != 0 and "given twice" in repeated.stderr
    orphan = run_cli(
        "pair", "--fg", "examples/mnist", "--bg-param", "batch_size=8", "--device", "cpu", "--results", str(tmp_path)
    )
    assert orphan.returncode != 0 and "--bg-param needs --bg" in orphan.stderr


# -- every path the tool writes is inside --results (class 3) -----------------------------------------------
ESCAPING_REPO, ESCAPING_MODEL = "../../../../escaped_repo", "../../../../../escaped_model"


def _escaping_project(root: Path, train_script: str = "fake_train.py") -> tuple[Path, Path]:
    """The test models file with a repository and a model whose names climb out of any directory, and a
    settings file with one pair of them; ``outside/evil.py`` leaves a mark if it is ever run."""
    (root / "repos" / "fixture").mkdir(parents=True)
    shutil.copy(FIXTURES / "fake_train.py", root / "repos" / "fixture" / "fake_train.py")
    (root / "repos" / "outside").mkdir()
    (root / "repos" / "outside" / "evil.py").write_text(f"open({str(root / 'EVIL_RAN')!r}, 'w').close()\n")
    body = json.loads((FIXTURES / "models.json").read_text(encoding="utf-8"))
    repository = body["models"].pop("fixture")
    repository.update(path="repos/fixture", train_script=train_script, models=[ESCAPING_MODEL])
    body["models"][ESCAPING_REPO] = repository
    (root / "models.json").write_text(json.dumps(body), encoding="utf-8")
    job = {"repo": ESCAPING_REPO, "model": ESCAPING_MODEL, "hyperparameters": {"seconds": 0.3, "batch_size": 4}}
    (root / "settings.json").write_text(
        json.dumps(
            {
                "experiment_name": "escape",
                "experiments": [
                    {
                        "mode": "parallel",
                        "foreground": {"mode": "default", **job},
                        "background": {**job, "hyperparameters": {"seconds": 30}},
                    }
                ],
            }
        )
    )
    return root / "settings.json", root / "models.json"


def _outside(root: Path, results: Path) -> dict[str, str]:
    """Checksums of every file under ``root`` but inside ``results``."""
    return {
        path: digest
        for path, digest in snapshot(root).items()
        if not (root / path).resolve().is_relative_to(results.resolve())
    }


def _run_cpu(settings: Path, models: Path, root: Path, results: Path):
    return run_cli(
        "run",
        "--settings",
        str(settings),
        "--models",
        str(models),
        "--repos-root",
        str(root),
        "--device",
        "cpu",
        "--gpu-memory",
        "400MiB",
        "--safe-limit",
        "250MiB",
        "--results",
        str(results),
    )


def test_names_that_climb_out_write_nothing_outside_results(tmp_path):
    root = tmp_path / "a" / "b" / "c" / "project"
    settings, models = _escaping_project(root)
    results = root / "results"
    before, around = _outside(tmp_path, results), sorted(p.name for p in tmp_path.parent.iterdir())
    done = _run_cpu(settings, models, root, results)
    assert done.returncode == 0, done.stderr
    assert _outside(tmp_path, results) == before  # nothing outside --results written or changed
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == around
    written = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.name == "experiment.json" for p in written) and (results / "gpupair.db").is_file()
    assert all(p.resolve().is_relative_to(results.resolve()) for p in written)
    outside = [p for p in tmp_path.rglob("*escaped*") if not p.resolve().is_relative_to(results.resolve())]
    assert outside == [] and not (root / "EVIL_RAN").exists()


def test_a_train_script_outside_its_repository_is_refused_at_load_and_nothing_is_written(tmp_path):
    root = tmp_path / "project"
    settings, models = _escaping_project(root, train_script="../outside/evil.py")
    results = root / "results"
    before = snapshot(tmp_path)
    done = _run_cpu(settings, models, root, results)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    where = json_path(json_path("models", ESCAPING_REPO), "train_script")  # models["../../../../escaped_repo"]...
    assert first.startswith(f"error: {models}: {where}: "), done.stderr
    assert str(root / "repos" / "outside" / "evil.py") in first and "outside the repository" in first
    assert snapshot(tmp_path) == before and not results.exists() and not (root / "EVIL_RAN").exists()
