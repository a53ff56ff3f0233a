"""`export` turns a real (CPU) study into a seed-format settings file that validates strictly and runs again;
against the seed's models file, which lacks `batch_size` for most repositories, it warns and writes the
models-file additions that keep a reduced batch size from being silently dropped."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, SEED_PROJECT
from tests.conftest import run_cli as cli

SEED_MODELS = FIXTURES / "seed_models_config.json"  # a byte-identical copy of the seed's (see test_bad_inputs)
CARD = ["--gpu-memory", "400MiB", "--safe-limit", "250MiB"]


def _hyper() -> dict:
    return {
        "seconds": {"flag": "--seconds", "type": "float", "default": 1.0},
        "batch_size": {"flag": "--batch-size", "type": "int", "default": 8},
        "mib_per_sample": {"flag": "--mib-per-sample", "type": "float", "default": 0.0},
        "max_steps": {"flag": "--max-steps", "type": "int", "default": 0},
    }


def _models_file(path: Path) -> Path:
    """The fixture script under two of the seed's repository names, so the seed's models file applies."""
    repo = {
        "path": str(FIXTURES),
        "train_script": "fake_train.py",
        "model_flag": "-n",
        "supported_hyperparams": _hyper(),
    }
    path.write_text(
        json.dumps(
            {
                "models": {
                    "examples": {**repo, "models": ["mnist_ff", "mnist", "crash"]},
                    "VulBERTa": {**repo, "models": ["mlp"]},
                }
            }
        )
    )
    return path


def _settings_file(path: Path) -> Path:
    """The fixture study's three pairs: one fits, one needs a smaller background batch, one crashes."""

    def job(repo, model, **hp):
        return {"repo": repo, "model": model, "hyperparameters": hp}

    experiments = [
        {
            "mode": "parallel",
            "foreground": {
                **job("examples", "mnist_ff", seconds=0.5, batch_size=8, mib_per_sample=2),
                "mode": "default",
            },
            "background": job("VulBERTa", "mlp", seconds=30, mib_per_sample=2),
            "note": "Group 1: small (100MB)",
        },
        {
            "mode": "parallel",
            "foreground": {**job("examples", "mnist", seconds=0.5, batch_size=40, mib_per_sample=4), "mode": "default"},
            "background": job("VulBERTa", "mlp", seconds=30, batch_size=32, mib_per_sample=4),
            "note": "Group 2: too big at these batch sizes (330MB)",
        },
        {
            "mode": "parallel",
            "foreground": {**job("examples", "crash", seconds=0.2), "mode": "default"},
            "background": job("VulBERTa", "mlp", seconds=30),
            "note": "Group 3: the foreground crashes (50MB)",
        },
    ]
    path.write_text(
        json.dumps(
            {
                "experiment_name": "export_study",
                "description": "export test",
                "mode": "parallel",
                "experiments": experiments,
            }
        )
    )
    return path


