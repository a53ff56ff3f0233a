#!/usr/bin/env python3
"""Search cost on the GPU: trials to find the largest safe batch sizes of the study's real failing pairs.

* ours: the extension trials a real GPU probe study spent on each failing pair, read from its database.
* the two baselines of bench/search_cost.py (doubling then bisection, as PyTorch Lightning's binsearch; x0.9
  back-off, as HF Accelerate), replayed on the same pairs and the same reduction path. Every configuration a
  baseline asks for is answered by
  - "study": the study's own GPU measurement of exactly that configuration, or
  - "gpu": a real pair run here (probe mode, the study's card emulated, its safe limit), or
  - "inferred": once --budget-s is spent, from measured configurations by monotonicity (memory does not
    shrink when a batch grows); counted apart, never as measured.
Each pair gets an equal share of the budget; runs go to the largest unmeasured batch sizes first: they sit
next to the boundary, where monotonicity is least safe. Usage (GPU machine, after a probe study):
    python bench/search_cost_gpu.py --results results/probe [--budget-s 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchlib import open_device, stamp, write_json
from search_cost import backoff_09, doubling_bisection

from gpupair_search.launcher.devices import DeviceRequest
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import RunOptions, with_batch_sizes
from gpupair_search.search.engine.executors import DeviceExecutor
from gpupair_search.search.engine.stored_study import open_results
from gpupair_search.search.policy.planner import DOES_NOT_FIT, FITS_REDUCED
from gpupair_search.search.record.trial_record import pair_peak_mib

Config = tuple


class Undecided(Exception):
    pass


class Oracle:
    """Feasibility of a pair's configurations: measured, or inferred by monotonicity when allowed."""

    def __init__(self, measured: dict[Config, bool]) -> None:
        self.known = {c: (ok, "study") for c, ok in measured.items()}

    def infer(self, config: Config) -> bool | None:
        def le(a, b):
            return all(x is None or y is None or x <= y for x, y in zip(a, b))

        if any(ok and le(config, c) for c, (ok, _) in self.known.items()):
            return True
        if any(not ok and le(c, config) for c, (ok, _) in self.known.items()):
            return False
        return None

    def answer(self, config: Config, asked: list[tuple[Config, str]]) -> bool:
        if config in self.known:
            ok, source = self.known[config]
        else:
            ok, source = self.infer(config), "inferred"
            if ok is None:
                raise Undecided(config)
        asked.append((config, source))
        return ok


def replay(method, oracle: Oracle) -> dict:
    asked: list[tuple[Config, str]] = []
    try:
        trials, found = method(lambda c: oracle.answer(c, asked))
    except Undecided as exc:
        return {"trials": None, "undecided": list(exc.args[0]), "asked": asked}
    return {
        "trials": trials,
        "found": found,
        "asked": asked,
        "sources": {s: sum(1 for _, src in asked if src == s) for s in ("study", "gpu", "inferred")},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, required=True, help="the probe study's --results directory")
    parser.add_argument("--study", default="feasibility")
    parser.add_argument(
        "--budget-s", type=float, default=200.0, help="GPU time for configurations the study did not measure"
    )
    args = parser.parse_args()
    fs = open_results(args.study, None, None, args.results, "gpu", None, None, False)
    plans = [p for p in fs.plans() if p.verdict in (FITS_REDUCED, DOES_NOT_FIT)]
    device = executor = None  # opened at the first configuration to run: --budget-s 0 replays without a GPU
    ends = time.monotonic() + args.budget_s
    out: dict[str, dict] = {}
    try:
        for i, plan in enumerate(plans):
            deadline = time.monotonic() + max(0.0, ends - time.monotonic()) / (len(plans) - i)  # a fair share each
            floor, grid = fs.settings.extension.floor, fs.settings.extension.grid  # the study's own candidates
            measured = {v.config: bool(v.feasible) for v in plan.trials if v.feasible is not None}
            oracle = Oracle(measured)
            methods = {
                "doubling+bisection": lambda fits, o=plan.original, g=grid: doubling_bisection(o, fits, g),
                "x0.9 back-off": lambda fits, o=plan.original, g=grid, f=floor: backoff_09(o, fits, g, f),
            }
            # which configurations the baselines ask for (decided by inference for now), largest first
            wanted = {c for m in methods.values() for c, src in replay(m, oracle)["asked"] if src == "inferred"}
            runs = []
            for config in sorted(wanted, key=lambda c: tuple(-(x or 0) for x in c)):
                if time.monotonic() >= deadline:
                    break
                if executor is None:
                    device = open_device("cuda:0", DeviceRequest(card_mib=fs.settings.card_mib))
                    executor = DeviceExecutor(
                        fs.registry, device, RunOptions(probe=True), args.results / "search_cost_gpu"
                    )
                result = executor.run(with_batch_sizes(plan.pair, fs.registry, *config), len(runs))
                peak = pair_peak_mib(result)
                ok = result.outcome is Outcome.OK and peak <= fs.settings.safe_limit_mib
                inferred = oracle.infer(config)
                oracle.known[config] = (ok, "gpu")
                runs.append(
                    {
                        "config": list(config),
                        "outcome": result.outcome.value,
                        "peak_mib": round(peak, 1),
                        "feasible": ok,
                        "monotonicity_predicted": inferred,
                        "wall_s": round(sum(result.phase_seconds.values()), 1),
                    }
                )
                print(plan.pair.key, runs[-1], flush=True)
            rows = {name: replay(m, oracle) for name, m in methods.items()}
            truth = plan.recommended
            for row in rows.values():
                if row.get("trials") is not None:
                    row["found_largest"] = (tuple(row["found"]) if row["found"] else None) == truth
            out[plan.pair.key] = {
                "original": list(plan.original),
                "largest_safe": list(truth) if truth else None,
                "ours": {"trials": plan.extension_trials, "source": "study (GPU)"},
                **rows,
                "gpu_runs": runs,
            }
    finally:
        if device is not None:
            device.close()
    summary = {}
    for name in ("ours", "doubling+bisection", "x0.9 back-off"):
        counts = [r[name]["trials"] for r in out.values() if r[name].get("trials") is not None]
        summary[name] = {
            "mean_trials": round(statistics.mean(counts), 2) if counts else None,
            "n": len(counts),
            "found_largest": sum(1 for r in out.values() if r[name].get("found_largest", name == "ours")),
        }
    path = write_json(
        "search_cost_gpu.json",
        {
            **stamp(),
            "device": device.describe() if device else None,
            "study": str(args.results),
            "pairs": out,
            "summary": summary,
        },
    )
    print(summary, "->", path)


if __name__ == "__main__":
    main()
