"""The results directory, in the seed's layout:

``results/run_YYYYMMDD_HHMMSS/<repo>_<model>_parallel_NNN/{training.log, experiment.json, energy/,
background_logs/run_N.log}`` and the run's ``summary.csv``. Directories are created exclusively and files
are written atomically (temp file + rename), so a new run never overwrites an earlier one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import ResultsDirError
from gpupair_search.launcher.measurement import timeline_rows
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import PairResult
from gpupair_search.launcher.spec import PairSpec

SUMMARY_COLUMNS = [
    "experiment_id",
    "group",
    "foreground",
    "background",
    "foreground_batch_size",
    "background_batch_size",
    "outcome",
    "training_success",
    "foreground_peak_mib",
    "background_peak_mib",
    "concurrent_peak_mib",
    "sum_of_peaks_mib",
    "foreground_duration_s",
    "gpu_energy_j",
    "background_runs",
    "simulated",
    "memory_measured_as",
    "error_message",
]
#: What the memory columns of a row are, by the device's kind: never a CPU number read as GPU memory.
MEASURED_AS = {
    "nvidia": "GPU memory (NVML, per process)",
    "cpu": "host memory (RSS; a forked worker counts its own pages), CPU device: not GPU memory",
    "simulated": "SIMULATED: predicted from memory profiles, nothing ran",
}


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_results_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed, or fail with a ResultsDirError saying what to do."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsDirError(
            f"{path}: cannot create the results directory: {exc.strerror or exc}. "
            "Choose a writable place with --results DIR."
        ) from None
    return path


def _mkdir_exclusive(base: Path, names: Iterable[str], what: str) -> Path:
    """Create the first of ``names`` that does not exist yet under ``base``: never an existing directory."""
    for name in names:
        path = base / name
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsDirError(
                f"{base}: cannot create {what}: {exc.strerror}. Choose a writable place with --results DIR."
            ) from None
    raise ResultsDirError(f"{base}: too many directories for {what}")


def new_run_dir(root: Path) -> Path:
    name = datetime.now().strftime("run_%Y%m%d_%H%M%S")
    return _mkdir_exclusive(
        Path(root), (name if n == 1 else f"{name}_{n}" for n in range(1, 10000)), "a results directory"
    )


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
_NAME_CHARS = 64


def safe_name(text: str) -> str:
    """``text`` as one harmless file-name component: only ``[A-Za-z0-9._+-]`` (anything else, ``/`` and ``\\``
    included, becomes ``_``), no leading dot (so never ``.`` or ``..``), at most 64 characters. Repository and
    model names come from the user's files: a name like ``../../x`` must not move a write out of ``--results``."""
    name = _UNSAFE_CHARS.sub("_", text).lstrip(".")
    return name[:_NAME_CHARS] or "_"


def new_pair_dir(run_dir: Path, pair: PairSpec) -> Path:
    """``<repo>_<model>_parallel_NNN``, NNN counting pairs of the same foreground within the run; the names
    sanitised (:func:`safe_name`), so the directory is always a direct child of ``run_dir``."""
    stem = (
        f"{safe_name(pair.foreground.repo)}_{safe_name(pair.foreground.model)}_"
        f"{'parallel' if pair.background else 'solo'}"
    )
    return _mkdir_exclusive(run_dir, (f"{stem}_{n:03d}" for n in range(1, 1000)), "a pair directory")


