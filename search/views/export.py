"""Export the verified-safe pairs of a study as a settings file in the seed's format.

The point is to hand the seed's own runner only what was measured to fit: each safe pair at its largest
verified batch sizes, ordered by risk class (docs/concepts/outcomes-and-verdicts.md), with the gradient-accumulation
factor that keeps the original effective batch size. The seed's runner silently drops hyperparameters
its models file does not list, so a reduced ``batch_size`` could be ignored without a word: every
hyperparameter the target models file lacks is warned about and written to a ``.models_additions.json``
next to the output. The result is read back with our loader (the runner's meaning) before it is written.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.experiments import keys_not_read, load_experiment, top_keys_not_read
from gpupair_search.launcher.jsonfile import read_json, read_json_with_duplicates
from gpupair_search.launcher.registry import BATCH_SIZE, Registry
from gpupair_search.launcher.results import atomic_write
from gpupair_search.launcher.sizes import format_mib, parse_size_mib
from gpupair_search.launcher.spec import JobConfig, StudyKind
from gpupair_search.search.engine.interference import figures_by_trial, worth_a_note
from gpupair_search.search.policy.batch_grid import BatchGrid
from gpupair_search.search.policy.extension import Config
from gpupair_search.search.policy.planner import PairPlan
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.record.trial_record import PACKED
from gpupair_search.search.views.console import caveats

# -- risk classes (docs/concepts/outcomes-and-verdicts.md: the 12-group design's bounds on an 8 GB card), scaled to the card --
RISK_CLASSES = ("stable", "usable", "high risk")
_SEED_CARD_MIB = 8192.0
_SEED_BOUNDS_MIB = (3000.0, 4000.0)  # stable < 3000 MB <= usable <= 4000 MB < high risk


def risk_bounds(card_mib: float) -> tuple[float, float]:
    """The seed's 3000 / 4000 MB bounds for 8 GB, as the same fractions of ``card_mib``."""
    return tuple(b * card_mib / _SEED_CARD_MIB for b in _SEED_BOUNDS_MIB)  # type: ignore[return-value]


def risk_words(card_mib: float) -> str:
    """Why a pair is in its class, for every view that shows one: the classes go by the pair's peak on the card,
    not by its margin to the safe limit, so a pair with thousands of MiB of margin can be "high risk"."""
    low, high = risk_bounds(card_mib)
    return (
        f"risk classes go by the pair's peak, not its margin: stable under {low:,.0f} MiB, usable up to "
        f"{high:,.0f} MiB, high risk above (the seed design's 3000 and 4000 MB of an 8 GB card, scaled to "
        f"this {card_mib:,.0f} MiB card)"
    )


def risk_reason(peak_mib: float, card_mib: float) -> str:
    """``peak above 4,000 MiB``: where the peak stands against its class's bound."""
    low, high = risk_bounds(card_mib)
    if peak_mib < low:
        return f"peak under {low:,.0f} MiB"
    return f"peak {'up to' if peak_mib <= high else 'above'} {high:,.0f} MiB"


def risk_class(peak_mib: float, card_mib: float) -> str:
    low, high = risk_bounds(card_mib)
    return RISK_CLASSES[0] if peak_mib < low else RISK_CLASSES[1] if peak_mib <= high else RISK_CLASSES[2]


# -- choosing each pair's configuration -------------------------------------------------------------------
@dataclass(frozen=True)
class SafeChoice:
    config: Config
    peak_mib: float
    trial_number: int


