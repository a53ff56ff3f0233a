"""Put a study run together from the CLI's choices: inputs, card and limit, device, storage, executor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpupair_search.launcher.devices.base import NoDeviceError
from gpupair_search.launcher.devices.simulated import SimulatedDevice
from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.experiments import Experiment
from gpupair_search.launcher.registry import DEFAULT_PROBE_STEPS, Registry
from gpupair_search.launcher.results import ensure_results_dir
from gpupair_search.launcher.sizes import parse_size_mib
from gpupair_search.launcher.spec import JobConfig, StudyKind
from gpupair_search.search.engine.baselines import DEFAULT_BASELINES, DEFAULT_MIN_WINDOW_S
from gpupair_search.search.engine.fixed_definition import FixedDefinition, file_digest, pair_record
from gpupair_search.search.engine.inputs import load_registry, load_settings
from gpupair_search.search.engine.storage import default_storage_url
from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings
from gpupair_search.search.policy.planner import ExtensionOptions, fit_models
from gpupair_search.search.policy.profiles import load_profiles, profile_observations
from gpupair_search.studies import get_study
from gpupair_search.studies.definition import StudyDefaults

SAFE_FRACTION = 7500 / 8192  # the seed design's 7500 MiB on an 8 GiB card


@dataclass
class StudyInputs:
    name: str
    experiment: Experiment
    registry: Registry
    card_mib: float
    safe_limit_mib: float
    defaults: StudyDefaults = StudyDefaults()  # the named study's, where the user gave no flag


def _size(value, where: str) -> float:
    try:
        return parse_size_mib(value)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def resolve_inputs(
    study: str | None,
    settings: Path | None,
    models: Path | None,
    repos_root: Path | None,
    lenient: bool,
    gpu_memory: str | None,
    safe_limit: str | None,
    need_clones: bool = True,
) -> StudyInputs:
    """Flags override the settings file's ``gpupair`` block, which overrides the named study. ``need_clones``:
    False where nothing will run (reading a stored study), so the repositories' clones need not be here."""
    if study is not None and settings is not None:
        raise UserError(
            f"--study {study} and --settings {settings}: these name two different studies; give one "
            "(--study NAME for a named study, --settings FILE for any settings file)"
        )
    if study is None and settings is None:
        study = "feasibility"
    definition = get_study(study) if study else None
    registry = load_registry(models, repos_root, need_clones)
    experiment = load_settings(settings or definition.settings, registry, lenient)
    block = experiment.options
    file_card = _size(block["gpu_memory"], f"{experiment.file}: gpupair.gpu_memory") if "gpu_memory" in block else None
    default_card = file_card or (definition.card_mib if definition else 8192.0)
    card = _size(gpu_memory, "--gpu-memory") if gpu_memory else default_card
    if safe_limit:
        limit = _size(safe_limit, "--safe-limit")
    elif "safe_limit" in block and card == default_card:  # a file's limit belongs to the file's card
        limit = _size(block["safe_limit"], f"{experiment.file}: gpupair.safe_limit")
    elif definition and card == definition.card_mib:
        limit = definition.safe_limit_mib
    else:
        limit = card * SAFE_FRACTION  # the seed design's 7500 MiB of 8 GiB, scaled to this card
    if limit > card:
        raise UserError(f"the safe limit ({limit:.0f} MiB) is above the card's memory ({card:.0f} MiB)")
    named = definition is not None and settings is None
    name = definition.name if named else experiment.name
    return StudyInputs(name, experiment, registry, card, limit, definition.defaults if named else StudyDefaults())


def simulated_device(inputs: StudyInputs, profiles_dir: Path | None = None) -> SimulatedDevice:
    profiles = load_profiles(profiles_dir)
    models = fit_models([], profile_observations(profiles))  # a CPU-only job's model: 0 MiB
    missing = sorted(
        {
            j.key
            for p in inputs.experiment.pairs
            for j in (p.foreground, p.background)
            if j is not None and j.key not in models
        }
    )
    if missing:
        raise NoDeviceError(
            "--device sim needs a memory profile for every job; none for: "
            + ", ".join(missing)
            + ". Measure them on a GPU (bench/profile_workloads.py) into settings/profiles/."
        )
    cards = ", ".join(sorted({f"{p.card} {p.date}" for p in profiles}))

    def memory(job: JobConfig, batch: int | None) -> float:
        return models[job.key].predict(batch)

    return SimulatedDevice(memory, inputs.card_mib, inputs.registry, label=f"profiles: {cards}")


def study_name(base: str, kind: StudyKind) -> str:
    return base + StudyKind(kind).name_suffix


def fixed_definition(
    inputs: StudyInputs,
    name: str,
    extension: ExtensionOptions,
    kind: StudyKind,
    probe: bool,
    baselines: bool | None = None,
    min_window_s: float | None = None,
    probe_steps: int | None = None,
) -> FixedDefinition:
    """What this run would measure, for comparison with what the study was created with."""
    experiment, registry = inputs.experiment, inputs.registry
    return FixedDefinition(
        name=name,
        device_kind=kind,
        card_mib=inputs.card_mib,
        safe_limit_mib=inputs.safe_limit_mib,
        extend=extension.enabled,
        policy=str(extension.policy),
        floor=extension.floor,
        probe=probe,
        confirm_margin=extension.confirm_margin,
        baselines=baselines,
        baselines_default=_first_given(inputs.defaults.baselines, DEFAULT_BASELINES),
        min_window_s=None if min_window_s is None else float(min_window_s),
        min_window_s_default=float(_first_given(inputs.defaults.min_window_s, DEFAULT_MIN_WINDOW_S)),
        settings_file=str(Path(experiment.file).resolve()),
        settings_sha256=file_digest(experiment.file),
        models_file=str(Path(registry.file).resolve()),
        models_sha256=file_digest(registry.file),
        pairs=tuple(pair_record(p, registry.batch_sizes(p)) for p in experiment.pairs),
        batch_grid=str(extension.grid),
        probe_steps=probe_steps,
        probe_steps_default=inputs.defaults.probe_steps or DEFAULT_PROBE_STEPS,
        confirm=str(extension.confirm),
    )


def _first_given(*values):
    """The first value that is not None: the named study's default, then the tool's."""
    return next(value for value in values if value is not None)


def open_study(
    inputs: StudyInputs,
    storage: str | None,
    results: Path,
    extension: ExtensionOptions,
    kind: StudyKind = StudyKind.GPU,
    probe: bool = True,
    name: str | None = None,
    baselines: bool | None = None,
    min_window_s: float | None = None,
    probe_steps: int | None = None,
) -> FeasibilityStudy:
    """Create the study, or resume it; a stored study with another definition stops here, unchanged."""
    url = storage or default_storage_url(results)
    full_name = study_name(name or inputs.name, kind)
    settings = StudySettings(full_name, inputs.card_mib, inputs.safe_limit_mib, extension)
    definition = fixed_definition(inputs, full_name, extension, kind, probe, baselines, min_window_s, probe_steps)
    fs = FeasibilityStudy.open(
        url, settings, inputs.experiment, inputs.registry, profile_observations(load_profiles()), definition
    )
    fs.likely_failures_first = inputs.defaults.likely_failures_first
    return fs


def artifact_store(results: Path):
    """Trial files for optuna-dashboard, kept next to the default storage in the results directory."""
    from optuna.artifacts import FileSystemArtifactStore

    path = ensure_results_dir(results / "artifacts")
    return FileSystemArtifactStore(str(path))
