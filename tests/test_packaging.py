"""The installed tool finds its bundled settings, from an editable install and from a built wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_runs_the_console_script_with_bundled_settings():
    exe = shutil.which("gpupair-search")
    assert exe, "the console script is not on PATH: install the project (pip install -e .)"
    done = subprocess.run([exe, "validate", str(ROOT / "settings" / "parallel_feasibility_test.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_built_wheel_carries_its_settings_and_workloads(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("gpupair_search-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    # run from elsewhere, with only the wheel's copy of the project importable
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    probe = ("import settings, search.cli, workloads.common; print(settings.SETTINGS_DIR); "
             "print((settings.BUNDLE_ROOT / 'workloads' / 'examples' / 'train.py').exists())")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    settings_dir, has_workloads = done.stdout.split()
    assert Path(settings_dir).is_relative_to(site) and has_workloads == "True"
    assert (Path(settings_dir) / "models.json").exists()
    assert list((Path(settings_dir) / "profiles").glob("*.json"))
    validate = subprocess.run([sys.executable, "-c", "import sys; from search.cli import main; sys.argv[0] = "
                               "'gpupair-search'; main()", "validate",
                               str(Path(settings_dir) / "parallel_feasibility_test.json")],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert validate.returncode == 0, validate.stderr
    assert "12 pair(s)" in validate.stdout
