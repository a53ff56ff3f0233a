"""`gpupair-search dashboard` serves a real study through optuna-dashboard: its REST API lists the trials,
shows the infeasible ones as infeasible, serves each trial's files, and carries our figures and note.

Routes used (optuna-dashboard 0.21, optuna_dashboard/_app.py and artifact/_backend.py):
``GET /api/studies``, ``GET /api/studies/<study_id>`` (trials with constraints and artifacts, figures, note),
``GET /artifacts/<study_id>/<trial_id>/<artifact_id>``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import psutil
import pytest

from tests.conftest import FIXTURES, cli_env, wait_until

STUDY_ARGS = [
    "--settings",
    str(FIXTURES / "study_settings.json"),
    "--models",
    str(FIXTURES / "models.json"),
    "--repos-root",
    str(FIXTURES),
]
ARTIFACTS = {"training.log", "experiment.json", "timeline.csv", "memory_timeline.html"}


def _command() -> list[str]:
    entry = shutil.which("gpupair-search")
    return [entry] if entry else [sys.executable, "-m", "gpupair_search.search.cli.app"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def served(tmp_path_factory):
    results = tmp_path_factory.mktemp("dashboard") / "results"
    done = subprocess.run(
        _command()
        + [
            "run",
            *STUDY_ARGS,
            "--device",
            "cpu",
            "--gpu-memory",
            "400MiB",
            "--safe-limit",
            "250MiB",
            "--results",
            str(results),
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    port = _free_port()
    server = subprocess.Popen(
        _command() + ["dashboard", *STUDY_ARGS, "--results", str(results), "--port", str(port)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(base + "/api/meta")
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"the dashboard exited with {server.returncode}:\n{server.stdout.read()}")
                if time.monotonic() > deadline:
                    pytest.fail("the dashboard did not answer within 60 s")
                time.sleep(0.2)
        yield base, results, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _study(base: str) -> tuple[int, dict]:
    studies = json.loads(_get(base + "/api/studies"))["study_summaries"]
    study_id = next(s["study_id"] for s in studies if s["study_name"] == "fixture_study-cpu")
    return study_id, json.loads(_get(f"{base}/api/studies/{study_id}"))


def _pair(trial: dict) -> str:
    return next(p["param_external_value"] for p in trial["fixed_params"] if p["name"] == "pair")


def test_dashboard_listens_on_localhost_only(served):
    base, _, server = served
    listening = [c.laddr for c in psutil.Process(server.pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_trials_and_their_feasibility(served):
    base, results, _ = served
    study_id, detail = _study(base)
    stored = optuna.load_study(study_name="fixture_study-cpu", storage=f"sqlite:///{results / 'gpupair.db'}").trials
    trials = {t["number"]: t for t in detail["trials"]}
    assert sorted(trials) == [t.number for t in stored]
    for t in stored:
        shown = trials[t.number]
        assert shown["state"] == t.state.name.capitalize()
        if t.state is optuna.trial.TrialState.COMPLETE:
            feasible = all(v <= 0 for v in t.constraints.values())
            assert shown["constraints"], f"trial {t.number} shows no constraints: the dashboard would call it feasible"
            assert all(v <= 0 for v in shown["constraints"]) == feasible
    initial = min((t for t in trials.values() if _pair(t).startswith("g02")), key=lambda t: t["number"])
    assert any(v > 0 for v in initial["constraints"])  # 40/32 is over the safe limit: shown violated
    assert all(v <= 0 for v in next(t for t in trials.values() if _pair(t).startswith("g01"))["constraints"])
    assert next(t for t in trials.values() if _pair(t).startswith("g03"))["state"] == "Fail"

    ids = {g["id"] for g in detail["plotly_graph_objects"]}
    assert {"gpupair-frontier-g02", "gpupair-pair-matrix"} <= ids
    assert "fits_reduced" in detail["note"]["body"] and "fixture_study" in detail["note"]["body"]


def test_trial_artifacts_are_served(served):
    base, results, _ = served
    study_id, detail = _study(base)
    for trial in detail["trials"]:
        names = {a["filename"] for a in trial["artifacts"]}
        assert names >= ARTIFACTS, f"trial {trial['number']}: {sorted(names)}"
    first = next(t for t in detail["trials"] if t["number"] == 0)
    log = next(a for a in first["artifacts"] if a["filename"] == "training.log")
    body = _get(f"{base}/artifacts/{study_id}/{first['trial_id']}/{log['artifact_id']}")
    result_dir = next(a["value"] for a in first["user_attrs"] if a["key"] == "result_dir")
    assert body == (Path(result_dir) / "training.log").read_bytes()
    assert b"[SUCCESS] Training completed" in body
    page = next(a for a in first["artifacts"] if a["filename"] == "memory_timeline.html")
    assert page["mimetype"] == "text/html"
    assert b"Memory over time" in _get(f"{base}/artifacts/{study_id}/{first['trial_id']}/{page['artifact_id']}")


# -- "Best Trial" is the best feasible trial (search/record/feasible_best.py) -------------------------------------------
def _detail_of(base: str, name: str) -> dict:
    def find() -> dict | None:
        studies = json.loads(_get(base + "/api/studies"))["study_summaries"]
        found = next((s["study_id"] for s in studies if s["study_name"] == name), None)
        return None if found is None else json.loads(_get(f"{base}/api/studies/{found}"))

    detail = wait_until(find, timeout=30, step=0.5)
    assert detail is not None, f"the dashboard does not list study {name!r}"
    return detail


def _stored_study(
    storage: str, name: str, direction: str, trials: list[tuple[float, dict[str, float]]]
) -> optuna.Study:
    """A study written as ours are: each COMPLETE trial with its constraints in both of Optuna's forms."""
    from gpupair_search.search.record import optuna_adapter as adapter

    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    for value, constraints in trials:
        trial = study.ask()
        for key, c in constraints.items():
            trial.set_constraint(key, c)
        adapter.set_system_attr(study, trial, "constraints", list(constraints.values()))
        study.tell(trial, value)
    return study


