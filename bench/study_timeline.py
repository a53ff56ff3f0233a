#!/usr/bin/env python3
"""Where a stored study's time went: its trials by how they were measured, their durations and phases, and the
sampling rate each packed trial reached.

    python3 bench/study_timeline.py RESULTS_DIR [--study matrix] [--kind gpu] [-o out.json]

Reads the study as stored (RESULTS_DIR/gpupair.db). Wall figures are the trials' own stored start and end
times: from the first trial's start to the last one's end, and per trial. Per mode (packed, serial): the number
of measured trials, their median duration, the median of each pair phase (``phase_seconds``) and, for packed
trials, the sampling rate each reached (``memory.sample_hz``) against the monitor's 20 Hz.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from gpupair_search.search.engine.stored_study import open_results  # noqa: E402
from gpupair_search.search.policy.verdict import Verdict  # noqa: E402
from gpupair_search.search.record.trial_record import PACKED, measurement_mode  # noqa: E402


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def timeline(results: Path, study: str, kind: str = "gpu", target_hz: float = 20.0) -> dict:
    fs = open_results(study, None, None, results, kind, None, None, False)
    trials = [t for t in fs.study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete]
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    modes = {t.number: measurement_mode(t.state, t.user_attrs) for t in trials}
    by_mode: dict[str, dict] = {}
    for mode in sorted({m for m in modes.values() if m is not None}):
        ts = [t for t in trials if modes[t.number] == mode]
        phases = sorted({p for t in ts for p in t.user_attrs.get("phase_seconds") or {}})
        entry = {
            "trials": len(ts),
            "span_s": round(
                (max(t.datetime_complete for t in ts) - min(t.datetime_start for t in ts)).total_seconds(), 1
            ),
            "median_trial_s": median([(t.datetime_complete - t.datetime_start).total_seconds() for t in ts]),
            "median_phase_s": {
                p: median(
                    [t.user_attrs["phase_seconds"][p] for t in ts if p in (t.user_attrs.get("phase_seconds") or {})]
                )
                for p in phases
            },
        }
        if mode == PACKED:
            rates = sorted(r for t in ts if (r := t.user_attrs.get("memory", {}).get("sample_hz")))
            entry["sample_hz"] = {
                "min": rates[0] if rates else None,
                "median": median(rates),
                "max": rates[-1] if rates else None,
                f"reached_{target_hz:g}_hz": sum(r >= target_hz - 0.05 for r in rates),
                "of": len(rates),
            }
            gaps = sorted(g for t in ts if (g := t.user_attrs.get("memory", {}).get("max_gap_ms")))
            if gaps:  # trials stored before memory.max_gap_ms existed have none
                entry["max_gap_ms"] = {"median": median(gaps), "max": gaps[-1]}
        by_mode[mode] = entry
    plans = fs.plans()
    open_verdicts = [p.pair.key for p in plans if p.verdict in (Verdict.PENDING, Verdict.SEARCHING, Verdict.CONFIRMING)]
    return {
        "study": fs.settings.name,
        "trials": len(trials),
        "first_start_to_last_end_s": round((last - first).total_seconds(), 1),
        "pairs": len(plans),
        "pairs_with_a_final_verdict": len(plans) - len(open_verdicts),
        "verdicts": {v: sum(p.verdict.value == v for p in plans) for v in sorted({p.verdict.value for p in plans})},
        "by_mode": by_mode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--study", default="matrix")
    parser.add_argument("--kind", default="gpu")
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    benchlib.emit(timeline(args.results, args.study, args.kind), args.out)


if __name__ == "__main__":
    main()
