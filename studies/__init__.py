"""Named study definitions: ``--study NAME`` picks one. A new named study is one module here, listed below."""

from __future__ import annotations

from gpupair_search.launcher.errors import UserError
from gpupair_search.studies import feasibility, matrix
from gpupair_search.studies.definition import StudyDefinition

__all__ = ["STUDIES", "StudyDefinition", "get_study"]

STUDIES: dict[str, StudyDefinition] = {
    study.name: study for study in (feasibility.STUDY, feasibility.COST_STUDY, matrix.STUDY)
}


def get_study(name: str) -> StudyDefinition:
    if name not in STUDIES:
        raise UserError(
            f"unknown study {name!r}; named studies: {', '.join(sorted(STUDIES))}. "
            "Use --settings FILE to run any seed-format settings file as a study."
        )
    return STUDIES[name]
