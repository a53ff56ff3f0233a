"""JSON data shipped with gpupair-search: the built-in models file, study settings, memory profiles.

Found through the package itself, so it works from a checkout, an editable install and a wheel alike.
"""

from __future__ import annotations

from pathlib import Path

SETTINGS_DIR = Path(__file__).resolve().parent
#: Relative repository paths in the bundled models file resolve against this (it holds ``workloads/``).
BUNDLE_ROOT = SETTINGS_DIR.parent


def bundled(name: str) -> Path:
    """Path of a bundled settings file, e.g. ``bundled("models.json")``."""
    return SETTINGS_DIR / name


def profiles_dir() -> Path:
    return SETTINGS_DIR / "profiles"