def safe_choice(plan: PairPlan, limit_mib: float) -> SafeChoice | None:
    """The largest verified configuration whose measured peak is at most ``limit_mib``: the plan's
    recommendation when it qualifies, else the first qualifying measured point down the reduction path
    (a --margin can rule out the recommendation while a smaller measured configuration still passes)."""
    if not plan.verdict.is_safe:
        return None
    order = [plan.original, *plan.path]
    rank = {config: i for i, config in enumerate(order)}
    verified = [
        t for t in plan.trials if t.feasible and t.peak_mib is not None and t.peak_mib <= limit_mib and t.config in rank
    ]
    verified.sort(key=lambda t: t.mode == PACKED)  # of one configuration, the trial alone on the card is the one
    if (
        plan.recommended is not None
        and plan.recommended_peak_mib is not None
        and plan.recommended_peak_mib <= limit_mib
    ):
        trial = next((t for t in verified if t.config == plan.recommended), None)
        if trial is not None:
            return SafeChoice(plan.recommended, plan.recommended_peak_mib, trial.number)
    if not verified:
        return None
    best = min(verified, key=lambda t: (rank[t.config], t.mode == PACKED, t.peak_mib))
    return SafeChoice(best.config, best.peak_mib, best.number)


_ROLES = ("foreground", "background")


def accumulation(original: Config, chosen: Config, grid: BatchGrid = BatchGrid.ANY) -> dict[str, int]:
    """Gradient-accumulation steps per job with a batch-size knob, when any job's batch size was reduced ({}
    when none was): configured // micro-batch, exact, on the ``divisors`` grid; ceil(configured / micro-batch)
    on ``any``, where no count may give the configured batch exactly."""
    factors = {}
    for role, before, after in zip(_ROLES, original, chosen):
        if before is not None and after is not None:
            factors[role] = grid.accumulation_steps(before, after)
    return factors if any(f > 1 for f in factors.values()) else {}


def accumulation_words(original: Config, chosen: Config, grid: BatchGrid = BatchGrid.ANY) -> list[str]:
    """What each reduced job trains with, in words: whether micro-batch × steps is the configured batch."""
    words = []
    for role, steps in accumulation(original, chosen, grid).items():
        micro, before = chosen[_ROLES.index(role)], original[_ROLES.index(role)]
        if steps <= 1 or micro is None or before is None:
            continue
        if micro * steps == before:
            words.append(f"{role} batch {micro} ×{steps} accumulation steps = {before} as configured")
        else:
            words.append(f"{role} ×{steps} (effective batch {micro * steps}, was {before})")
    return words


# -- the export -----------------------------------------------------------------------------------------
#: The top-level keys export always writes: text the runner only prints. Every other top-level key is the source
#: file's, unchanged (``governor``, ``max_retries``, ``mode``, ...): one the source lacks would change what the
#: runner does (its ``max_retries`` default is 2, and it sets no governor unless told).
_TEXT_TOP = ("experiment_name", "description")


@dataclass
class Export:
    settings: dict[str, Any]
    additions: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)
    unsafe: int = 0


def build_export(fs, target_models: Path, margin_mib: float = 0.0) -> Export:
    """The settings file of ``fs``'s safe pairs, for the runner that uses ``target_models``."""
    limit, card = fs.settings.safe_limit_mib, fs.settings.card_mib
    if margin_mib >= limit:
        raise UserError(
            f"--margin {format_mib(margin_mib)}: it is not under the study's safe limit "
            f"({format_mib(limit)}), so no pair could pass; give a margin under it, e.g. 200MiB"
        )
    raw = _raw_settings(fs.experiment.file)
    target_raw = read_json(Path(target_models), "models file")
    study_raw = _raw_models(fs.registry)
    target = Registry.load(Path(target_models), base_dir=Path(target_models).parent, require_paths=False)
    entries: list[tuple[int, int, dict[str, Any]]] = []
    unsafe: list[dict[str, Any]] = []
    additions: dict[str, Any] = {}
    warnings: list[str] = []
    classes = {name: 0 for name in RISK_CLASSES}
    figures = figures_by_trial(fs.views())
    for plan in fs.plans():
        choice = safe_choice(plan, limit - margin_mib)
        if choice is None:
            unsafe.append(_unsafe_entry(plan, limit, margin_mib))
            continue
        cls = risk_class(choice.peak_mib, card)
        classes[cls] += 1
        entry, jobs = _entry(
            plan,
            choice,
            raw,
            cls,
            limit,
            margin_mib,
            warnings,
            fs.settings.extension.grid,
            kind=fs.kind,
            why=risk_reason(choice.peak_mib, card),
        )
        found = figures.get(choice.trial_number)
        if found is not None and worth_a_note(found):
            entry["note"] += f"; {found.summary()}"
        for caveat in caveats(plan):  # written where the pair is, and said now: a safe pair is never read without
            entry["note"] += f"; warning: {caveat}"
            warnings.append(f"g{plan.pair.group:02d} is exported with a warning of its measurements: {caveat}")
        for job in jobs:
            _check_job(job, target, target_raw, study_raw, fs.registry, Path(target_models), additions, warnings)
        entries.append((RISK_CLASSES.index(cls), plan.pair.group, entry))
    if not entries:
        reasons = "\n".join(f"  G{u['group']}: {u['reason']}" for u in unsafe)
        raise UserError(
            f"no pair of study '{fs.settings.name}' is verified safe under "
            f"{limit - margin_mib:,.0f} MiB; nothing to export:\n{reasons}"
        )
    settings = _top_level(raw, fs, margin_mib, warnings)
    source = settings.pop("_exported_from")
    settings["experiments"] = [e for _, _, e in sorted(entries, key=lambda x: (x[0], x[1]))]
    settings["_unsafe_pairs"] = unsafe
    settings["_exported_from"] = source
    result = Export(
        settings,
        {"_comment": _ADDITIONS_COMMENT, "models": additions} if additions else None,
        warnings,
        classes,
        len(unsafe),
    )
    _self_check(result, target_raw, Path(target_models))
    return result


