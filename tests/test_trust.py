"""Mistakes of every class the project knows get one clear message, and a refused command leaves everything as it was.

The corpus of commands is ``tests/bad_inputs/commands/*.json``, one mistake each::

    {"class": 4, "mistake": "what the user did", "setup": [["foreign_sqlite", "other.db"]],
     "argv": ["run", "--device", "sim", "--storage", "sqlite:///{tmp}/other.db"], "exit": 1,
     "says": ["not a study's (notes)"], "needs": "no NVIDIA GPU"}

Each runs through the real CLI in a folder of its own (``{tmp}``, also its working directory), after ``setup``.
Whatever the class: no traceback, every ``says`` in the output, no password (``{secret}``) and no raw control
character in the output or in any file, and, where the command is refused, every file of the folder byte for
byte as before. The classes are those of the issue "Trust, second round": 1 input dropped without a word,
2 values no job can start with, 3 secrets, 4 storage that is not ours, 5 output paths and the tool's own limits,
6 messages that point to the right fix, 7 the README's own path, 8 the dashboard's best trial (its corpus:
``tests/bad_inputs/best_trial/*.json``, trial sets checked through optuna-dashboard's own API).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.conftest import FIXTURES, cli_env

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "bad_inputs"
COMMANDS = sorted((CORPUS / "commands").glob("*.json"))
BEST_TRIALS = sorted((CORPUS / "best_trial").glob("*.json"))
SECRET = "Sup3rSecret-pw"
CLASSES = range(1, 9)
RAW_CONTROL = ("\x1b", "\u202e", "\u2066")


def _has_nvidia_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:  # noqa: BLE001 - no library, no driver or no card: no GPU here
        return False


def _fill(value, tmp: Path):
    """The corpus's placeholders: ``{tmp}``, ``{corpus}``, ``{fixtures}``, ``{seed_models}``, ``{seed_project}``,
    ``{secret}``."""
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    if not isinstance(value, str):
        return value
    return (
        value.replace("{tmp}", str(tmp))
        .replace("{corpus}", str(CORPUS))
        .replace("{fixtures}", str(FIXTURES))
        .replace("{seed_models}", str(FIXTURES / "seed_models_config.json"))
        .replace("{seed_project}", str(FIXTURES / "seed_project"))
        .replace("{secret}", SECRET)
    )


def _foreign_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO notes (body) VALUES ('a note of another program')")
    db.commit()
    db.close()


def _set_path(data, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    data[last] = value


def _value(spec):
    return spec["repeat"] * spec["times"] if isinstance(spec, dict) and "repeat" in spec else spec


@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def simulated_results(tmp_path_factory) -> Path:
    """A simulated feasibility study's results folder (copied into each case that needs a study)."""
    results = tmp_path_factory.mktemp("study") / "results"
    done = _cli(["run", "--device", "sim", "--results", str(results)], results.parent)
    assert done.returncode == 0, done.stderr
    return results


def _setup(steps: list, tmp: Path, study: Path) -> None:
    for step in steps:
        kind, *args = _fill(step, tmp)
        if kind == "study":
            shutil.copytree(study, tmp / "results")
        elif kind == "text":
            (tmp / args[0]).write_text(args[1], encoding="utf-8")
        elif kind == "foreign_sqlite":
            _foreign_sqlite(tmp / args[0])
        elif kind == "utf16le":
            (tmp / args[0]).write_bytes(Path(args[1]).read_text(encoding="utf-8").encode("utf-16-le"))
        elif kind == "settings_with":
            data = json.loads((CORPUS / "valid_settings.json").read_text(encoding="utf-8"))
            _set_path(data, args[1], _value(args[2]))
            (tmp / args[0]).write_text(json.dumps(data), encoding="utf-8")
        elif kind == "fixture_settings_with":
            data = {
                "experiment_name": "limits",
                "experiments": [
                    {"mode": "default", "repo": "fixture", "model": "ok", "hyperparameters": {args[1]: _value(args[2])}}
                ],
            }
            (tmp / args[0]).write_text(json.dumps(data), encoding="utf-8")
        else:
            raise AssertionError(f"unknown setup step {kind!r}")


