"""Summarise `bash bench/gpu_remaining.sh two-gpu` calls from their saved data (no GPU needed).

For each run of each call: its wall time (walls.txt), that wall against the call's reference run, trials and
their summed time from its study database, whether every trial's peak agrees with the reference run, and the
mean start-up of the training processes (``startup_s`` in the results trees).

    python3 bench/two_gpu_summary.py bench/data/h100_2026-11-27c x2_a_shared x2_b_split x2_c_split
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import sys
import tarfile
from pathlib import Path


def walls(path: Path) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2)) for m in re.finditer(r"probe_(\w+)_gpu rc=0 wall=([\d.]+)s", path.read_text())
    }


def trials(db: Path) -> dict:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "select t.number, t.state, (julianday(t.datetime_complete) - julianday(t.datetime_start)) * 86400,"
            " v.value from trials t left join trial_values v on v.trial_id = t.trial_id"
        ).fetchall()
    return {
        "count": len(rows),
        "complete": sum(r[1] == "COMPLETE" for r in rows),
        "summed_s": round(sum(r[2] for r in rows), 1),
        "peaks": {r[0]: r[3] for r in rows},
    }


def mean_startup(tgz: Path) -> float:
    values = []
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".log") and "/workers/" not in member.name:
                text = tar.extractfile(member).read().decode(errors="replace")
                values += [float(v) for v in re.findall(r"\[gpupair\] startup_s=([\d.]+)", text)]
    return round(statistics.mean(values), 2)


def main() -> None:
    """One row per run (mode one, two or shared), in the order the call ran them. Each wall is divided by the
    call's reference run: its one-GPU run where it has one, else its first run."""
    data, names = Path(sys.argv[1]), sys.argv[2:]
    print(
        "| call | mode | wall | wall ÷ reference | trials complete | summed trial time | mean start-up "
        "| peaks equal to the reference |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        w = walls(data / "logs" / f"{name}_walls.txt")
        runs = {mode: trials(data / f"{name}_{mode}_gpu.db") for mode in w}
        ref = "one" if "one" in w else next(iter(w))
        for mode, wall in w.items():
            t = runs[mode]
            startup = mean_startup(data / f"{name}_{mode}_gpu_results.tgz")
            ratio = "reference" if mode == ref else f"{wall / w[ref]:.3f}×"
            print(
                f"| {name} | {mode} | {wall:.1f} s | {ratio} | {t['complete']}/{t['count']} | {t['summed_s']} s "
                f"| {startup} s | {'yes' if t['peaks'] == runs[ref]['peaks'] else 'NO'} |"
            )


if __name__ == "__main__":
    main()