_ADDITIONS_COMMENT = (
    "Entries to merge into the models file the exported settings run with: without them the seed's "
    "runner silently drops these hyperparameters (a reduced batch_size would be ignored). Flags are "
    "copied from the models file the study ran with: check that each training script accepts them."
)


def _raw_settings(path: Path) -> dict[str, Any]:
    """The settings file's own shape. The study's load has judged its repeated keys already, in the study's
    mode; here, as for json and the seed's runner, the last value of each is the one."""
    data, _ = read_json_with_duplicates(Path(path), "settings file")
    return data if isinstance(data, dict) else {}


def _raw_models(registry: Registry) -> dict[str, Any]:
    try:
        data = read_json(Path(registry.file), "models file")
    except UserError:
        return {}
    return data.get("models", {}) if isinstance(data, dict) else {}


def _top_level(raw: dict[str, Any], fs, margin_mib: float, warnings: list[str]) -> dict[str, Any]:
    unread = top_keys_not_read(raw)
    if unread:  # bookkeeping such as expected_experiments would be stale in a file of other experiments
        warnings.append(
            f"{', '.join(unread)}: read neither by the seed's runner nor by gpupair-search; left out of the export"
        )
    out = {key: raw.get(key, "") for key in _TEXT_TOP}
    out.update(
        {
            k: v
            for k, v in raw.items()
            if k not in out and k != "experiments" and not k.startswith("_") and k not in unread
        }
    )
    name = str(raw.get("experiment_name", fs.experiment.name))
    limit = fs.settings.safe_limit_mib
    kind = fs.kind
    how = {
        StudyKind.GPU: "measured to stay under",
        StudyKind.CPU: "measured on the CPU (host memory, not GPU memory) to stay under",
        StudyKind.SIMULATED: "SIMULATED (predicted from memory profiles, not measured) to stay under",
    }[kind]
    where = (
        f"a {fs.settings.card_mib:,.0f} MiB host-memory budget"
        if kind == StudyKind.CPU
        else f"a {'simulated ' if kind == StudyKind.SIMULATED else ''}{fs.settings.card_mib:,.0f} MiB card"
    )
    verified = "largest predicted" if kind == StudyKind.SIMULATED else "largest verified"
    out["experiment_name"] = f"{name}_safe_pairs"
    out["description"] = (
        f"Pairs of '{name}' {how} {limit - margin_mib:,.0f} MiB "
        f"(safe limit {limit:,.0f} MiB"
        + (f" minus a {margin_mib:,.0f} MiB margin" if margin_mib else "")
        + f") on {where}, at their {verified} batch sizes; ordered stable, usable, high risk."
    )
    out["_exported_from"] = {
        "study": fs.settings.name,
        "kind": kind,
        "settings_file": str(fs.experiment.file),
        "card_mib": fs.settings.card_mib,
        "safe_limit_mib": limit,
        "margin_mib": margin_mib,
        "exported_at": datetime.now().isoformat(timespec="seconds"),
        "tool": "gpupair-search export",
    }
    return out


