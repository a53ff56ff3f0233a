#!/usr/bin/env python3
"""Compare a packed study with a serial one of the same settings: verdicts, recommendations, peaks, rates.

    python3 bench/packing_compare.py --serial RESULTS_A --packed RESULTS_B [--study feasibility] --out X.json

Reads the two studies as stored (each in its results directory's gpupair.db) and reports:
* whether every pair's verdict and recommended batch sizes are the same;
* peak capture while packed: for each configuration measured both packed and serially (the packed study's own
  confirmations, and the serial study's trials), each job's packed peak against its serial emulated peak, as a
  relative difference, and the sampling rate each packed trial reached;
* how the packed study's trials were measured (counts per mode) and how many ran at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gpupair_search.search.engine.stored_study import open_results
from gpupair_search.search.record.trial_record import PACKED


def load(results: Path, study: str, kind: str):
    fs = open_results(study, None, None, results, kind, None, None, False)
    return fs, fs.plans(), fs.views()


def by_config(views, mode: str | None) -> dict:
    out = {}
    for v in views:
        if v.measured and v.state.name == "COMPLETE" and (mode is None or v.mode == mode):
            out.setdefault((v.pair_key, v.config), v)
    return out


def peaks(v) -> tuple[float, float]:
    m = v.record.measured.memory
    return m.foreground_peak_mib, m.background_peak_mib


def compare(serial_dir: Path, packed_dir: Path, study: str, kind: str = "gpu") -> dict:
    _, serial_plans, serial_views = load(serial_dir, study, kind)
    packed_fs, packed_plans, packed_views = load(packed_dir, study, kind)
    verdicts = []
    for a, b in zip(serial_plans, packed_plans):
        verdicts.append(
            {
                "pair": a.pair.key,
                "serial": [a.verdict.value, a.recommended],
                "packed": [b.verdict.value, b.recommended],
                "same": (a.verdict, a.recommended) == (b.verdict, b.recommended),
            }
        )
    packed = by_config(packed_views, PACKED)
    serial_refs = {**by_config(serial_views, None), **by_config([v for v in packed_views if v.mode != PACKED], None)}
    capture = []
    for key, v in packed.items():
        ref = serial_refs.get(key)
        if ref is None:
            continue
        rows = []
        for role, p, s in zip(("foreground", "background"), peaks(v), peaks(ref)):
            if s > 0:
                rows.append({"role": role, "packed_mib": p, "serial_mib": s, "rel_diff": round((p - s) / s, 4)})
        capture.append(
            {"pair": key[0], "config": key[1], "jobs": rows, "packed_sample_hz": v.record.measured.memory.sample_hz}
        )
    rates = sorted(
        r for v in packed_views if v.mode == PACKED and v.measured if (r := v.record.measured.memory.sample_hz)
    )
    modes: dict[str, int] = {}
    for v in packed_views:
        if v.measured:
            modes[v.mode] = modes.get(v.mode, 0) + 1
    diffs = [abs(r["rel_diff"]) for c in capture for r in c["jobs"]]
    return {
        "verdicts_identical": all(v["same"] for v in verdicts),
        "verdicts": verdicts,
        "peak_capture": capture,
        "max_abs_rel_diff": max(diffs, default=None),
        "packed_sample_hz_min": rates[0] if rates else None,
        "packed_sample_hz_median": rates[len(rates) // 2] if rates else None,
        "measured_trials_by_mode": modes,
        "serial_study_measured_trials": sum(1 for v in serial_views if v.measured),
        "packed_study_phases_s": phases(packed_fs.study.get_trials()),
    }


def phases(trials) -> dict[str, float | None]:
    """Wall seconds from the first start to the last end of the packed trials, and of the serial ones."""
    out: dict[str, float | None] = {}
    for mode in ("packed", "serial"):
        ts = [t for t in trials if (t.user_attrs.get("measurement") or {}).get("mode") == mode and t.datetime_complete]
        out[mode] = (
            round((max(t.datetime_complete for t in ts) - min(t.datetime_start for t in ts)).total_seconds(), 1)
            if ts
            else None
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", type=Path, required=True)
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--study", default="feasibility")
    parser.add_argument("--kind", default="gpu", help="gpu, cpu or simulated (a simulated pair is labelled so)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = compare(args.serial, args.packed, args.study, args.kind)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("verdicts", "peak_capture")}, indent=2))
    for v in result["verdicts"]:
        if not v["same"]:
            print("DIFFERENT:", v)


if __name__ == "__main__":
    main()
