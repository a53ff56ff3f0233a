#!/usr/bin/env python3
"""Turn bench/profile_workloads.py output (one or more JSON files) into a shipped memory profile:
settings/profiles/<card>_<date>.json, labelled with card, driver, torch and date.

Usage: python bench/make_profile.py profile_a.json [profile_b.json ...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(paths: list[str]) -> None:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    first = runs[0]
    jobs: dict[str, dict] = {}
    for run in runs:
        for row in run["rows"]:
            if row.get("status") not in ("ok", "oom") or row.get("nvml_peak_mib") is None:
                continue
            key = f"{row['repo']}/{row['model']}"
            point = {
                "batch_size": row["batch_size"],
                "nvml_peak_mib": row["nvml_peak_mib"],
                "max_memory_reserved_mib": row.get("max_memory_reserved_mib"),
                "seconds_per_step": row.get("seconds_per_step"),
                "samples_per_second": row.get("samples_per_second"),
                "oom": row["status"] == "oom",
            }
            points = jobs.setdefault(key, {"points": []})["points"]
            points[:] = [p for p in points if p["batch_size"] != point["batch_size"]] + [point]
            points.sort(key=lambda p: p["batch_size"])
    date = first["date"][:10]
    profile = {
        "card": first["card"],
        "driver": first["driver"],
        "torch": first.get("torch"),
        "date": date,
        "measured_with": "bench/profile_workloads.py (NVML per-process peak at 10 ms, incl. CUDA context)",
        "max_steps": first.get("max_steps"),
        "commands": [" ".join(r["command"][1:]) for r in runs],
        "jobs": jobs,
    }
    # jobs measured with no GPU memory at all (e.g. bug-localization, scikit-learn on the CPU) are added by
    # hand as "cpu_only": {"repo/model": "where it was measured"}; keep them when regenerating
    slug = re.sub(r"[^a-z0-9]+", "_", first["card"].lower()).strip("_")
    out = ROOT / "settings" / "profiles" / f"{slug}_{date}.json"
    if out.exists():
        profile["cpu_only"] = json.loads(out.read_text()).get("cpu_only", {})
    out.write_text(json.dumps(profile, indent=2) + "\n")
    print(f"{out}: {len(jobs)} jobs, {sum(len(j['points']) for j in jobs.values())} points")


if __name__ == "__main__":
    main(sys.argv[1:])