def _entry(
    plan: PairPlan,
    choice: SafeChoice,
    raw: dict[str, Any],
    cls: str,
    limit: float,
    margin_mib: float,
    warnings: list[str],
    grid: BatchGrid,
    kind: StudyKind = StudyKind.GPU,
    why: str = "",
) -> tuple[dict[str, Any], list[JobConfig]]:
    """The seed-format entry: the original entry's shape and keys, batch sizes set, note rewritten, and the
    repeat count as the experiment's ``runs_per_config`` (which the runner reads before any other level)."""
    pair = plan.pair
    experiments = raw.get("experiments") if isinstance(raw.get("experiments"), list) else []
    source = experiments[pair.group - 1] if 0 < pair.group <= len(experiments) else None
    entry = (
        copy.deepcopy(source) if isinstance(source, dict) else {"mode": "parallel" if pair.background else "default"}
    )
    jobs = []
    for index, role, job in ((0, "foreground", pair.foreground), (1, "background", pair.background)):
        if job is None:
            continue
        batch = choice.config[index]
        if batch is not None and batch != plan.original[index]:
            job = job.with_hyperparameter(BATCH_SIZE, batch)
        jobs.append(job)
        target = entry if pair.background is None else entry.setdefault(role, {})
        if not isinstance(target, dict):
            target = entry[role] = {}
        reduced = batch is not None and batch != plan.original[index]
        if role in pair.worst_case and not _as_default_job(target, job, reduced, pair, warnings):
            continue
        target.update({"repo": job.repo, "model": job.model, "hyperparameters": dict(job.hyperparameters)})
        if role == "foreground" and pair.background is not None and role not in pair.worst_case:
            target["mode"] = "default"  # it ran as written: say so in the word the runner reads that way
    factors = accumulation(plan.original, choice.config, grid)
    changes = [
        f"{role} batch size {plan.original[i]}→{choice.config[i]}"
        for i, role in enumerate(("foreground", "background"))
        if choice.config[i] is not None and choice.config[i] != plan.original[i]
    ]
    note = (
        f"{cls}: {'predicted' if kind == StudyKind.SIMULATED else 'measured'} peak {choice.peak_mib:,.0f} MiB, margin "
        f"{limit - choice.peak_mib:,.0f} MiB to the {limit:,.0f} MiB limit{_how_measured(plan, choice, kind)}"
    )
    if why:
        note += f"; {cls} because the {why}"
    if changes:
        note += "; " + ", ".join(changes)
    if factors:
        note += "; gradient accumulation " + ", ".join(accumulation_words(plan.original, choice.config, grid))
        entry["gradient_accumulation"] = factors
    origin = pair.note or (pair.foreground.key + (" + " + pair.background.key if pair.background else ""))
    entry["note"] = f"{note} (g{pair.group:02d} {origin})"
    for role, key in keys_not_read(entry, raw.get("mode")):
        (entry if role is None else entry[role]).pop(key)
        warnings.append(
            f"g{pair.group:02d}: {key if role is None else f'{role}.{key}'}: not read by the seed's runner where "
            "it stood, so it changed nothing; left out of the export"
        )
    entry["runs_per_config"] = pair.repeats
    if isinstance(entry.get("foreground"), dict):
        entry["foreground"].pop("runs_per_config", None)  # the experiment's count is the one the runner uses
    return entry, jobs


