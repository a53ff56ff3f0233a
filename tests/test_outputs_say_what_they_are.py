"""Every output of a CPU or a simulated study says so where its numbers are: a CPU study speaks of a
host-memory budget, never of a card, and a simulated one of predictions, never of measurements."""

from __future__ import annotations

import csv
import json

from gpupair_search.settings import bundled
from tests.conftest import run_cli
from tests.test_faults import CARD, INPUTS, job, write_settings


def test_a_cpu_study_is_stored_apart_and_speaks_of_host_memory(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    settings = write_settings(
        tmp_path / "one.json",
        [
            (
                job("ok", pids / "fg", seconds=0.5, batch_size=8),
                job("ok", pids / "bg", seconds=30, batch_size=8),
                "one pair",
            )
        ],
        name="outputs_cpu",
    )
    common = ["--settings", str(settings), *INPUTS, "--results", str(tmp_path / "results")]
    done = run_cli("run", *common, "--device", "cpu", *CARD, "--full-epoch")
    assert done.returncode == 0, done.stderr
    assert "host-memory budget" in done.stderr and "CPU: host memory" in done.stdout
    status = run_cli("status", *common)
    assert status.returncode == 0 and "study 'outputs_cpu-cpu'" in status.stdout
    assert "host-memory budget 400 MiB (CPU, not a GPU)" in status.stdout and "card" not in status.stdout
    assert run_cli("report", *common, "-o", str(tmp_path / "r.html")).returncode == 0
    assert "CPU: every number below is host memory" in (tmp_path / "r.html").read_text()
    export_args = [("--study-models" if a == "--models" else a) for a in common]  # export's --models is the target's
    assert run_cli("export", *export_args, "-o", str(tmp_path / "safe.json")).returncode == 0
    exported = json.loads((tmp_path / "safe.json").read_text())
    assert "measured on the CPU (host memory, not GPU memory)" in exported["description"]
    assert exported["_exported_from"]["kind"] == "cpu"
    [summary] = (tmp_path / "results").glob("run_*/summary.csv")
    [row] = csv.DictReader(summary.open())
    assert row["memory_measured_as"].startswith("host memory (RSS; a forked worker counts its own pages)")


def test_a_simulated_study_says_simulated_in_every_output(tmp_path):
    common = ["--settings", str(bundled("parallel_feasibility_test.json")), "--lenient", "--results", str(tmp_path)]
    assert run_cli("run", *common, "--device", "sim").returncode == 0
    assert "SIMULATED card 8,192 MiB" in run_cli("status", *common).stdout
    assert run_cli("export", *common, "-o", str(tmp_path / "safe.json")).returncode == 0
    description = json.loads((tmp_path / "safe.json").read_text())["description"]
    assert (
        "SIMULATED (predicted from memory profiles, not measured)" in description and "measured to" not in description
    )
    [summary] = tmp_path.glob("run_*/summary.csv")
    assert all(row["memory_measured_as"].startswith("SIMULATED") for row in csv.DictReader(summary.open()))
