"""Workers that share a host each get their own cores, and every job they start runs on those cores only."""

from __future__ import annotations

import os
import sys

import pytest

from gpupair_search.launcher.cpu_share import (
    available_cores,
    format_cpu_list,
    parse_cpu_list,
    split_cores,
    worker_shares,
)
from gpupair_search.launcher.errors import UserError
from tests.conftest import run_cli


def test_cores_are_split_into_contiguous_slices_that_differ_by_at_most_one():
    assert split_cores(list(range(32)), 2) == [list(range(16)), list(range(16, 32))]
    assert split_cores(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]


def test_with_fewer_cores_than_workers_each_worker_still_gets_one():
    assert split_cores([4, 5], 3) == [[4], [5], [4]]


def test_cpu_lists_read_and_write_the_kernel_notation():
    assert format_cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert parse_cpu_list("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert parse_cpu_list(format_cpu_list([3])) == [3]


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "0-", "1,,2"])
def test_a_malformed_cpu_list_is_a_user_error_naming_the_option(text):
    with pytest.raises(UserError, match="--cpus"):
        parse_cpu_list(text)


def test_a_pinned_process_starts_its_jobs_on_its_cores_only(tmp_path):
    core = available_cores()[-1]
    log = tmp_path / "job.log"
    script = (
        "import os, sys, pathlib\n"
        "from launcher.cpu_share import pin_this_process\n"
        "from launcher.process import start_job\n"
        "from launcher.registry import Command\n"
        f"pin_this_process([{core}])\n"
        "job = start_job('probe', Command((sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'),"
        " pathlib.Path.cwd()), pathlib.Path(sys.argv[1]), dict(os.environ))\n"
        "sys.exit(job.popen.wait())\n"
    )
    code = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", script, str(log)])
    assert code == 0
    assert log.read_text().strip() == f"[{core}]"  # the job, below the job guard, inherited the share


@pytest.mark.parametrize("cpus, expected", [("0-99999", "not available here"), ("many", "expected a CPU list")])
def test_a_worker_given_bad_cores_says_so_without_a_traceback(tmp_path, cpus, expected):
    done = run_cli(
        "worker",
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
        "--device",
        "sim",
        "--results",
        str(tmp_path),
        "--cpus",
        cpus,
    )
    assert done.returncode != 0
    assert expected in done.stderr and "--cpus" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "s.db").exists()  # nothing was started or created


def test_two_workers_on_one_host_get_disjoint_shares_that_cover_every_core():
    if len(available_cores()) < 2:
        pytest.skip("needs two cores")
    first, second = (parse_cpu_list(text) for text in worker_shares(2))
    assert not set(first) & set(second)
    assert sorted(first + second) == available_cores()
