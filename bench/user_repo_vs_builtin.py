#!/usr/bin/env python3
"""The 12 seed groups as a user's repositories against the built-in study: verdicts, peaks and wall time.

    python3 bench/user_repo_vs_builtin.py [--device auto|cuda:0|cpu] [--groups g01,g02] [--out DIR]

In one process, one device, one after the other:

(a) the README's main command as typed, ``gpupair-search run --study feasibility`` (its results and storage in a
    temporary directory); with ``--groups`` the named study can't be cut, so (a) is then ``run --settings`` of those
    groups of the bundled file with the named study's card, limit and probe steps;
(b) the same groups as a user's project (bench/user_repo_groups.py): each job a ``train.sh`` that starts the
    built-in as a fresh process, run from the project's root with its models file, the same card and limit, and
    the probe steps (a) stored (``--user-probe-steps default`` leaves them to the tool, as a user would).

Written to DIR (default $OUT, else results/bench): ``user_repo_vs_builtin.json`` and ``.md``: both wall times and
their ratio (target <= 2), each pair's verdict and recommended batch sizes side by side, each job's peak in every
configuration both measured and their relative difference (target <= 2%), the median per-trial time outside the
jobs where the trial records carry it, (a)'s wall time against the README's 75 s, and the simulated prediction of
the same groups from the shipped profiles (labelled SIMULATED) as a cross-check of (a)'s verdicts.
On ``--device cpu`` both runs measure host memory, and built-ins start cold there too (warm start is the GPU's);
``--device sim`` runs no job at all (both studies are predicted) and only checks the bench end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import out_dir, stamp  # noqa: E402
from user_repo_groups import parse_groups, seed_groups, write_project  # noqa: E402

from gpupair_search.launcher.sizes import format_mib  # noqa: E402
from gpupair_search.search.engine.stored_study import open_results  # noqa: E402
from gpupair_search.settings import bundled  # noqa: E402
from gpupair_search.studies import get_study  # noqa: E402

RATIO_TARGET = 2.0
PEAK_TARGET = 0.02
README_TARGET_S = 75.0
OUTSIDE_TARGET_S = 1.5
NAMED = "feasibility"
GRACE_S = 15.0


def cli() -> list[str]:
    """``gpupair-search`` as installed beside this interpreter (the command a user types), else its module."""
    script = Path(sys.executable).parent / "gpupair-search"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gpupair_search.search.cli.app"]


def timed(argv: list[str], cwd: Path, log: Path, timeout_s: float) -> dict[str, Any]:
    """Run ``argv``; its wall time, exit status, and the last lines of its output (all of it in ``log``). Past
    ``timeout_s`` it gets Ctrl-C, as a user would press it (the runner then ends its jobs and records what it
    measured), and is killed only if it has not ended ``GRACE_S`` later."""
    start = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        try:
            rc = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            rc = None
    wall = time.monotonic() - start
    return {
        "argv": argv,
        "cwd": str(cwd),
        "rc": rc,
        "wall_s": round(wall, 2),
        "timed_out": rc is None,
        "tail": log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:],
    }


def probe_steps_choice(text: str) -> str:
    if text in ("same", "default") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: expected same, default or a number of steps >= 1")


def kind_of(device: str) -> str:
    return {"cpu": "cpu", "sim": "simulated"}.get(device, "gpu")


def seed_key(key: str, groups: tuple[int, ...] | None) -> str:
    """A pair key of a file of ``groups`` (numbered from 1 by position) under the seed's group number."""
    if not groups or not key.startswith("g") or ":" not in key:
        return key
    number, _, rest = key.partition(":")
    return f"g{groups[int(number[1:]) - 1]:02d}:{rest}"


