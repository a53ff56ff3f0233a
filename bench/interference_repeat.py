"""How repeatable the interference figures are: the same study run twice, each pair's figures compared.

    python bench/interference_repeat.py --results-a results/run1 --results-b results/run2 --settings FILE \\
        [--kind gpu] [-o interference_repeat.json]

Each pair (same pair, same batch sizes, latest usable trial) gets its foreground and background slowdowns and
its GPU energy per foreground sample from both studies, and the spread between them: 100 * (b - a) / mean(a, b).
The summary says how many are within ±5% (the issue's target). Reads the studies only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpupair_search.launcher.errors import UserError
from gpupair_search.search.engine.interference import PairInterference, pair_interference
from gpupair_search.search.engine.stored_study import open_results

TARGET_PCT = 5.0
FIGURES = {
    "foreground_slowdown": lambda p: p.foreground_slowdown,
    "background_slowdown": lambda p: p.background_slowdown,
    "energy_per_foreground_sample_j": lambda p: p.energy_per_fg_sample_j if p.usable else None,
}


def spread_pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a + b == 0:
        return None
    return 100.0 * (b - a) / ((a + b) / 2)


def latest_usable(items: list[PairInterference]) -> dict[tuple[str, int | None, int | None], PairInterference]:
    out: dict[tuple[str, int | None, int | None], PairInterference] = {}
    for p in sorted(items, key=lambda p: p.trial):
        if p.usable:
            out[(p.pair_key, p.fg_batch, p.bg_batch)] = p
    return out


def compare(a: list[PairInterference], b: list[PairInterference]) -> dict:
    first, second = latest_usable(a), latest_usable(b)
    rows = []
    for key in sorted(first.keys() & second.keys(), key=str):
        row: dict = {"pair": key[0], "fg_batch": key[1], "bg_batch": key[2]}
        for name, get in FIGURES.items():
            x, y = get(first[key]), get(second[key])
            row[name] = {"a": x, "b": y, "spread_pct": None if spread_pct(x, y) is None else round(spread_pct(x, y), 2)}
        rows.append(row)
    spreads = [r[n]["spread_pct"] for r in rows for n in FIGURES if r[n]["spread_pct"] is not None]
    return {
        "pairs_compared": len(rows),
        "only_in_a": sorted(map(str, first.keys() - second.keys())),
        "only_in_b": sorted(map(str, second.keys() - first.keys())),
        "figures": len(spreads),
        "within_target": sum(abs(s) <= TARGET_PCT for s in spreads),
        "target_pct": TARGET_PCT,
        "max_abs_spread_pct": round(max(map(abs, spreads)), 2) if spreads else None,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-a", type=Path, required=True)
    parser.add_argument("--results-b", type=Path, required=True)
    parser.add_argument("--settings", type=Path)
    parser.add_argument("--study")
    parser.add_argument("--kind", choices=("gpu", "cpu", "simulated"))
    parser.add_argument("--models", type=Path)
    parser.add_argument("--repos-root", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("interference_repeat.json"))
    args = parser.parse_args(argv)
    try:
        studies = [
            open_results(
                args.study, args.settings, None, results, args.kind, args.models, args.repos_root, lenient=False
            )
            for results in (args.results_a, args.results_b)
        ]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = compare(*(pair_interference(fs.views()) for fs in studies))
    args.output.write_text(json.dumps(summary, indent=1))
    print(
        f"{summary['within_target']} of {summary['figures']} figures within ±{TARGET_PCT:g}% over "
        f"{summary['pairs_compared']} pairs (max |spread| {summary['max_abs_spread_pct']}%); wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
