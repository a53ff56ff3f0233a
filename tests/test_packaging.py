"""The installed tool is one import package that finds its bundled settings, from an editable install and
from a built wheel, and shadows nothing of the user's or of the standard library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ["gpupair_search", "search", "launcher", "studies", "settings", "workloads"]


def test_editable_install_runs_the_console_script_with_bundled_settings():
    exe = shutil.which("gpupair-search")
    assert exe, "the console script is not on PATH: install the project (pip install -e .)"
    done = subprocess.run(
        [exe, "validate", str(ROOT / "settings" / "parallel_feasibility_test.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_users_own_settings_and_search_modules_are_theirs_not_ours(tmp_path):
    (tmp_path / "settings.py").write_text("WHO = 'the user'\n")
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "__init__.py").write_text("WHO = 'the user'\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import settings, search, gpupair_search.settings as ours; "
            "print(settings.WHO, search.WHO, ours.bundled('models.json').exists())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["the", "user", "the", "user", "True"]


def test_without_a_user_module_of_that_name_ours_is_not_importable_at_top_level(tmp_path):
    for name in ["settings", "search", "launcher", "studies", "workloads"]:
        done = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, name


def test_no_module_of_ours_shadows_the_standard_library():
    clashes = [
        str(p.relative_to(ROOT))
        for folder in PACKAGE_FOLDERS
        for p in (ROOT / folder).rglob("*.py")
        if p.stem in sys.stdlib_module_names
    ]
    assert clashes == []


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {folder: package for package, folder in config["package-dir"].items()}
    found = set()
    for folder in PACKAGE_FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join([mapping[parts[0]], *parts[1:]]))
    assert found == set(config["packages"])


@pytest.mark.slow
def test_a_built_wheel_has_one_top_level_package_with_its_settings_and_workloads(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    [wheel] = (tmp_path / "dist").glob("gpupair_search-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"gpupair_search"}
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "gpupair_search"]
    # run from elsewhere, with only the wheel's copy of the project importable
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    probe = (
        "from gpupair_search import settings; import gpupair_search.search.cli.app, gpupair_search.workloads.common; "
        "print(settings.SETTINGS_DIR); "
        "print((settings.BUNDLE_ROOT / 'workloads' / 'examples' / 'train.py').exists())"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    settings_dir, has_workloads = done.stdout.split()
    assert Path(settings_dir).is_relative_to(site) and has_workloads == "True"
    assert (Path(settings_dir) / "models.json").exists()
    assert list((Path(settings_dir) / "profiles").glob("*.json"))
    validate = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupair_search.search.cli.app",
            "validate",
            str(Path(settings_dir) / "parallel_feasibility_test.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert validate.returncode == 0, validate.stderr
    assert "12 pair(s)" in validate.stdout