@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def study(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    files = {
        "root": root,
        "models": _models_file(root / "models.json"),
        "settings": _settings_file(root / "settings.json"),
        "results": root / "results",
    }
    done = cli(
        "run",
        "--settings",
        str(files["settings"]),
        "--models",
        str(files["models"]),
        "--device",
        "cpu",
        *CARD,
        "--results",
        str(files["results"]),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "fits_reduced" in done.stdout, done.stdout
    return files


def _export(study: dict[str, Path], output: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli(
        "export",
        "--settings",
        str(study["settings"]),
        "--study-models",
        str(study["models"]),
        "--results",
        str(study["results"]),
        "-o",
        str(output),
        *extra,
    )


def test_export_validates_strictly_and_runs_again(study):
    out = study["root"] / "safe_pairs.json"
    done = _export(study, out)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # its own models file knows every hyperparameter
    assert not (study["root"] / "safe_pairs.models_additions.json").exists()
    data = json.loads(out.read_text())
    # the source's top-level keys and nothing the runner would read differently (no governor, no max_retries)
    assert set(data) == {"experiment_name", "description", "mode", "experiments", "_unsafe_pairs", "_exported_from"}
    notes = [e["note"] for e in data["experiments"]]
    order = [n.split(":")[0] for n in notes]
    assert order == sorted(order, key=["stable", "usable", "high risk"].index)  # stable first, high risk last
    assert len(notes) == 2 and all(
        re.search(r"measured peak [\d,]+ MiB, margin [\d,]+ MiB to the 250 MiB limit", n) for n in notes
    )
    reduced = next(e for e in data["experiments"] if "(g02 " in e["note"])
    batch = reduced["background"]["hyperparameters"]["batch_size"]
    assert batch < 32 and reduced["gradient_accumulation"] == {"foreground": 1, "background": -(-32 // batch)}
    assert f"×{-(-32 // batch)}" in reduced["note"]
    assert reduced["foreground"]["hyperparameters"]["batch_size"] == 40
    assert "max_steps" not in json.dumps(data["experiments"])  # probe-mode additions stay out
    assert [u["group"] for u in data["_unsafe_pairs"]] == [3] and "crash" in data["_unsafe_pairs"][0]["reason"]

    valid = cli("validate", str(out), "--models", str(study["models"]))
    assert valid.returncode == 0, valid.stderr + valid.stdout
    again = study["root"] / "again"
    rerun = cli(
        "run",
        "--settings",
        str(out),
        "--models",
        str(study["models"]),
        "--device",
        "cpu",
        *CARD,
        "--results",
        str(again),
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    rows = [line for line in rerun.stdout.splitlines() if line[:1].isdigit()]
    assert len(rows) == 2 and all(re.search(r" fits(_reduced)? ", row) for row in rows), rerun.stdout

    margin = _export(study, study["root"] / "margin.json", "--margin", "10MiB")
    assert margin.returncode == 0, margin.stderr
    for entry in json.loads((study["root"] / "margin.json").read_text())["experiments"]:
        peak = float(re.search(r"measured peak ([\d,]+) MiB", entry["note"]).group(1).replace(",", ""))
        assert peak <= 240
    whole_limit = _export(study, study["root"] / "none.json", "--margin", "250MiB")  # the limit minus 250: nothing
    assert whole_limit.returncode != 0 and "not under the study's safe limit (250 MiB)" in whole_limit.stderr
    assert not (study["root"] / "none.json").exists()


def test_export_for_the_seed_models_file_warns_and_writes_the_additions(study):
    out = study["root"] / "seed_safe.json"
    done = _export(study, out, "--models", str(SEED_MODELS))
    assert done.returncode == 0, done.stderr
    assert re.search(r"warning: .*'VulBERTa' has no hyperparameter 'batch_size'.*silently ignored", done.stderr), (
        done.stderr
    )
    additions_file = study["root"] / "seed_safe.models_additions.json"
    additions = json.loads(additions_file.read_text())
    assert additions["models"]["VulBERTa"]["supported_hyperparams"]["batch_size"]["flag"] == "--batch-size"
    assert "batch_size" not in additions["models"].get("examples", {}).get("supported_hyperparams", {})  # seed has it

    strict = cli("validate", str(out), "--models", str(SEED_MODELS), "--repos-root", str(SEED_PROJECT))
    assert strict.returncode != 0 and "batch_size" in strict.stderr  # without the additions: refused, not dropped

    from gpupair_search.search.views.export import merge_models

    merged = study["root"] / "seed_models_merged.json"
    merged.write_text(json.dumps(merge_models(json.loads(SEED_MODELS.read_text()), additions)))
    valid = cli("validate", str(out), "--models", str(merged), "--repos-root", str(SEED_PROJECT))
    assert valid.returncode == 0, valid.stderr + valid.stdout
    assert "--batch-size" in valid.stdout  # the reduced batch size reaches the command line


def test_a_measurement_warning_is_on_the_trial_line_under_the_verdicts_and_in_the_exported_note(tmp_path):
    """A foreground that exits 0 after a traceback (a wrapper that hides its script's exit code) keeps the verdict
    its exit code and memory give, but its warning follows the pair everywhere the verdict goes. status and export
    read the study with the models file it ran with, from storage, without being told."""
    models = _models_file(tmp_path / "models.json")
    data = json.loads(models.read_text())
    data["models"]["examples"]["models"].append("caught")
    models.write_text(json.dumps(data))
    settings = tmp_path / "settings.json"
    entry = {"mode": "default", "repo": "examples", "model": "caught", "hyperparameters": {"seconds": 1.0}}
    settings.write_text(json.dumps({"experiment_name": "caught", "experiments": [entry]}))
    results, out = tmp_path / "results", tmp_path / "safe.json"
    common = ["--settings", str(settings), "--results", str(results)]
    ran = cli("run", *common, "--models", str(models), "--device", "cpu", *CARD, timeout=300)
    assert ran.returncode == 0, ran.stderr
    said = "exited 0, but its log holds a Python traceback (ValueError: the data loader broke at step 10)"
    lines = ran.stderr.splitlines()
    trial_line = next(i for i, line in enumerate(lines) if line.startswith("[") and "peak" in line)
    assert said in lines[trial_line + 1]  # right under the trial's line
    status = cli("status", *common)  # the models file the study ran with, from storage
    assert "warnings of the measurements above:" in status.stdout and f"g01: the foreground {said}" in status.stdout
    exported = cli("export", *common, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "g01 is exported with a warning of its measurements" in exported.stderr
    [written] = json.loads(out.read_text())["experiments"]
    assert f"warning: the foreground {said}" in written["note"]