def read_study(
    results: Path,
    storage: str,
    kind: str,
    study: str | None,
    settings: Path | None = None,
    models: Path | None = None,
    repos_root: Path | None = None,
    groups: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """What the stored study says: verdicts, each measured configuration's peaks, trial count, times outside;
    pairs named by their seed group (``groups``: the seed groups the settings file holds, in order)."""
    fs = open_results(study, settings, storage, results, kind, models, repos_root, False)
    verdicts = {
        seed_key(plan.pair.key, groups): {
            "verdict": plan.verdict.value,
            "recommended": plan.recommended,
            "recommended_peak_mib": plan.recommended_peak_mib,
        }
        for plan in fs.plans()
    }
    peaks: dict[str, dict[str, Any]] = {}
    outside = []
    measured = 0
    phases: dict[str, float] = {}
    starts: dict[str, int] = {}
    ready_by: dict[str, int] = {}  # what made each trial's background ready, and in how many trials
    for v in fs.views():
        record = v.record.measured
        if not v.measured or record is None:
            continue
        measured += 1
        for phase, seconds in record.phase_seconds.items():
            phases[phase] = round(phases.get(phase, 0.0) + float(seconds), 2)
        for how in record.job_start.values():
            starts[how] = starts.get(how, 0) + 1
        if record.background_ready_by:
            ready_by[record.background_ready_by] = ready_by.get(record.background_ready_by, 0) + 1
        if record.outside_jobs_s is not None:
            outside.append(record.outside_jobs_s)
        memory = record.memory
        if v.state.name == "COMPLETE" and memory is not None:
            peaks.setdefault(
                f"{seed_key(v.pair_key, groups)} {v.fg_batch}/{v.bg_batch}",
                {
                    "foreground": memory.foreground_peak_mib,
                    "background": memory.background_peak_mib,
                    "outcome": v.outcome,
                },
            )
    definition = fs.definition
    walls = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in fs.study.get_trials(deepcopy=False)
        if t.datetime_start and t.datetime_complete
    ]
    return {
        "study": fs.settings.name,
        "verdicts": verdicts,
        "peaks": peaks,
        "measured_trials": measured,
        "trial_wall_s_total": round(sum(walls), 2),
        "trial_wall_s_median": round(statistics.median(walls), 2) if walls else None,
        "phase_seconds_total": phases,
        "job_starts": starts,
        "background_ready_by": ready_by,
        "probe_steps": definition.probe_steps if definition else None,
        "baselines": definition.baselines if definition else None,
        "min_window_s": definition.min_window_s if definition else None,
        "outside_jobs_s": outside,
        "outside_jobs_median_s": statistics.median(outside) if outside else None,
    }


def stored(run: dict[str, Any], read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The study as stored, also after a run that failed or was stopped (what it measured until then, marked
    partial); empty where nothing could be read."""
    try:
        study = read()
    except Exception as exc:  # noqa: BLE001 - a run that stored nothing: say why, compare nothing
        return {"unreadable": f"{type(exc).__name__}: {exc}"}
    return {**study, "partial": run["rc"] != 0}


def compare_peaks(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Each job's peak in every configuration both studies measured, and (b - a) / a."""
    rows = []
    for config in sorted(a.keys() & b.keys()):
        for role in ("foreground", "background"):
            pa, pb = a[config][role], b[config][role]
            if pa is None or pb is None:
                continue
            rel = (pb - pa) / pa if pa > 0 else (0.0 if pb == 0 else None)
            rows.append(
                {
                    "config": config,
                    "role": role,
                    "builtin_mib": pa,
                    "user_mib": pb,
                    "rel_diff": None if rel is None else round(rel, 4),
                    "within_target": rel is not None and abs(rel) <= PEAK_TARGET,
                }
            )
    return rows


def compare_verdicts(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "pair": key,
            "builtin": [a[key]["verdict"], a[key]["recommended"]],
            "user": [b[key]["verdict"], b[key]["recommended"]] if key in b else None,
            "same": key in b
            and (a[key]["verdict"], a[key]["recommended"]) == (b[key]["verdict"], b[key]["recommended"]),
        }
        for key in a
    ]


