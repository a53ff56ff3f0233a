"""Named study definitions: ``--study NAME`` picks one."""

from __future__ import annotations

from gpupair_search.studies.definition import STUDIES, StudyDefinition, get_study

__all__ = ["StudyDefinition", "get_study", "STUDIES"]
