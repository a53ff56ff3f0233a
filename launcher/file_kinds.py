"""Which of the files the tool reads a JSON document is, so that a file given in the wrong place is named as what
it is ("this is a trial's result file") instead of being judged as a broken file of the expected kind ("did you
mean experiments?")."""

from __future__ import annotations

from typing import Any

from gpupair_search.launcher.errors import ConfigError, Problem

SETTINGS = "settings file"
MODELS = "models file"

#: kind -> (how it is recognised, what it is, what to give instead)
_KINDS = {
    "result": "a trial's result file (experiment.json, written by the tool into the results folder)",
    "models": "a models file (models_config.json: repositories and their hyperparameters)",
    "settings": "a settings file (experiments to run)",
    "profile": "a memory profile (settings/profiles/*.json: measured peaks per job and batch size)",
}


def kind_of(data: Any) -> str | None:
    """ "result", "models", "settings" or "profile" when ``data`` is unmistakably that kind of file, else None."""
    if not isinstance(data, dict):
        return None
    if "experiment_id" in data and isinstance(data.get("foreground"), dict) and "repository" in data["foreground"]:
        return "result"
    if isinstance(data.get("models"), dict) and "experiments" not in data:
        return "models"
    if isinstance(data.get("experiments"), list) and "models" not in data:
        return "settings"
    if "card" in data and isinstance(data.get("jobs") or data.get("profiles"), (dict, list)):
        return "profile"
    return None


def refuse_other_kind(file: str, data: Any, expected: str) -> None:
    """Raise a :class:`ConfigError` when ``data``, read as the ``expected`` file (SETTINGS or MODELS), is
    recognisably a file of another kind."""
    kind = kind_of(data)
    wanted = "settings" if expected == SETTINGS else "models"
    if kind is None or kind == wanted:
        return
    fix = {
        SETTINGS: "give the settings file that lists the experiments (e.g. the one the study ran with)",
        MODELS: "give the models file (--models models_config.json)",
    }[expected]
    if kind == "models" and expected == SETTINGS:
        fix = "pass it as --models FILE, and the settings file as the settings"
    elif kind == "settings" and expected == MODELS:
        fix = "pass it as the settings file, and the models file as --models FILE"
    raise ConfigError(
        [Problem(file, "", f"this is {_KINDS[kind]}, not a {expected}", expected=f"a {expected}", fix=fix)]
    )
