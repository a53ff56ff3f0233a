"""Opening an *existing* study for reading (status, report, export, dashboard): with the card size, safe limit
and search it was run with, never the defaults or an edited settings file, and nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.engine.fixed_definition import file_digest, options_before_definitions, stored_definition
from gpupair_search.search.engine.session import resolve_inputs, study_name
from gpupair_search.search.engine.storage import default_storage_path, existing_storage_url, open_storage, redact_url
from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings
from gpupair_search.search.policy.batch_grid import STORED_BEFORE_GRIDS, batch_grid
from gpupair_search.search.policy.confirmation import DEFAULT_MARGIN, Confirm
from gpupair_search.search.policy.extension import Policy
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.search.policy.profiles import load_profiles, profile_observations


def open_results(
    study: str | None,
    settings: Path | None,
    storage: str | None,
    results: Path,
    kind: StudyKind | None,
    models: Path | None,
    repos_root: Path | None,
    lenient: bool,
    name: str | None = None,
) -> FeasibilityStudy:
    """The study as stored, for reading: its own definition (card, limit, policy, floor, pairs), never the
    defaults or an edited settings file, and nothing written. ``kind`` ("gpu", "cpu", "simulated") picks
    among studies of the same settings; None finds the one there is."""
    if models is None and settings is not None:
        models = _models_the_study_ran_with(Path(settings), storage, results)
    inputs = resolve_inputs(study, settings, models, repos_root, lenient, None, None, need_clones=False)
    if storage is None and not default_storage_path(results).exists():
        raise UserError(
            f"no study storage at {default_storage_path(results)}; point --results at the directory the study "
            "ran with (or --storage at its URL), or run it first with `gpupair-search run`"
        )
    url = storage or existing_storage_url(results)
    stored = open_storage(url, must_exist=True)  # not the bare URL: it picks the installed PostgreSQL driver
    names = [s.study_name for s in stored.get_all_studies()]
    base = name or inputs.name
    kinds = [StudyKind(kind)] if kind else list(StudyKind)
    found = [study_name(base, k) for k in kinds if study_name(base, k) in names]
    other_kinds = [k for k in StudyKind if k != kind and study_name(base, k) in names] if kind else []
    if not found and other_kinds:
        raise UserError(
            f"no {kind} study of these settings in {redact_url(url)}: there is "
            + " and ".join(f"a {k} one ({study_name(base, k)})" for k in other_kinds)
            + "; choose it with --kind "
            + "|".join(other_kinds)
        )
    if not found:
        raise UserError(
            f"no study named {study_name(base, kind) if kind else repr(base)} in {redact_url(url)}; "
            f"studies there: {', '.join(names) or '(none)'}. Pass the --settings/--study (or --name) "
            "it ran with"
        )
    if len(found) > 1:
        raise UserError(
            f"{redact_url(url)} holds {len(found)} studies of these settings: {', '.join(found)}; "
            "choose one with --kind " + "|".join(k for k in kinds if study_name(base, k) in found)
        )
    loaded = optuna.load_study(study_name=found[0], storage=stored)
    definition = stored_definition(loaded)
    settings_ = (
        StudySettings(found[0], definition.card_mib, definition.safe_limit_mib, definition.extension())
        if definition is not None
        else settings_before_definitions(
            found[0], options_before_definitions(loaded), inputs.card_mib, inputs.safe_limit_mib
        )
    )
    return FeasibilityStudy.read(
        loaded, settings_, inputs.experiment, inputs.registry, profile_observations(load_profiles())
    )


def _models_the_study_ran_with(settings: Path, storage: str | None, results: Path) -> Path | None:
    """The models file the study of ``settings`` ran with, from its stored definition, where a read-only command
    got none: a study run with the user's own models file is read with it, not refused as unknown repositories.
    None where no stored study is of this file (same path or same bytes), where they disagree, or where that
    file is gone."""
    if storage is None and not default_storage_path(results).exists():
        return None
    try:
        stored = open_storage(storage or existing_storage_url(results), must_exist=True)
        studies = [optuna.load_study(study_name=s.study_name, storage=stored) for s in stored.get_all_studies()]
        definitions = [d for d in map(stored_definition, studies) if d is not None]
    except (UserError, optuna.exceptions.OptunaError):
        return None  # open_results says what is wrong with the storage
    target, digest = settings.resolve(), file_digest(settings)
    found = {
        d.models_file for d in definitions if Path(d.settings_file).resolve() == target or d.settings_sha256 == digest
    }
    models = Path(found.pop()) if len(found) == 1 else None
    return models if models is not None and models.is_file() else None


def settings_before_definitions(
    name: str, options: Mapping[str, Any], card_mib: float, safe_limit_mib: float
) -> StudySettings:
    """The settings of a study from before definitions were kept: what it does not hold reads as it then ran, and
    a card or limit it does not hold as the inputs say."""
    extension = ExtensionOptions(
        enabled=bool(options.get("extend", True)),
        policy=str(options.get("policy", Policy.BACKGROUND_FIRST.value)),
        floor=int(options.get("floor", 1)),
        confirm_margin=float(options.get("confirm_margin", DEFAULT_MARGIN)),
        grid=batch_grid(options.get("batch_grid", STORED_BEFORE_GRIDS)),
        confirm=Confirm(options.get("confirm", Confirm.RECOMMENDED.value)),
    )
    return StudySettings(
        name, float(options.get("card_mib", card_mib)), float(options.get("safe_limit_mib", safe_limit_mib)), extension
    )
