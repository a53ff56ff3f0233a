"""Summarise `bash bench/gpu_remaining.sh two-gpu` calls from their saved data (no GPU needed).

For each call: both wall times (walls.txt), the ratio, trials and their summed time from each study
database, whether every trial's peak agrees between the two runs, and the mean start-up of the training
processes (``startup_s`` in the results trees).

    python3 bench/two_gpu_summary.py bench/data/h100_2026-11-27_session3 x2_a_shared x2_b_split x2_c_split
"""
from __future__ import annotations

import re
import sqlite3
import statistics
import sys
import tarfile
from pathlib import Path


def walls(path: Path) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"probe_(\w+)_gpu rc=0 wall=([\d.]+)s", path.read_text())}


def trials(db: Path) -> dict:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("select t.number, t.state, (julianday(t.datetime_complete) - julianday(t.datetime_start)) * 86400,"
                           " v.value from trials t left join trial_values v on v.trial_id = t.trial_id").fetchall()
    return {"count": len(rows), "complete": sum(r[1] == "COMPLETE" for r in rows),
            "summed_s": round(sum(r[2] for r in rows), 1), "peaks": {r[0]: r[3] for r in rows}}


def mean_startup(tgz: Path) -> float:
    values = []
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".log") and "/workers/" not in member.name:
                text = tar.extractfile(member).read().decode(errors="replace")
                values += [float(v) for v in re.findall(r"\[gpupair\] startup_s=([\d.]+)", text)]
    return round(statistics.mean(values), 2)


def main() -> None:
    data, names = Path(sys.argv[1]), sys.argv[2:]
    print("| call | one GPU: wall | two GPUs: wall | ratio | trials (one/two) | summed trial time one / two "
          "| mean start-up one / two | peaks equal |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        w = walls(data / "logs" / f"{name}_walls.txt")
        one, two = (trials(data / f"{name}_{m}_gpu.db") for m in ("one", "two"))
        s1, s2 = (mean_startup(data / f"{name}_{m}_gpu_results.tgz") for m in ("one", "two"))
        print(f"| {name} | {w['one']:.1f} s | {w['two']:.1f} s | {w['two'] / w['one']:.3f}× "
              f"| {one['complete']}/{one['count']} · {two['complete']}/{two['count']} "
              f"| {one['summed_s']} / {two['summed_s']} s ({two['summed_s'] / one['summed_s'] - 1:+.1%}) "
              f"| {s1} / {s2} s | {'yes' if one['peaks'] == two['peaks'] else 'NO'} |")


if __name__ == "__main__":
    main()
