"""What a user types first: ``--version``, ``python -m gpupair_search``, and ``--help`` that groups the options
of each command and shows only those that apply to it. In-process through click's runner (the parser and
the help are the function here), plus one real ``python -m`` run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from gpupair_search.search.cli import options as opt
from gpupair_search.search.cli.app import app

READ_ONLY = ["status", "report", "export", "dashboard"]


def help_of(*command: str) -> str:
    done = CliRunner().invoke(app, [*command, "--help"], terminal_width=100)
    assert done.exit_code == 0, done.output
    return done.output


def sections(text: str) -> list[str]:
    """The section titles of a help page, in order (a line with no indent ending in a colon)."""
    return [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][A-Za-z ]*:", line)]


def test_version_prints_the_installed_distributions_version():
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0
    assert done.output == f"gpupair-search {version('gpupair-search')}\n"


@pytest.mark.e2e
def test_python_dash_m_gpupair_search_is_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "gpupair_search", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gpupair-search {version('gpupair-search')}"
    usage = subprocess.run(
        [sys.executable, "-m", "gpupair_search", "run", "--help"], capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 0 and "Usage:" in usage.stdout and "--full-epoch" in usage.stdout


@pytest.mark.parametrize("command", ["run", "worker", "slurm"])
def test_study_commands_list_their_options_in_sections_in_the_documented_order(command):
    shown = sections(help_of(command))
    assert shown[:3] == ["Study", "Device and card", "Measurement"]
    assert {"Search", "Packing", "Storage"} <= set(shown)
    panels = [s for s in shown if s in opt.PANELS]
    assert panels == sorted(panels, key=opt.PANELS.index)
    assert shown[-1] == "Options"  # --help alone, last


def test_every_option_of_every_command_is_in_a_named_section():
    from typer.main import get_command

    group = get_command(app)
    for name, command in group.commands.items():
        loose = [
            p.opts[0]
            for p in command.params
            if p.param_type_name == "option" and not p.hidden and getattr(p, "rich_help_panel", None) is None
        ]
        assert loose == [], f"{name}: {loose} have no rich_help_panel"


@pytest.mark.parametrize("command", READ_ONLY)
def test_read_only_commands_show_no_lenient_switch_and_describe_settings_as_the_studys_file(command):
    text = help_of(command)
    assert "--lenient" not in text and "--strict" not in text
    assert "The settings file the study was made from" in " ".join(text.split())
    assert "Run any seed-format settings file" not in text


def test_pair_and_run_default_to_probes_with_the_same_switch():
    for command in ("pair", "run"):
        text = " ".join(help_of(command).split())
        assert "--probe / --full-epoch" in text and "[default: probe]" in text, command


def test_validate_takes_the_settings_file_as_an_argument_or_as_settings_as_the_other_commands_do(tmp_path):
    path = tmp_path / "one.json"
    job = {"mode": "default", "repo": "examples", "model": "mnist", "hyperparameters": {"epochs": 1}}
    path.write_text(json.dumps({"experiments": [job]}))
    as_argument = CliRunner().invoke(app, ["validate", str(path)])
    as_option = CliRunner().invoke(app, ["validate", "--settings", str(path)])
    assert as_argument.exit_code == as_option.exit_code == 0, as_option.output
    assert as_argument.output == as_option.output and "1 pair(s)" in as_option.output
    both = CliRunner().invoke(app, ["validate", str(path), "--settings", str(path)])
    neither = CliRunner().invoke(app, ["validate"])
    assert both.exit_code == neither.exit_code == 1
    assert "give one settings file, as an argument or as --settings FILE" in neither.output
    assert "Traceback" not in both.output + neither.output


def test_a_cpu_budget_above_the_hosts_memory_is_said_before_anything_runs():
    from gpupair_search.launcher.devices.cpu import budget_warning

    assert budget_warning(1024.0) == ""  # 1 GiB: any host running the tests has it
    warning = budget_warning(16 * 2**20)  # 16 TiB
    assert "is more than this host has" in warning and "killed by the kernel" in warning


def test_a_resumed_run_counts_the_trials_an_earlier_run_queued_and_did_not_reach():
    from gpupair_search.search.cli.run_study import queued_words

    assert queued_words(3, 0, 3) == "3 trial(s) queued"
    assert queued_words(0, 1, 2) == (
        "0 trial(s) queued, 1 interrupted trial(s) to run again, 1 queued by an earlier run and not yet run"
    )
