"""Inputs are bounded and their text is harmless: only regular files under a size cap are read (a FIFO or
/dev/zero is an error, never a block), metric patterns cannot hang on a log, text from files reaches the
terminal with its control characters escaped, names cannot move a write out of the results directory, and
memory sizes need a unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.jsonfile import MAX_INPUT_BYTES, read_json
from gpupair_search.launcher.log_metrics import extract_metrics
from gpupair_search.launcher.printable import printable
from gpupair_search.launcher.results import new_pair_dir, safe_name
from gpupair_search.launcher.sizes import parse_size_mib
from gpupair_search.launcher.spec import JobConfig, PairSpec
from tests.conftest import FIXTURES, SEED_PROJECT, cli_env

SEED_MODELS = FIXTURES / "seed_models_config.json"
VALID_SETTINGS = Path(__file__).parent / "bad_inputs" / "valid_settings.json"


def _validate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.app", "validate", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- only regular files, under a cap ------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["settings", "models"])
def test_a_fifo_is_refused_at_once_not_read(tmp_path, which):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    args = (
        [str(fifo), "--models", str(SEED_MODELS)]
        if which == "settings"
        else [str(VALID_SETTINGS), "--models", str(fifo)]
    )
    done = _validate(*args, "--repos-root", str(SEED_PROJECT), timeout=30)  # a block would time out here
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {fifo}: is not a regular file (a named pipe)")
    assert "Traceback" not in done.stderr


def test_a_loop_of_symbolic_links_says_so_not_to_check_permissions(tmp_path):
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    with pytest.raises(ConfigError) as caught:
        read_json(tmp_path / "a.json", "settings file")
    assert "loop of symbolic links" in caught.value.render() and "permissions" not in caught.value.render()


def test_a_device_is_refused_and_a_huge_file_is_cut_at_the_cap(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_json(Path("/dev/zero"), "settings file")
    assert "not a regular file (a character device)" in caught.value.render()
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(MAX_INPUT_BYTES + 1)
    with pytest.raises(ConfigError) as caught:
        read_json(huge, "settings file")
    assert caught.value.exit_code == 2 and "larger than 16 MiB" in caught.value.render()


# -- metric patterns cannot hang ----------------------------------------------------------------------------
def test_a_catastrophic_metric_pattern_is_stopped_and_the_other_metrics_are_kept():
    log = "Test Accuracy: 91.5\n" + "a" * 50_000 + "b\n"
    started = time.monotonic()
    metrics, warnings = extract_metrics(
        {"bad": "(a+)+$", "test_accuracy": r"Test Accuracy[:\s]+([0-9.]+)"}, log, seconds_per_pattern=0.5
    )
    assert time.monotonic() - started < 30  # (a+)+$ on that line alone would outlast the test run by eons
    assert metrics == {"test_accuracy": 91.5}
    [warning] = warnings
    assert "'bad'" in warning and "(a+)+$" in warning and "stopped" in warning


def test_ordinary_patterns_give_the_last_value_of_each_metric():
    metrics, warnings = extract_metrics({"loss": r"loss=([0-9.]+)", "none": r"never=([0-9]+)"}, "loss=0.9\nloss=0.5\n")
    assert metrics == {"loss": 0.5} and warnings == []


# -- text from files is printed escaped ---------------------------------------------------------------------
def test_control_sequences_in_a_settings_file_never_reach_the_terminal_raw(tmp_path):
    data = json.loads(VALID_SETTINGS.read_text(encoding="utf-8"))
    data["experiment_name"] = "study\u001b]0;title\u0007"
    data["experiments"][0]["note"] = "\u001b[2J\u001b[HOK: every pair fits\u202e"
    data["experiments"][1]["note"] = "line one\nline two"
    data["unknown\u001b[31m"] = 1
    path = tmp_path / "escapes.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    done = _validate(str(path), "--models", str(SEED_MODELS), "--repos-root", str(SEED_PROJECT))
    assert done.returncode == 0, done.stderr
    for stream in (done.stdout, done.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
    assert "\\x1b[2J\\x1b[HOK: every pair fits\\u202e" in done.stdout and "line one\\nline two" in done.stdout
    assert "unknown\\u001b[31m" in done.stderr  # the unknown key, quoted in its JSON path


def test_printable_escapes_controls_and_keeps_text():
    assert printable("a\tb\u00e9\u4e2d\n") == "a\tb\u00e9\u4e2d\n"
    assert printable("\x1b[2J\x00\x7f\x9b", keep_newlines=False) == "\\x1b[2J\\x00\\x7f\\x9b"


# -- names never move a write out of --results --------------------------------------------------------------
@given(st.text(max_size=80))
def test_a_sanitised_name_is_one_harmless_path_component(name):
    safe = safe_name(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".") and len(safe) <= 64
    assert safe.isascii() and "\0" not in safe


@pytest.mark.parametrize(
    "repo, model", [("../..", "x"), ("..", ".."), ("a/b", "../../../etc/passwd"), ("/abs", "\x00")]
)
def test_a_pair_directory_is_always_a_child_of_the_run_directory(tmp_path, repo, model):
    run_dir = tmp_path / "results" / "run"
    run_dir.mkdir(parents=True)
    pair = PairSpec(1, JobConfig(repo, model), None)
    made = new_pair_dir(run_dir, pair)
    assert made.parent == run_dir and made.resolve().parent == run_dir.resolve()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["run"]


# -- memory sizes need a unit and a sane range --------------------------------------------------------------
@pytest.mark.parametrize(
    "text, mib",
    [("8GiB", 8192.0), ("7500MiB", 7500.0), ("8G", 8192.0), ("1MiB", 1.0), ("16TiB", 16 * 2**20), ("2048kib", 2.0)],
)
def test_a_size_with_a_unit_parses(text, mib):
    assert parse_size_mib(text) == pytest.approx(mib)


@pytest.mark.parametrize(
    "text, binary, decimal",
    [("8GB", "8GiB", "7629MiB"), ("7500MB", "7500MiB", "7153MiB"), ("1TB", "1TiB", "953674MiB")],
)
def test_a_decimal_unit_is_refused_as_ambiguous_with_both_readings_given(text, binary, decimal):
    with pytest.raises(ValueError, match="ambiguous") as refused:
        parse_size_mib(text)
    assert f"Write {binary} for the first or {decimal} for the second" in str(refused.value)


@pytest.mark.parametrize(
    "value, reason",
    [
        (8, "no unit"),
        ("8", "no unit"),
        ("0.001", "no unit"),
        ("0.001MiB", "1 MiB to 16 TiB"),
        ("17TiB", "1 MiB to 16 TiB"),
        ("lots", "not a memory size"),
        ("8 gigs", "unknown unit"),
        ("1e20TiB", "not a memory size"),
        (True, "not a memory size"),
    ],
)
def test_a_size_without_a_unit_or_out_of_range_is_refused(value, reason):
    with pytest.raises(ValueError, match=reason):
        parse_size_mib(value)


def test_a_unitless_card_flag_is_an_error_naming_the_flag(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupair_search.search.cli.app",
            "run",
            "--device",
            "sim",
            "--gpu-memory",
            "8",
            "--results",
            str(tmp_path / "r"),
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "--gpu-memory" in done.stderr and "no unit" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r" / "gpupair.db").exists()


def test_pair_with_a_catastrophic_metric_pattern_ends_and_keeps_the_other_metrics(tmp_path):
    models = json.loads((FIXTURES / "models.json").read_text(encoding="utf-8"))
    patterns = models["models"]["fixture"]["performance_metrics"]["log_patterns"]
    patterns["backtracks"] = "(a+)+$"
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps(models), encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupair_search.search.cli.app",
            "pair",
            "--fg",
            "fixture/ok",
            "--fg-param",
            "seconds=0.2",
            "--fg-param",
            "value=" + "a" * 60,
            "--device",
            "cpu",
            "--models",
            str(models_file),
            "--repos-root",
            str(FIXTURES),
            "--results",
            str(tmp_path / "results"),
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert time.monotonic() - started < 100
    assert "'backtracks'" in done.stderr and "stopped" in done.stderr
    [record] = (tmp_path / "results").glob("run_*/*/experiment.json")
    assert json.loads(record.read_text())["foreground"]["performance_metrics"] == {"test_accuracy": 97.5}