def simulated_reference(work: Path, settings: Path | None, groups: tuple[int, ...]) -> dict[str, Any]:
    """The same groups on the simulated device (shipped profiles): a cross-check of (a)'s verdicts, labelled so."""
    results = work / "simulated"
    results.mkdir(parents=True, exist_ok=True)
    argv = [*cli(), "run", "--device", "sim", "--results", str(results)]
    argv += ["--study", NAMED] if settings is None else ["--settings", str(settings)]
    run = timed(argv, work, work / "simulated.log", 300)
    if run["rc"] != 0:
        return {"run": run}
    study = read_study(
        results,
        f"sqlite:///{results / 'gpupair.db'}",
        "simulated",
        NAMED if settings is None else None,
        settings,
        groups=groups,
    )
    return {"run": run, "verdicts": study["verdicts"]}


def markdown(data: dict[str, Any]) -> str:
    a, b, label = data["builtin"], data["user"], data["device_label"]
    lines = [
        f"# The seed groups as a user's repositories against the built-in study ({label})",
        "",
        f"{data['date']}, device `{data['device']}`, groups {', '.join(data['groups'])}",
        "",
        "Commands as typed; each also got the bench's --device (unless auto), --results and --storage, and (b) "
        "--repos-root (the JSON has every argv).",
        "",
        "| run | command | exit | wall s | trials measured | sum of trial walls s | job starts | background ready by "
        "| probe steps | median outside the jobs s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in (("built-in (a)", a), ("user repo (b)", b)):
        outside = run["study"].get("outside_jobs_median_s") if run.get("study") else None
        lines.append(
            f"| {name} | `{' '.join(run['shown'])}` | {run['run']['rc']} | {run['run']['wall_s']} | "
            f"{run.get('study', {}).get('measured_trials', '-')} | "
            f"{run.get('study', {}).get('trial_wall_s_total', '-')} | {run.get('study', {}).get('job_starts', '-')} | "
            f"{run.get('study', {}).get('background_ready_by', '-')} | {run.get('study', {}).get('probe_steps', '-')} "
            f"| {'not recorded' if outside is None else round(outside, 3)} |"
        )
    s = data["summary"]
    lines += [
        "",
        f"- both runs completed: {s['both_completed']} (a run stopped at --timeout-s is read as far as it got)",
        f"- wall-time ratio user/built-in: **{s['ratio']}** (target <= {RATIO_TARGET}: {s['ratio_ok']})",
        f"- verdicts equal: **{s['verdicts_equal']}**; per-job peaks within {PEAK_TARGET:.0%}: "
        f"**{s['peaks_within_target']}** (largest |difference| {s['max_abs_peak_rel_diff']})",
        f"- README main command as typed: {s['readme_command']}",
        f"- median time outside the jobs per trial: built-in {s['outside_builtin']}, user {s['outside_user']} "
        f"(target <= {OUTSIDE_TARGET_S} s)",
        f"- SIMULATED prediction (shipped profiles) agrees with (a)'s verdicts: {s['simulated_agrees']}",
        "",
        "| pair | built-in verdict (recommended) | user verdict (recommended) | same |",
        "|---|---|---|---|",
    ]
    for row in data["verdicts"]:
        lines.append(f"| {row['pair']} | {row['builtin']} | {row['user']} | {row['same']} |")
    lines += ["", "| configuration | job | built-in peak | user peak | difference |", "|---|---|---|---|---|"]
    for row in data["peaks"]:
        diff = "-" if row["rel_diff"] is None else f"{row['rel_diff']:+.2%}"
        lines.append(
            f"| {row['config']} | {row['role']} | {format_mib(row['builtin_mib'])} | "
            f"{format_mib(row['user_mib'])} | {diff} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (the typed command's default), cuda:N, cpu, or sim (checks the bench itself: nothing runs)",
    )
    parser.add_argument(
        "--groups",
        help="a subset of the seed groups, e.g. g01,g02 (default: all 12, and (a) is the named study as typed)",
    )
    parser.add_argument("--out", type=Path, help="where the JSON and the table go (default: $OUT, else results/bench)")
    parser.add_argument(
        "--work",
        type=Path,
        help="where the project and both studies are kept (default: a temporary directory, removed at the end)",
    )
    parser.add_argument(
        "--user-probe-steps",
        default="same",
        type=probe_steps_choice,
        help="same: (b) probes as many steps as (a) stored; default: the tool's for a settings file",
    )
    parser.add_argument(
        "--user-start",
        choices=("auto", "cold"),
        default="auto",
        help="(b)'s --start: auto (the default a user gets: jobs started ahead and held, on a GPU) or cold "
        "(each job started when its trial needs it)",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=440.0,
        help="(b)'s limit; it is then stopped with Ctrl-C and read as far as it got (default 440, so "
        "that the whole call fits 10 minutes)",
    )
    parser.add_argument("--builtin-timeout-s", type=float, default=150.0, help="(a)'s limit (default 150)")
    args = parser.parse_args(argv)
    total = len(json.loads(bundled("parallel_feasibility_test.json").read_text(encoding="utf-8"))["experiments"])
    groups = parse_groups(args.groups, total)
    subset = len(groups) < total
    out = args.out or out_dir()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="user_repo_vs_builtin_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = compare(
            work,
            groups,
            subset,
            args.device,
            args.user_probe_steps,
            args.builtin_timeout_s,
            args.timeout_s,
            args.user_start,
        )
    data.update(stamp())
    (out / "user_repo_vs_builtin.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "user_repo_vs_builtin.md").write_text(markdown(data), encoding="utf-8")
    print(markdown(data))
    ok = data["builtin"]["run"]["rc"] == 0 and data["user"]["run"]["rc"] == 0
    return 0 if ok else 1


def compare(
    work: Path,
    groups: tuple[int, ...],
    subset: bool,
    device: str,
    user_probe_steps: str,
    builtin_timeout_s: float,
    timeout_s: float,
    user_start: str = "auto",
) -> dict[str, Any]:
    named = get_study(NAMED)
    kind = kind_of(device)
    device_flags = [] if device == "auto" else ["--device", device]
    card = ["--gpu-memory", f"{named.card_mib:.0f}MiB", "--safe-limit", f"{named.safe_limit_mib:.0f}MiB"]
    warm_up = timed([sys.executable, "-c", "import torch"], work, work / "import_torch.log", 300)

    # (a) the built-in study: the named study as typed, or the chosen groups of its settings file
    a_results = work / "builtin"
    a_results.mkdir(parents=True, exist_ok=True)  # a --storage file's directory must exist
    a_storage = f"sqlite:///{a_results / 'gpupair.db'}"
    builtin_settings = None
    if subset:
        builtin_settings = work / "builtin_groups.json"
        body = seed_groups(groups, "builtin_groups", "the built-in workloads")
        builtin_settings.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
        a_typed = ["run", "--settings", str(builtin_settings), *card, "--probe-steps", str(named.defaults.probe_steps)]
    else:
        a_typed = ["run", "--study", NAMED]
    a_argv = [*cli(), *a_typed, *device_flags, "--results", str(a_results), "--storage", a_storage]
    a_run = timed(a_argv, work, work / "builtin.log", builtin_timeout_s)
    a_study = stored(
        a_run,
        lambda: read_study(a_results, a_storage, kind, None if subset else NAMED, builtin_settings, groups=groups),
    )

    # (b) the same groups as a user's repositories, from the project's root
    project = write_project(work / "project", groups)
    b_results = work / "user_results"
    b_results.mkdir(parents=True, exist_ok=True)
    b_storage = f"sqlite:///{b_results / 'gpupair.db'}"
    steps = (
        []
        if user_probe_steps == "default"
        else [
            "--probe-steps",
            str(
                a_study.get("probe_steps") or named.defaults.probe_steps
                if user_probe_steps == "same"
                else int(user_probe_steps)
            ),
        ]
    )
    start = [] if user_start == "auto" else ["--start", user_start]
    b_typed = ["run", "--settings", str(project.settings), "--models", str(project.models), *card, *steps, *start]
    b_argv = [
        *cli(),
        *b_typed,
        *device_flags,
        "--repos-root",
        str(project.root),
        "--results",
        str(b_results),
        "--storage",
        b_storage,
    ]
    b_run = timed(b_argv, project.root, work / "user.log", timeout_s)
    b_study = stored(
        b_run,
        lambda: read_study(
            b_results,
            b_storage,
            kind,
            None,
            project.root / project.settings,
            project.root / project.models,
            project.root,
            groups,
        ),
    )

    # the shipped profiles are GPU memory: a cross-check of GPU verdicts only
    reference = simulated_reference(work, builtin_settings, groups) if kind == "gpu" else {"skipped": "not a GPU study"}
    verdicts = compare_verdicts(a_study.get("verdicts", {}), b_study.get("verdicts", {}))
    peaks = compare_peaks(a_study.get("peaks", {}), b_study.get("peaks", {}))
    diffs = [abs(r["rel_diff"]) for r in peaks if r["rel_diff"] is not None]
    ratio = round(b_run["wall_s"] / a_run["wall_s"], 2) if a_run["wall_s"] else None
    on_gpu = kind == "gpu"
    readme = (
        f"{a_run['wall_s']} s, exit {a_run['rc']} (target <= {README_TARGET_S:.0f} s on one H100 or H200: "
        f"{a_run['rc'] == 0 and a_run['wall_s'] <= README_TARGET_S})"
        if not subset and on_gpu
        else f"not measured here ({'a subset of the groups' if subset else 'not a GPU'}): (a) took {a_run['wall_s']} s"
    )
    simulated = reference.get("verdicts")
    label = {
        "gpu": "GPU",
        "cpu": "CPU: host memory, both runs start their jobs cold",
        "simulated": "SIMULATED: no job runs, both studies predicted from the shipped profiles",
    }[kind]

    def median_words(study: dict[str, Any]) -> str:
        value = study.get("outside_jobs_median_s")
        return "not recorded" if value is None else f"{value:.3f} s"

    return {
        "device": device,
        "device_label": label,
        "groups": [f"g{g:02d}" for g in groups],
        "import_torch_first": warm_up["wall_s"],
        "builtin": {"shown": ["gpupair-search", *a_typed], "run": a_run, "study": a_study},
        "user": {
            "shown": ["gpupair-search", *b_typed],
            "run": b_run,
            "study": b_study,
            "project": {"models": str(project.models), "settings": str(project.settings)},
        },
        "verdicts": verdicts,
        "peaks": peaks,
        "simulated_reference": reference,
        "summary": {
            "builtin_wall_s": a_run["wall_s"],
            "user_wall_s": b_run["wall_s"],
            "ratio": ratio,
            "both_completed": a_run["rc"] == 0 and b_run["rc"] == 0,
            "ratio_ok": a_run["rc"] == 0 and b_run["rc"] == 0 and ratio is not None and ratio <= RATIO_TARGET,
            "verdicts_equal": bool(verdicts) and all(r["same"] for r in verdicts),
            "peaks_within_target": bool(peaks) and all(r["within_target"] for r in peaks),
            "max_abs_peak_rel_diff": max(diffs, default=None),
            "readme_command": readme,
            "outside_builtin": median_words(a_study),
            "outside_user": median_words(b_study),
            "simulated_agrees": None
            if not simulated or not a_study.get("verdicts")
            else all(
                (simulated.get(k) or {}).get("verdict") == v["verdict"]
                and (simulated.get(k) or {}).get("recommended") == v["recommended"]
                for k, v in a_study.get("verdicts", {}).items()
            ),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