def experiment_record(result: PairResult, pair_dir: Path) -> dict[str, Any]:
    """experiment.json: the seed's parallel keys (``repository``, ``duration_seconds``, ... as the user's runner
    writes them, so the user's tools read ours), plus what it does not have (``memory``, ``outcome``, ``device``,
    ``window``, ...) under the names the trial record gives them."""
    fg, bg = result.foreground, result.background
    record: dict[str, Any] = {
        "experiment_id": pair_dir.name,
        "timestamp": datetime.now().isoformat(timespec="seconds"),
        "mode": "parallel" if bg else "default",
        "foreground": {
            "repository": fg.repo,
            "model": fg.model,
            "hyperparameters": dict(fg.hyperparameters),
            "duration_seconds": result.foreground_duration_s,
            "energy_metrics": asdict(result.energy),
            "performance_metrics": result.performance_metrics,
            "training_success": result.outcome is Outcome.OK,
            "error_message": result.error_message,
            "exit_code": result.foreground_exit_code,
            "samples_per_second": result.foreground_samples_per_second,
            "probe": result.probe_label,
        },
        "memory": asdict(result.memory),
        "outcome": result.outcome.value,
        "device": result.device,
        "group": result.pair.group,
        "note": result.pair.note,
        "batch_sizes": result.batch_sizes,
        "warnings": result.warnings,
        "simulated": result.simulated,
        "phase_seconds": result.phase_seconds,
        "job_start": result.job_start,
        "window": asdict(result.window)
        if result.window
        else None,  # named as on the trial (search/record/trial_record.py)
        #: how each job's memory was probed and whether its evaluation pass was part of it (probe_events.py)
        "probe": result.probe,
        "time": {
            "jobs_s": result.jobs_s,
            "outside_jobs_s": result.outside_jobs_s,
            "background_ready_by": result.background_ready_by,
        },
    }
    if bg:
        record["background"] = {
            "repository": bg.repo,
            "model": bg.model,
            "hyperparameters": dict(bg.hyperparameters),
            "log_directory": str(pair_dir / "background_logs"),
            "runs": result.background_runs,
            "coverage_of_foreground_window": result.background_coverage,
        }
    return record


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def summary_row(result: PairResult, experiment_id: str) -> dict[str, Any]:
    m = result.memory
    return {
        "experiment_id": experiment_id,
        "group": result.pair.group,
        "foreground": result.foreground.key,
        "background": result.background.key if result.background else "",
        "foreground_batch_size": result.batch_sizes.get("foreground"),
        "background_batch_size": result.batch_sizes.get("background"),
        "outcome": result.outcome.value,
        "training_success": result.outcome is Outcome.OK,
        "foreground_peak_mib": round(m.foreground_peak_mib, 1),
        "background_peak_mib": round(m.background_peak_mib, 1),
        "concurrent_peak_mib": round(m.concurrent_peak_mib, 1),
        "sum_of_peaks_mib": round(m.sum_of_peaks_mib, 1),
        "foreground_duration_s": result.foreground_duration_s,
        "gpu_energy_j": result.energy.gpu_energy_j,
        "background_runs": result.background_runs,
        "simulated": result.simulated,
        "memory_measured_as": MEASURED_AS.get(str(result.device.get("kind")), str(result.device.get("kind"))),
        "error_message": result.error_message,
    }


def write_pair_results(result: PairResult, pair_dir: Path) -> Path:
    """Write experiment.json and energy/ for one pair and add its row to the run's summary.csv."""
    try:
        atomic_write(pair_dir / "experiment.json", json.dumps(experiment_record(result, pair_dir), indent=2) + "\n")
        rows = timeline_rows(result.samples)
        if rows:
            atomic_write(pair_dir / "energy" / "timeline.csv", _csv(rows, list(rows[0])))
        summary = pair_dir.parent / "summary.csv"
        existing = list(csv.DictReader(summary.open(encoding="utf-8"))) if summary.exists() else []
        existing = [r for r in existing if r.get("experiment_id") != pair_dir.name]
        atomic_write(summary, _csv(existing + [summary_row(result, pair_dir.name)], SUMMARY_COLUMNS))
    except OSError as exc:
        raise ResultsDirError(
            f"{pair_dir}: cannot write results: {exc.strerror or exc}. The measurement is kept "
            "in the study storage; free space or fix permissions and run again."
        ) from None
    result.result_dir = pair_dir
    return pair_dir
