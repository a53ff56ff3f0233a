"""The user's runner's selection and settings logic (seed_runner.py, ``run_from_experiment_config``), written for
the tests as their oracle, and the same summary of our own reading, so that a test compares the two."""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass
from typing import Any


# -- the oracle: what the user's runner runs, how often, with which retries and governor ----------------------
@dataclass(frozen=True)
class Reading:
    runs: collections.Counter
    max_retries: Any
    governor: Any


def runner_reading(settings: dict[str, Any], models: dict[str, Any]) -> Reading:
    """``runs``: (mode, foreground, foreground mode, its hyperparameters or the names it mutates, background,
    background hyperparameters) -> number of runs. An entry the runner fails on (``exp["repo"]`` of a pair read
    as mutation, a separator) is skipped, as its ``except Exception: continue`` skips it."""

    def known(repo: str, model: str) -> bool:
        return repo in models and model in models[repo]["models"]

    def frozen(hyper: dict) -> tuple:
        return tuple(sorted(hyper.items()))

    def mutated(repo: str, job: dict) -> tuple:
        names = job.get("mutate", ["all"])
        supported = models[repo]["supported_hyperparams"]
        return ("mutate",) + tuple(sorted(supported if "all" in names else [n for n in names if n in supported]))

    def drawn(repo: str, job: dict, count: int) -> int:
        """generate_mutations: distinct draws only, never the defaults; small integer spaces counted by listing
        them (a float or a large space is no limit)."""
        specs = [models[repo]["supported_hyperparams"][n] for n in mutated(repo, job)[1:]]
        if any(spec["type"] != "int" for spec in specs):
            return count
        ranges = [range(spec["range"][0], spec["range"][1] + 1) for spec in specs]
        if math.prod(len(r) for r in ranges) > 10**5:
            return count
        defaults = tuple(spec.get("default") for spec in specs)
        return min(count, sum(1 for values in itertools.product(*ranges) if values != defaults))

    runs: collections.Counter = collections.Counter()
    file_runs = settings.get("runs_per_config", 1)
    file_mode = settings.get("mode", "mutation")
    for exp in settings.get("experiments", []):
        mode = exp.get("mode", file_mode)
        try:
            if mode == "parallel":
                fg, bg = exp.get("foreground", {}), exp.get("background", {})
                if not fg or not bg:
                    continue
                fg_repo, fg_model, fg_mode = fg["repo"], fg["model"], fg.get("mode", "mutation")
                bg_repo, bg_model = bg["repo"], bg["model"]
                if not known(fg_repo, fg_model) or not known(bg_repo, bg_model):
                    continue
                count = exp.get("runs_per_config", fg.get("runs_per_config", file_runs))
                values = mutated(fg_repo, fg) if fg_mode == "mutation" else frozen(fg.get("hyperparameters", {}))
                count = drawn(fg_repo, fg, count) if fg_mode == "mutation" else count
                runs[
                    (
                        "parallel",
                        f"{fg_repo}/{fg_model}",
                        "mutation" if fg_mode == "mutation" else "default",
                        values,
                        f"{bg_repo}/{bg_model}",
                        frozen(bg.get("hyperparameters", {})),
                    )
                ] += count
            elif mode == "default":
                repo, model = exp["repo"], exp["model"]
                if known(repo, model):
                    runs[
                        ("default", f"{repo}/{model}", "default", frozen(exp.get("hyperparameters", {})), None, None)
                    ] += exp.get("runs_per_config", file_runs)
            else:  # every other mode word, known or not, is mutation
                repo, model = exp["repo"], exp["model"]
                if known(repo, model):
                    runs[("mutation", f"{repo}/{model}", "mutation", mutated(repo, exp), None, None)] += drawn(
                        repo, exp, exp.get("runs_per_config", file_runs)
                    )
        except Exception:  # noqa: BLE001 - the runner's own handling: "Error running experiment: ..." and go on
            continue
    return Reading(runs, settings.get("max_retries", 2), settings.get("governor"))


def our_runs(pairs) -> collections.Counter:
    """The same Counter from our PairSpecs (each one trial, run ``repeats`` times by the runner)."""
    runs: collections.Counter = collections.Counter()
    for pair in pairs:
        case = pair.worst_case.get("foreground")
        fg_mode = "mutation" if case else "default"
        values = (
            ("mutate",) + tuple(sorted(case["values"]))
            if case
            else tuple(sorted(pair.foreground.hyperparameters.items()))
        )
        if pair.background is None:
            key = (fg_mode, pair.foreground.key, fg_mode, values, None, None)
        else:
            key = (
                "parallel",
                pair.foreground.key,
                fg_mode,
                values,
                pair.background.key,
                tuple(sorted(pair.background.hyperparameters.items())),
            )
        runs[key] += pair.repeats
    return runs