def _how_measured(plan: PairPlan, choice: SafeChoice, kind: StudyKind) -> str:
    """Where the exported configuration was measured: alone on the card (a packed study confirms what it
    recommends), and whether packed trials went before it; a simulated one was not measured at all."""
    if kind == StudyKind.SIMULATED:
        return "; SIMULATED, not measured"
    trial = next((t for t in plan.trials if t.number == choice.trial_number), None)
    if trial is None or trial.mode is None:
        return ""
    if trial.mode == PACKED:
        return "; measured packed, not confirmed alone"
    card = trial.record.measured.measurement.card_mib if trial.record.measured else None
    where = (
        ""
        if not isinstance(card, (int, float))
        else (
            f" within the {card:,.0f} MiB host-memory budget"
            if kind == StudyKind.CPU
            else f" on the {card:,.0f} MiB card"
        )
    )
    return f"; measured alone{where}" + (", confirming packed trials" if "packed" in plan.measured_as else "")


def _as_default_job(target: dict[str, Any], job: JobConfig, reduced: bool, pair, warnings: list[str]) -> bool:
    """A mutation job stays one (False: leave ``target`` as it is) when its worst case was verified as such; when
    its batch size had to be reduced, the runner would still draw up to the top of the range, so it is written
    as a ``default`` job at the verified values instead (True), with a warning."""
    if not reduced:
        return False
    target["mode"] = "default"
    target.pop("mutate", None)
    warnings.append(
        f"{pair.source}: a mutation job fits only at a reduced batch size, so it is exported as a "
        f'"default" job at the verified values ({job.key}); the seed\'s runner would otherwise draw '
        "batch sizes up to the top of the range"
    )
    return True


def _unsafe_entry(plan: PairPlan, limit: float, margin_mib: float) -> dict[str, Any]:
    peaks = [t.peak_mib for t in plan.trials if t.config == plan.original and t.measured and t.peak_mib is not None]
    peak = peaks[-1] if peaks else None
    if plan.verdict.is_safe:
        reason = (
            f"verified peak {plan.recommended_peak_mib:,.0f} MiB leaves less than the {margin_mib:,.0f} MiB "
            f"margin under the {limit:,.0f} MiB limit, and no smaller verified configuration does"
        )
    elif plan.verdict is Verdict.PENDING and any(t.measured for t in plan.trials) and peak is None:
        reason = (
            f"no trial at its configured batch sizes {plan.original}: the settings or models file changed "
            "since the study ran (batch-size defaults?); run the study again with the current files"
        )
    elif plan.verdict is Verdict.PENDING:
        reason = "not measured yet: run the study to the end"
    else:
        reason = (
            plan.verdict
            + (f": {plan.detail}" if plan.detail else "")
            + (f" (peak at the configured batch sizes {peak:,.0f} MiB)" if peak is not None else "")
        )
    return {
        "group": plan.pair.group,
        "pair": plan.pair.key,
        "verdict": plan.verdict,
        "reason": reason,
        "configured_batch_sizes": {"foreground": plan.original[0], "background": plan.original[1]},
        "measured_peak_mib": peak,
        "note": plan.pair.note,
    }


def _check_job(
    job: JobConfig,
    target: Registry,
    target_raw: Any,
    study_raw: dict[str, Any],
    study: Registry,
    target_file: Path,
    additions: dict[str, Any],
    warnings: list[str],
) -> None:
    """Record in ``additions`` (with a warning) what ``target`` lacks to run ``job`` as exported."""
    repo = target.repositories.get(job.repo)
    if repo is None:
        if job.repo not in additions:
            additions[job.repo] = copy.deepcopy(study_raw.get(job.repo) or _entry_from_registry(study, job.repo))
            warnings.append(
                f"{target_file}: has no repository {job.repo!r}; its whole entry from {study.file} is in "
                "the additions file (check its path against the target runner's layout)"
            )
        return
    if job.model not in repo.models:
        models = additions.setdefault(job.repo, {}).setdefault("models", [])
        if job.model not in models:
            models.append(job.model)
            warnings.append(
                f"{target_file}: repository {job.repo!r} has no model {job.model!r}; added to the additions file"
            )
    for name in job.hyperparameters:
        if name in repo.hyperparameters:
            continue
        specs = additions.setdefault(job.repo, {}).setdefault("supported_hyperparams", {})
        if name in specs:
            continue
        raw_spec = (study_raw.get(job.repo) or {}).get("supported_hyperparams", {}).get(name)
        hp = study.repositories[job.repo].hyperparameters[name] if job.repo in study.repositories else None
        specs[name] = (
            copy.deepcopy(raw_spec)
            if isinstance(raw_spec, dict)
            else (
                {"flag": hp.flag, "type": hp.type, "default": hp.default}
                if hp
                else {"flag": f"--{name}", "type": "str"}
            )
        )
        why = (
            "a reduced batch size would be silently ignored by the seed's runner"
            if name == BATCH_SIZE
            else "the seed's runner would silently drop it"
        )
        warnings.append(
            f"{target_file}: repository {job.repo!r} has no hyperparameter {name!r}: {why}; its entry "
            f"(flag {specs[name].get('flag')!r}, from {study.file}) is in the additions file"
        )


