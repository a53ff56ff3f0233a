#!/usr/bin/env python3
"""Peak capture while packed: each job's peak in the matrix's packed trials against the same job at the same batch
size measured alone on the emulated card (the 12-group serial study of the same call, else the matrix's own
serial trials), and every packed job that recorded 0 MiB (none may: every built-in but bug-localization uses
the GPU).

    python3 bench/packed_peaks.py DIR [-o out.json]

DIR holds ``matrix.db`` and ``feasibility_serial.db``, as ``bench/gpu_remaining.sh memory-verdicts-warm`` archives them.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

CPU_JOBS = {"bug-localization-by-dnn-and-rvsm/default"}
Key = tuple[str, int | None]  # ("repo/model", batch size)


def job_peaks(db: Path, study: str, mode: str) -> tuple[dict[Key, list[float]], list[tuple[int, Key]]]:
    """Each job's peaks in the ``mode`` trials that completed ok, and the (trial, job) of any 0 MiB peak."""
    trials = optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials(deepcopy=False)
    peaks: dict[Key, list[float]] = collections.defaultdict(list)
    zeros: list[tuple[int, Key]] = []
    for trial in trials:
        attrs = trial.user_attrs
        if attrs.get("outcome") != "ok" or (attrs.get("measurement") or {}).get("mode") != mode:
            continue
        for role in ("foreground", "background"):
            job = attrs.get(role)
            if not job:
                continue
            key = (f"{job['repo']}/{job['model']}", job["hyperparameters"].get("batch_size"))
            peak = attrs["memory"][f"{role}_peak_mib"]
            peaks[key].append(peak)
            if peak == 0 and key[0] not in CPU_JOBS:
                zeros.append((trial.number, key))
    return peaks, zeros


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    alone, _ = job_peaks(args.dir / "feasibility_serial.db", "feasibility", "serial")
    matrix_alone, _ = job_peaks(args.dir / "matrix.db", "matrix", "serial")
    packed, zeros = job_peaks(args.dir / "matrix.db", "matrix", "packed")
    rows = []
    for key, peaks in packed.items():
        reference = alone.get(key) or matrix_alone.get(key)
        if reference and statistics.median(reference) > 0:
            ref = statistics.median(reference)
            rows += [(abs(peak - ref) / ref, key, peak, ref) for peak in peaks]
    rows.sort(reverse=True)
    benchlib.emit(
        {
            "packed_job_peaks_compared": len(rows),
            "within_2_percent": sum(r[0] <= 0.02 for r in rows),
            "max_relative_difference": round(rows[0][0], 4) if rows else None,
            "worst": [{"job": k, "packed_mib": p, "alone_mib": r} for _, k, p, r in rows[:3]],
            "packed_jobs_at_0_mib": [{"trial": n, "job": k} for n, k in zeros],
        },
        args.out,
    )


if __name__ == "__main__":
    main()