def _cli(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.app", *argv],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Every file below ``root`` (and every folder, as "dir") with its SHA-256: what "as it was" means."""
    digest = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        digest[name] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def files_holding(root: Path, text: str) -> list[str]:
    """Files below ``root`` whose bytes hold ``text``."""
    needle = text.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _case(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- the corpus itself ---------------------------------------------------------------------------------------------


def test_every_class_has_at_least_five_cases_of_its_own():
    counts = {c: 0 for c in CLASSES}
    for path in COMMANDS + BEST_TRIALS:
        counts[_case(path)["class"]] += 1
    assert all(n >= 5 for n in counts.values()), counts


def test_every_command_case_says_what_the_mistake_is():
    for path in COMMANDS:
        case = _case(path)
        assert set(case) <= {"class", "mistake", "setup", "argv", "exit", "says", "needs"}, path
        assert case["mistake"] and case["says"] and case["argv"], path


# -- every command case through the real CLI ---------------------------------------------------------------------


@pytest.mark.parametrize("path", COMMANDS, ids=[p.stem for p in COMMANDS])
def test_a_mistake_gets_a_clear_message_and_changes_nothing(path, tmp_path, simulated_results):
    case = _case(path)
    if case.get("needs") == "no NVIDIA GPU" and _has_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU: the mistake is running without one")
    work = tmp_path / "work"
    work.mkdir()
    _setup(case["setup"], work, simulated_results)
    before = tree_digest(work)

    done = _cli(_fill(case["argv"], work), work)
    output = done.stdout + done.stderr

    assert done.returncode == case["exit"], output
    assert "Traceback" not in output, output
    for words in _fill(case["says"], work):
        assert words in output, f"expected {words!r} in:\n{output}"
    assert SECRET not in output and not files_holding(work, SECRET)
    assert not any(c in output for c in RAW_CONTROL), ascii(output)
    if case["exit"] != 0:
        lines = done.stderr.strip().splitlines()
        assert any(line.lower().startswith("error") for line in lines), done.stderr
        assert len(lines) <= 12, done.stderr
        assert tree_digest(work) == before, "a refused command changed the files it was given"


# -- secrets: after a run, slurm --dry-run, an error and the dashboard -------------------------------------------


SECRET_URLS = [
    f"postgresql://user:{SECRET}@127.0.0.1:1/db",
    f"postgresql://user@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://user@127.0.0.1:1/db?sslmode=disable&pass%77ord={SECRET}",
    f"postgresql://user@127.0.0.1:1/db?password={SECRET.replace('-', '%2D')}",
    f"host=127.0.0.1 port=1 user=user password={SECRET} dbname=db",
    f"host=127.0.0.1 password = '{SECRET} x' dbname=db",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_the_masking_function_hides_every_password_form(url):
    from gpupair_search.launcher.masking import has_secret, mask_secrets

    assert has_secret(url)
    masked = mask_secrets(f"cannot open storage {url}: refused")
    assert SECRET not in masked and SECRET.replace("-", "%2D") not in masked and "***" in masked
    assert masked.startswith("cannot open storage ") and masked.endswith("refused")


@pytest.mark.parametrize("url", SECRET_URLS[:3] + SECRET_URLS[4:5])
def test_an_error_and_slurm_never_show_a_password(url, tmp_path):
    for argv in (["status", "--storage", url], ["slurm", "--dry-run", "--device", "cpu", "--storage", url]):
        done = _cli(argv, tmp_path)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert SECRET not in done.stdout + done.stderr, done.stderr
    assert not files_holding(tmp_path, SECRET)


def test_a_run_its_files_its_job_script_and_its_dashboard_never_show_the_password(tmp_path):
    """A SQLite URL carries ``?password=`` too (SQLite ignores it): the same masking applies to every output."""
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from gpupair_search.search.views.dashboard import dashboard_app

    results = tmp_path / "results"
    url = f"sqlite:///{tmp_path / 'study.db'}?password={SECRET}"
    done = _cli(["run", "--device", "sim", "--no-extend", "--storage", url, "--results", str(results)], tmp_path)
    assert done.returncode == 0, done.stderr
    status = _cli(["status", "--storage", url, "--results", str(results)], tmp_path)
    report = _cli(["report", "--storage", url, "--results", str(results), "-o", str(tmp_path / "r.html")], tmp_path)
    export = _cli(["export", "--storage", url, "--results", str(results), "-o", str(tmp_path / "e.json")], tmp_path)
    for step in (status, report, export):
        assert step.returncode == 0 and SECRET not in step.stdout + step.stderr, step.stderr
    env_file = tmp_path / "storage.env"
    env_file.write_text(f"GPUPAIR_STORAGE=postgresql://user:{SECRET}@db.example:5432/db\nPGPASSWORD={SECRET}\n")
    env_file.chmod(0o600)
    script = _cli(["slurm", "--dry-run", "--device", "cpu", "--storage-env", str(env_file)], tmp_path)
    assert script.returncode == 0 and "#SBATCH" in script.stdout, script.stderr
    assert SECRET not in script.stdout + script.stderr
    env_file.unlink()  # the one file that holds the password on purpose
    assert not files_holding(tmp_path, SECRET)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = make_server("127.0.0.1", 0, dashboard_app(url, results), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        bodies = [urllib.request.urlopen(base + path, timeout=30).read() for path in ("/api/meta", "/api/studies")]
        studies = json.loads(bodies[1])["study_summaries"]
        bodies += [urllib.request.urlopen(f"{base}/api/studies/{s['study_id']}", timeout=30).read() for s in studies]
    finally:
        server.shutdown()
        server.server_close()
    assert studies and not any(SECRET.encode() in body for body in bodies)


def test_the_dashboard_command_prints_the_storage_masked(tmp_path):
    from gpupair_search.launcher.masking import MaskingStream

    stream = io.StringIO()
    masked = MaskingStream(stream)
    print(
        f"optuna-dashboard on http://127.0.0.1:8080/dashboard (storage postgresql://u@h/db?password={SECRET})",
        file=masked,
        flush=True,
    )
    print("a live line\r", end="", file=masked)
    masked.flush()
    assert SECRET not in stream.getvalue() and "password=***" in stream.getvalue()
    assert stream.getvalue().endswith("a live line\r")


def test_run_gpus_keeps_the_password_off_the_workers_command_line():
    from gpupair_search.search.cli.run_study import RunRequest

    argv = RunRequest().worker_argv("cuda:0", f"postgresql://u:{SECRET}@h/db")
    assert SECRET not in " ".join(argv) and "--storage" not in argv
    plain = RunRequest().worker_argv("cuda:0", "postgresql://u@h/db")
    assert plain[plain.index("--storage") + 1] == "postgresql://u@h/db"


# -- a refused run leaves no study behind; a foreign database is untouched -------------------------------------


def test_a_foreign_database_is_untouched_byte_for_byte(tmp_path):
    from gpupair_search.search.engine.storage import StorageError, open_storage

    db = tmp_path / "other.db"
    _foreign_sqlite(db)
    before = db.read_bytes()
    with pytest.raises(StorageError, match="not a study's"):
        open_storage(f"sqlite:///{db}")
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_a_database_of_optuna_tables_only_is_a_study_storage(tmp_path):
    from gpupair_search.search.engine.storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="s")
    assert open_storage(url).get_all_studies()[0].study_name == "s"


def test_a_refused_run_leaves_no_study_and_no_results(tmp_path):
    """The README's first command on a machine without what it needs: refused, and the storage as it was."""
    results = tmp_path / "results"
    done = _cli(
        [
            "run",
            "--device",
            "sim",
            "--settings",
            str(FIXTURES / "study_settings.json"),
            "--models",
            str(FIXTURES / "models.json"),
            "--repos-root",
            str(FIXTURES),
            "--results",
            str(results),
        ],
        tmp_path,
    )
    assert done.returncode == 1 and "memory profile" in done.stderr, done.stderr
    assert not results.exists()
    status = _cli(["status", "--results", str(results)], tmp_path)
    assert "--kind" not in status.stderr and "no study storage" in status.stderr, status.stderr


# -- class 8: the dashboard's best trial is a feasible one ---------------------------------------------------------


def _stored(url: str, case: dict) -> optuna.Study:
    from gpupair_search.search.record import optuna_adapter as adapter

    study = optuna.create_study(storage=url, study_name="corpus", direction=case["direction"])
    for t in case["trials"]:
        trial = study.ask()
        for key, value in t["constraints"].items():
            trial.set_constraint(key, value)
        adapter.set_system_attr(study, trial, "constraints", list(t["constraints"].values()))
        study.tell(trial, t["value"])
    return study


def _get_json(app, path: str) -> dict:
    """One GET through the dashboard's WSGI app, as a browser's request would reach it."""
    from wsgiref.util import setup_testing_defaults

    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
    assert status and status[0].startswith("200"), status
    return json.loads(body)


@pytest.mark.parametrize("path", BEST_TRIALS, ids=[p.stem for p in BEST_TRIALS])
def test_the_dashboard_shows_no_infeasible_trial_as_best(path, tmp_path):
    from gpupair_search.search.views.dashboard import dashboard_app

    case = _case(path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = _stored(url, case)
    app = dashboard_app(url, tmp_path / "results")
    [summary] = _get_json(app, "/api/studies")["study_summaries"]
    best = _get_json(app, f"/api/studies/{summary['study_id']}")["best_trials"]
    assert [t["number"] for t in best] == ([] if case["best"] is None else [case["best"]])
    assert all(v <= 0 for t in best for v in t["constraints"])
    if case["best"] is not None:
        assert study.best_trial.number == case["best"]  # Optuna's own rule agrees


# -- what a trial line, a table and the models file say --------------------------------------------------------


@pytest.mark.parametrize(
    "outcome, peak, says",
    [
        ("ok", 7582.0, "over the safe limit (82 MiB above 7,500 MiB)"),
        ("ok", 7457.0, "fits (43 MiB under the 7,500 MiB safe limit)"),
        ("oom_foreground", 8000.0, "does not fit (oom_foreground)"),
        ("crash_background", 100.0, "failed (crash_background)"),
    ],
)
def test_a_trial_line_leads_with_the_verdict_not_the_exit(outcome, peak, says):
    from gpupair_search.launcher.outcome import Outcome
    from gpupair_search.search.views.console import trial_words

    assert trial_words(Outcome(outcome), peak, 7500.0) == says


def test_every_models_file_level_has_its_keys_checked():
    from gpupair_search.launcher.registry import ALLOWED_KEYS, unknown_key_problems

    for level, allowed in ALLOWED_KEYS.items():
        assert unknown_key_problems("m.json", "at", dict.fromkeys([*allowed, "_comment"]), level) == []
        [problem] = unknown_key_problems("m.json", "at", {allowed[0] + "x": 1}, level)
        assert problem.where == f"at.{allowed[0]}x" and f'did you mean "{allowed[0]}"?' in problem.fix


@pytest.mark.parametrize(
    "flag, ok",
    [
        ("--lr", True),
        ("-b", True),
        ("--weight-decay", True),
        ("--lr=", False),
        ("--epochs 5", False),
        ("seed", False),
        ("--", False),
        ("-", False),
    ],
)
def test_a_flag_is_one_argparse_reads(flag, ok):
    from gpupair_search.launcher.registry import _flag_problem

    assert (_flag_problem(flag) == "") is ok