def test_the_best_trial_is_the_largest_pair_verified_to_fit(served):
    base, results, _ = served
    _, detail = _study(base)
    storage = optuna.storages.RDBStorage(f"sqlite:///{results / 'gpupair.db'}")
    study = optuna.load_study(study_name="fixture_study-cpu", storage=storage)
    assert detail["directions"] == ["maximize"]
    [best] = detail["best_trials"]
    assert best["number"] == study.best_trial.number  # Optuna 5's own rule: the best among feasible trials
    assert all(v <= 0 for v in best["constraints"])
    completed = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    assert best["values"] == [max(t.value for t in completed if all(v <= 0 for v in t.constraints.values()))]
    unconstrained = storage.get_best_trial(study._study_id)  # what the dashboard showed before: an infeasible pair
    assert unconstrained.number != best["number"] and any(v > 0 for v in unconstrained.constraints.values())


def test_an_old_minimising_study_shows_its_smallest_feasible_pair_and_an_infeasible_one_none(served):
    base, results, _ = served
    url = f"sqlite:///{results / 'gpupair.db'}"
    fits, oom, over = (
        {"out_of_memory": 0.0, "over_safe_limit_mib": -50.0},
        {"out_of_memory": 1.0, "over_safe_limit_mib": -200.0},
        {"out_of_memory": 0.0, "over_safe_limit_mib": 30.0},
    )
    old = _stored_study(url, "old-minimising", "minimize", [(300.0, fits), (50.0, oom), (200.0, fits), (280.0, over)])
    [best] = _detail_of(base, "old-minimising")["best_trials"]
    assert best["number"] == old.best_trial.number == 2  # 200 MiB fits; the 50 MiB OOM is no best
    _stored_study(url, "nothing-fits", "maximize", [(300.0, oom), (280.0, over)])
    assert _detail_of(base, "nothing-fits")["best_trials"] == []