def _entry_from_registry(registry: Registry, name: str) -> dict[str, Any]:
    repo = registry.repositories[name]
    return {
        "path": str(repo.path),
        "train_script": repo.train_script,
        "models": list(repo.models),
        **({"model_flag": repo.model_flag} if repo.model_flag else {}),
        "supported_hyperparams": {
            h.name: {"flag": h.flag, "type": h.type, "default": h.default} for h in repo.hyperparameters.values()
        },
    }


def merge_models(models: dict[str, Any], additions: dict[str, Any] | None) -> dict[str, Any]:
    """``models`` (a models file's data) with ``additions`` merged in: objects merge, lists gain new items."""
    merged = copy.deepcopy(models)

    def merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            if key.startswith("_"):
                continue
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            elif isinstance(value, list) and isinstance(into.get(key), list):
                into[key] += [v for v in value if v not in into[key]]
            else:
                into[key] = copy.deepcopy(value)

    merge(merged, additions or {})
    return merged


def _self_check(result: Export, target_raw: Any, target_file: Path) -> None:
    """Load the export against the target models file plus the additions: every exported run must load (nothing
    skipped). Read with the runner's meaning (lenient): an export keeps the source's own
    words, such as a mode the runner reads as mutation, which strict mode would stop at."""
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models.json"
        models.write_text(json.dumps(merge_models(target_raw, result.additions)))
        settings = Path(tmp) / "settings.json"
        settings.write_text(json.dumps(result.settings))
        try:
            loaded = load_experiment(
                settings, Registry.load(models, base_dir=target_file.parent, require_paths=False), lenient=True
            )
        except UserError as exc:  # our bug, not the user's: say so plainly
            raise UserError(
                f"internal error: the exported settings do not load against {target_file}"
                f"{' plus the additions' if result.additions else ''}:\n{exc.render()}"
            ) from None
        exported = sum(entry["runs_per_config"] for entry in result.settings["experiments"])
        runs = sum(pair.repeats for pair in loaded.pairs)
        if runs != exported:
            raise UserError(
                f"internal error: the exported settings hold {exported} runs, but {runs} of them load "
                f"against {target_file}:\n" + "\n".join(loaded.warnings)
            )


def additions_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.models_additions.json")


def write_export(result: Export, output: Path) -> list[Path]:
    """Write the settings file (and the additions file, or remove a stale one); returns what was written."""
    written = [output]
    atomic_write(output, json.dumps(result.settings, indent=2, ensure_ascii=False) + "\n")
    extra = additions_path(output)
    if result.additions:
        atomic_write(extra, json.dumps(result.additions, indent=2, ensure_ascii=False) + "\n")
        written.append(extra)
    elif extra.exists():
        extra.unlink()  # a stale one from an earlier export would mislead
    for path in written:
        path.chmod(0o644)  # settings to share with the seed's runner; atomic_write's temp file is private
    return written


def parse_margin(text: str) -> float:
    """--margin: a size like 200MiB; zero is allowed (parse_size_mib wants a positive size)."""
    if re.fullmatch(r"\s*0*\.?0*\s*[a-zA-Z]*\s*", text or "") and not re.search(r"[1-9]", text or ""):
        return 0.0
    try:
        return parse_size_mib(text)
    except ValueError as exc:
        raise UserError(f"--margin: {exc}") from None
