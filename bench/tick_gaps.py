#!/usr/bin/env python3
"""Where the packed sampler's missing ticks went: its tick log (bench/gc_log.py --ticks), the runner's garbage
collections (bench/gc_log.py) and a witness sampler in its own process (bench/nvml_witness.py), on one clock.

    python3 bench/tick_gaps.py --ticks ticks.json --gc gc.json --witness witness.json [-o gaps.json]

A tick is due every interval (the median time between the sampler's ticks: 50 ms at 20 Hz, 40 ms for the packed
sampler's 25 Hz). The sampler makes up a gap of less than one interval, so only longer stalls cost samples. Each
gap of at least ``--min-gap-ms`` (default 1.5 intervals) is laid at the door of what overlapped it, in this order:

- ``slow_read``: the tick's own device read took more than half the gap (the NVML call, and getting the
  interpreter's lock back after it); ``nvml`` if the witness's read at that moment was slow as well;
- ``gc``: a garbage collection of the runner ended inside the gap;
- ``host``: the witness, in its own process, also stalled across the gap (the host's cores, not the runner);
- ``runner``: none of these: the runner's other threads held the interpreter.
"""

from __future__ import annotations

import argparse
import json
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from pathlib import Path
from statistics import median

WITNESS_GAP_MS = 75.0  # 1.5 of the witness's 50 ms ticks


def load(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path else {}


def packed_ticks(ticks: list[list]) -> dict[int, list[list]]:
    """The ticks of each sampler that ever served more than one pair (the packed trials' shared sampler)."""
    by_sampler: dict[int, list[list]] = defaultdict(list)
    for tick in ticks:
        by_sampler[tick[0]].append(tick)
    return {s: ts for s, ts in by_sampler.items() if max(t[4] for t in ts) > 1}


def witness_stall(witness: list[list], start: float, end: float, min_gap_ms: float) -> tuple[bool, float]:
    """Whether the witness had a gap of at least ``min_gap_ms`` overlapping [start, end], and its slowest read there."""
    starts = [t[0] for t in witness]
    lo, hi = max(bisect_left(starts, start) - 1, 0), min(bisect_right(starts, end) + 1, len(witness))
    near = witness[lo:hi]
    stalled = any(1000 * (b[0] - a[0]) >= min_gap_ms and b[0] > start and a[0] < end for a, b in zip(near, near[1:]))
    return stalled, max((t[1] for t in near), default=0.0)


def classify(ticks: list[list], gc_pauses: list[dict], witness: list[list], min_gap_ms: float) -> list[dict]:
    gaps = []
    for tick, nxt in zip(ticks, ticks[1:]):
        gap_ms = 1000 * (nxt[1] - tick[1])
        if gap_ms < min_gap_ms:
            continue
        start, end = tick[1], nxt[1]
        gc_ms = sum(p["ms"] for p in gc_pauses if start < p["monotonic"] <= end)
        w_stalled, w_read = witness_stall(witness, start, end, WITNESS_GAP_MS) if witness else (False, 0.0)
        if tick[2] > gap_ms / 2:
            cause = "nvml" if witness and w_read > gap_ms / 2 else "slow_read"
        elif gc_ms > 0:
            cause = "gc"
        elif w_stalled:
            cause = "host"
        else:
            cause = "runner"
        gaps.append(
            {
                "at": round(start, 3),
                "gap_ms": round(gap_ms, 1),
                "read_ms": tick[2],
                "tick_ms": tick[3],
                "pairs": tick[4],
                "gc_ms": round(gc_ms, 1),
                "witness_stalled": w_stalled,
                "witness_read_ms": round(w_read, 2),
                "cause": cause,
            }
        )
    return gaps


def shared_runs(ticks: list[list]) -> list[list[list]]:
    """The runs of consecutive ticks that served more than one pair."""
    runs: list[list[list]] = []
    for tick, before in zip(ticks, [None, *ticks]):
        if tick[4] > 1:
            if before is None or before[4] <= 1:
                runs.append([])
            runs[-1].append(tick)
    return [run for run in runs if len(run) > 1]


def interval_ms(runs: list[list[list]]) -> float:
    return median(1000 * (b[1] - a[1]) for run in runs for a, b in zip(run, run[1:]))


def summary(runs: list[list[list]], gaps: list[dict], interval: float) -> dict:
    ticks = [t for run in runs for t in run]
    span_ms = 1000 * sum(run[-1][1] - run[0][1] for run in runs)
    intervals = len(ticks) - len(runs)
    missing = span_ms / interval - intervals
    excess = Counter()
    for gap in gaps:
        excess[gap["cause"]] += gap["gap_ms"] - interval
    return {
        "interval_ms": round(interval, 1),
        "ticks": len(ticks),
        "span_s": round(span_ms / 1000, 1),
        "rate_hz": round(intervals / (span_ms / 1000), 2) if span_ms else 0.0,
        "missing_ticks": round(missing, 1),
        "read_ms_median": median(t[2] for t in ticks),
        "read_ms_max": max(t[2] for t in ticks),
        "tick_ms_median": median(t[3] for t in ticks),
        "tick_ms_max": max(t[3] for t in ticks),
        "gaps": len(gaps),
        "gaps_by_cause": dict(Counter(g["cause"] for g in gaps)),
        "excess_ms_by_cause": {k: round(v) for k, v in excess.items()},
        "longest": sorted(gaps, key=lambda g: -g["gap_ms"])[:10],
    }


def witness_summary(witness: list[list], host: list[list], min_gap_ms: float) -> dict:
    span_s = witness[-1][0] - witness[0][0]
    gaps = [1000 * (b[0] - a[0]) for a, b in zip(witness, witness[1:])]
    return {
        "ticks": len(witness),
        "rate_hz": round((len(witness) - 1) / span_s, 2) if span_s else 0.0,
        "gaps": sum(g >= min_gap_ms for g in gaps),
        "gap_ms_max": round(max(gaps, default=0.0), 1),
        "read_ms_median": median(t[1] for t in witness),
        "read_ms_max": max(t[1] for t in witness),
        "host_busy_pct_median": median(h[1] for h in host) if host else None,
        "host_busy_pct_max": max(h[1] for h in host) if host else None,
        "cpu_pressure_avg10_max": max((h[2] for h in host if h[2] is not None), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=Path, required=True)
    parser.add_argument("--gc", type=Path)
    parser.add_argument("--witness", type=Path)
    parser.add_argument("--min-gap-ms", type=float, help="default: 1.5 intervals")
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    ticks = load(args.ticks)["ticks"]
    gc_data = load(args.gc)
    pauses = next((v for k, v in gc_data.items() if k.startswith("pauses_of_")), [])
    witness_data = load(args.witness)
    witness = witness_data.get("ticks", [])
    report = {"samplers": {}}
    for sampler, ts in packed_ticks(ticks).items():
        # only while more than one pair shared it: the packed part of the study
        runs = shared_runs(ts)
        if not runs:
            continue
        first, last = runs[0][0][1], runs[-1][-1][1]
        window = [w for w in witness if first <= w[0] <= last]
        interval = interval_ms(runs)
        gaps = [g for run in runs for g in classify(run, pauses, window, args.min_gap_ms or 1.5 * interval)]
        report["samplers"][sampler] = summary(runs, gaps, interval)
        if window:
            report["samplers"][sampler]["witness"] = witness_summary(
                window, [h for h in witness_data.get("host", []) if first <= h[0] <= last], WITNESS_GAP_MS
            )
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
